-- ship_transfer(sku, from_warehouse, to_warehouse, qty, reason, idempotency_key):
-- the first half of a transfer that takes time. The units leave the source's
-- on_hand now (a TRANSIT_OUT movement that puts them into transit) and reach
-- the destination only when received (receive_transfer). Never takes the
-- source below its reserved units (IV002, as transfer). Returns the shipment;
-- a retry with the same key returns the same shipment without a second change.
create or replace function inventory.ship_transfer(
  sku text,
  from_warehouse text,
  to_warehouse text,
  qty integer,
  reason text,
  idempotency_key text default null
) returns inventory.transit_shipments
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_product_id uuid := inventory._stocked_product_id(ship_transfer.sku);
  v_from_id uuid := inventory._warehouse_id(ship_transfer.from_warehouse, 'from_warehouse');
  v_to_id uuid := inventory._warehouse_id(ship_transfer.to_warehouse, 'to_warehouse');
  v_from inventory.stock_levels;
  v_shipment inventory.transit_shipments;
  v_id uuid := inventory._new_id();
begin
  if ship_transfer.qty is null or ship_transfer.qty <= 0 then
    perform inventory._raise('IV005', format('qty must be a positive integer, got %s', coalesce(ship_transfer.qty::text, 'null')),
      jsonb_build_object('argument', 'qty'));
  end if;
  if v_from_id = v_to_id then
    perform inventory._raise('IV005', format('cannot ship from %s to itself', inventory._clip(ship_transfer.from_warehouse)),
      jsonb_build_object('argument', 'to_warehouse'));
  end if;
  perform inventory._require_text(ship_transfer.reason, 'reason', 'reason');
  if ship_transfer.idempotency_key is not null
     and not inventory._claim_operation_key(ship_transfer.idempotency_key, 'ship_transfer',
           concat_ws(chr(31), v_product_id, v_from_id, v_to_id, ship_transfer.qty, ship_transfer.reason)) then
    select * into v_shipment from inventory.transit_shipments s where s.idempotency_key = ship_transfer.idempotency_key;
    return v_shipment;
  end if;

  v_from := inventory._locked_stock_row(v_product_id, v_from_id, false);
  if coalesce(v_from.on_hand, 0) - ship_transfer.qty < coalesce(v_from.reserved, 0) then
    perform inventory._raise('IV002',
      format('shipping %s of %s out of %s would take on_hand to %s, below the %s reserved',
             ship_transfer.qty, inventory._clip(ship_transfer.sku), inventory._clip(ship_transfer.from_warehouse),
             coalesce(v_from.on_hand, 0) - ship_transfer.qty, coalesce(v_from.reserved, 0)),
      inventory._stock_row_json(ship_transfer.sku, ship_transfer.from_warehouse, v_from) || jsonb_build_object('qty', ship_transfer.qty),
      'Nothing was shipped. Ship at most on_hand - reserved.');
  end if;
  insert into inventory.transit_shipments as s (id, reference, product_id, from_warehouse_id, to_warehouse_id, qty_shipped, reason, idempotency_key, actor)
  values (v_id, 'transit:' || v_id, v_product_id, v_from_id, v_to_id, ship_transfer.qty, ship_transfer.reason, ship_transfer.idempotency_key, inventory._actor())
  returning * into v_shipment;
  perform inventory._record_movement(v_from, 'TRANSIT_OUT', -ship_transfer.qty, ship_transfer.reason, v_shipment.reference,
    ship_transfer.idempotency_key, ship_transfer.qty);
  return v_shipment;
end
$$;
comment on function inventory.ship_transfer(text, text, text, integer, text, text) is
  'Ship units to another warehouse: on_hand leaves the source now (TRANSIT_OUT) and is in transit until received or written off; returns the shipment';
