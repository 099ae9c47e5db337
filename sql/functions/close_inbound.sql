-- close_inbound(inbound_id, reason, sku, warehouse): what is still expected
-- will not come (a supplier shipped short, a customer kept the goods): the
-- shipment's OPEN and PARTIAL lines (only the sku's, with sku; only the
-- warehouse's, with warehouse) become CLOSED_SHORT with the reason, keeping
-- what they received; available_to_promise and backorder_position stop
-- counting them. Lines already received or closed stay as they are, so a
-- repeated call changes nothing. A sku or warehouse the shipment does not
-- expect is IV005. Moves no stock: returns the shipment, status refreshed.
create or replace function inventory.close_inbound(
  inbound_id uuid,
  reason text,
  sku text default null,
  warehouse text default null
) returns inventory.inbound_shipments
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_product_id uuid;
  v_warehouse_id uuid;
  v_shipment inventory.inbound_shipments;
begin
  perform inventory._inbound_shipment(close_inbound.inbound_id);
  perform inventory._require_text(close_inbound.reason, 'reason', 'reason');
  if close_inbound.sku is not null then v_product_id := inventory._product_id(close_inbound.sku); end if;
  if close_inbound.warehouse is not null then v_warehouse_id := inventory._warehouse_id(close_inbound.warehouse); end if;
  v_shipment := inventory._locked_inbound(close_inbound.inbound_id);
  if not exists (select from inventory.inbound_lines l
                 where l.shipment_id = v_shipment.id
                   and (v_product_id is null or l.product_id = v_product_id)
                   and (v_warehouse_id is null or l.warehouse_id = v_warehouse_id)) then
    perform inventory._raise('IV005',
      format('inbound shipment %s (%s) expects no %s at %s', v_shipment.id, inventory._clip(v_shipment.reference),
        coalesce(inventory._quote(close_inbound.sku), 'sku'), coalesce(inventory._quote(close_inbound.warehouse), 'any warehouse')),
      jsonb_build_object('argument', case when v_product_id is null then 'warehouse' else 'sku' end, 'inbound_id', v_shipment.id),
      'inventory.inbound(sku) shows what each shipment expects where.');
  end if;
  update inventory.inbound_lines l
  set status = 'CLOSED_SHORT', closed_reason = close_inbound.reason, updated_at = now()
  where l.shipment_id = v_shipment.id and l.status in ('OPEN', 'PARTIAL')
    and (v_product_id is null or l.product_id = v_product_id)
    and (v_warehouse_id is null or l.warehouse_id = v_warehouse_id);
  return inventory._inbound_refresh(v_shipment.id);
end
$$;
comment on function inventory.close_inbound(uuid, text, text, text) is
  'What an inbound shipment (or its lines of a sku / at a warehouse) still expects will not come: lines CLOSED_SHORT';
