-- Refuses a receipt (receive_inbound's resolved lines against the locked
-- shipment's lines) that its lines cannot take, naming every such line:
--   IV003  a CANCELLED or CLOSED_SHORT line: it expects nothing any more;
--   IV005  more than a line still expects, unless p_allow_over_receipt (an
--          over-receipt is a wrong count or a wrong shipment far more often
--          than a welcome surprise: it is recorded only when asked for).
create or replace function inventory._inbound_receipt_check(
  p_shipment inventory.inbound_shipments, p_wanted jsonb, p_allow_over_receipt boolean
) returns void
language plpgsql stable
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_closed jsonb;
  v_over jsonb;
begin
  select jsonb_agg(jsonb_build_object('sku', p.sku, 'warehouse', w.code, 'status', l.status, 'closed_reason', l.closed_reason,
                                      'expected', l.qty_expected, 'received', l.qty_received) order by p.sku, w.code)
           filter (where l.status in ('CANCELLED', 'CLOSED_SHORT')),
         jsonb_agg(jsonb_build_object('sku', p.sku, 'warehouse', w.code, 'expected', l.qty_expected, 'received', l.qty_received,
                                      'outstanding', greatest(l.qty_expected - l.qty_received, 0), 'requested', x.qty) order by p.sku, w.code)
           filter (where l.status not in ('CANCELLED', 'CLOSED_SHORT') and x.qty > l.qty_expected - l.qty_received)
  into v_closed, v_over
  from jsonb_to_recordset(p_wanted) x(product_id uuid, warehouse_id uuid, qty bigint)
  join inventory.inbound_lines l on l.shipment_id = p_shipment.id and l.product_id = x.product_id and l.warehouse_id = x.warehouse_id
  join inventory.products p on p.id = l.product_id
  join inventory.warehouses w on w.id = l.warehouse_id;

  if v_closed is not null then
    perform inventory._raise('IV003',
      format('inbound shipment %s (%s) expects nothing more of %s', p_shipment.id, inventory._clip(p_shipment.reference),
        (select string_agg(format('%s at %s (%s)', inventory._clip(c ->> 'sku'), inventory._clip(c ->> 'warehouse'), c ->> 'status'), ', ')
         from jsonb_array_elements(v_closed) c)),
      jsonb_build_object('inbound_id', p_shipment.id, 'lines', v_closed),
      'Nothing was received. Record units that came anyway with inventory.adjust(sku, warehouse, qty, reason), or create another inbound shipment.');
  end if;
  if v_over is not null and not p_allow_over_receipt then
    perform inventory._raise('IV005',
      format('over-receipt: %s line(s) of inbound shipment %s (%s) would receive more than expected: %s',
        jsonb_array_length(v_over), p_shipment.id, inventory._clip(p_shipment.reference),
        (select string_agg(format('%s at %s requested %s, outstanding %s (expected %s, received %s)',
                                  inventory._clip(o ->> 'sku'), inventory._clip(o ->> 'warehouse'), o ->> 'requested', o ->> 'outstanding',
                                  o ->> 'expected', o ->> 'received'), '; ')
         from jsonb_array_elements(v_over) o)),
      jsonb_build_object('argument', 'lines', 'inbound_id', p_shipment.id, 'lines', v_over),
      'Nothing was received. Receive at most what is outstanding, or pass allow_over_receipt => true to record the extra units too.');
  end if;
end
$$;
comment on function inventory._inbound_receipt_check(inventory.inbound_shipments, jsonb, boolean) is
  'Internal: IV003 for a receipt on a closed inbound line, IV005 for an over-receipt not allowed';
