-- inbound(sku, warehouse, include_closed): inbound lines, soonest first:
-- what each shipment expects where and when, what came, and what is still
-- outstanding (0 once a line is received or closed). Open lines only (OPEN,
-- PARTIAL) unless include_closed. overdue: still expected, and its date has
-- passed. sku and warehouse filter (IV004 when unknown); both optional.
create or replace function inventory.inbound(
  sku text default null,
  warehouse text default null,
  include_closed boolean default false
) returns setof inventory.inbound_row
language plpgsql stable security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_product_id uuid;
  v_warehouse_id uuid;
begin
  if inbound.sku is not null then v_product_id := inventory._product_id(inbound.sku); end if;
  if inbound.warehouse is not null then v_warehouse_id := inventory._warehouse_id(inbound.warehouse); end if;
  return query
    select s.id, s.reference, s.kind, p.sku, w.code, l.qty_expected, l.qty_received,
           case when l.status in ('OPEN', 'PARTIAL') then greatest(l.qty_expected - l.qty_received, 0) else 0 end,
           l.expected_at, l.status, l.status in ('OPEN', 'PARTIAL') and l.expected_at < now(), s.status
    from inventory.inbound_lines l
    join inventory.inbound_shipments s on s.id = l.shipment_id
    join inventory.products p on p.id = l.product_id
    join inventory.warehouses w on w.id = l.warehouse_id
    where (v_product_id is null or l.product_id = v_product_id)
      and (v_warehouse_id is null or l.warehouse_id = v_warehouse_id)
      and (coalesce(inbound.include_closed, false) or l.status in ('OPEN', 'PARTIAL'))
    order by l.expected_at, p.sku, w.code, s.reference, s.id;
end
$$;
comment on function inventory.inbound(text, text, boolean) is
  'Inbound lines, soonest first: expected, received and outstanding units per sku and warehouse (open lines unless include_closed)';
