-- in_transit(sku, from_warehouse, to_warehouse): what is on its way, per
-- route (sku, from, to): the open shipments, the units in transit, and when
-- the oldest of them left. Every filter optional; an unknown sku or warehouse
-- is IV004, as for movement_history.
create or replace function inventory.in_transit(
  sku text default null,
  from_warehouse text default null,
  to_warehouse text default null
) returns setof inventory.transit_route
language plpgsql stable security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_product_id uuid;
  v_from_id uuid;
  v_to_id uuid;
begin
  if in_transit.sku is not null then v_product_id := inventory._product_id(in_transit.sku); end if;
  if in_transit.from_warehouse is not null then v_from_id := inventory._warehouse_id(in_transit.from_warehouse, 'from_warehouse'); end if;
  if in_transit.to_warehouse is not null then v_to_id := inventory._warehouse_id(in_transit.to_warehouse, 'to_warehouse'); end if;
  return query
    select p.sku, f.code, t.code, count(*)::integer, sum(s.qty_in_transit)::bigint, min(s.shipped_at)
    from inventory.transit_shipments s
    join inventory.products p on p.id = s.product_id
    join inventory.warehouses f on f.id = s.from_warehouse_id
    join inventory.warehouses t on t.id = s.to_warehouse_id
    where s.closed_at is null
      and (v_product_id is null or s.product_id = v_product_id)
      and (v_from_id is null or s.from_warehouse_id = v_from_id)
      and (v_to_id is null or s.to_warehouse_id = v_to_id)
    group by p.sku, f.code, t.code
    order by p.sku, f.code, t.code;
end
$$;
comment on function inventory.in_transit(text, text, text) is
  'Units in transit per route (sku, from warehouse, to warehouse), with the open shipments and the oldest shipping time; filters optional';
