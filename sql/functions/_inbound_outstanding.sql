-- What a shipment still expects, as receive_inbound's resolved lines:
-- [{"product_id", "warehouse_id", "qty"}] for each OPEN or PARTIAL line
-- (qty = qty_expected - qty_received), [] when nothing.
create or replace function inventory._inbound_outstanding(p_shipment_id uuid) returns jsonb
language sql stable
set search_path = pg_catalog, inventory, pg_temp
as $$
  select coalesce(jsonb_agg(jsonb_build_object('product_id', l.product_id, 'warehouse_id', l.warehouse_id,
                                               'qty', l.qty_expected - l.qty_received)), '[]')
  from inventory.inbound_lines l
  where l.shipment_id = p_shipment_id and l.status in ('OPEN', 'PARTIAL')
$$;
comment on function inventory._inbound_outstanding(uuid) is 'Internal: the units a shipment still expects, per line';
