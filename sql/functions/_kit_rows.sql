-- A kit's stock, derived from its components' rows, the one statement of the
-- kit rule: per warehouse where any component has a row, and in total
-- (warehouse_id null), a kit has
--   on_hand   = min over components of floor(on_hand / qty)
--   available = min over components of floor(available / qty)
-- where a component without a row in the warehouse counts 0, and the total
-- takes each component's sums over warehouses (a kit line left to
-- allocation may take its components from different warehouses).
-- version is the sum of the component rows' versions (it grows with every
-- change of any of them), last_movement_at the latest of theirs.
-- (The cache states the same rule in src/cache/row.ts; the model test holds both to one answer.)
create or replace function inventory._kit_rows(p_kit_ids uuid[])
returns table (kit_id uuid, warehouse_id uuid, on_hand integer, available integer, version bigint, last_movement_at timestamptz)
language sql stable
as $$
  with component_row as (
    select c.kit_id, c.component_id, c.qty, s.warehouse_id, s.on_hand,
           greatest(s.on_hand - s.reserved - s.safety_stock - s.unavailable, 0) as available, s.version, s.last_movement_at
    from inventory.kit_components c
    join inventory.stock_levels s on s.product_id = c.component_id
    where c.kit_id = any (p_kit_ids)
  ),
  kit_warehouse as (
    select distinct r.kit_id, r.warehouse_id from component_row r
  ),
  per_warehouse as (
    select kw.kit_id, kw.warehouse_id,
           min(coalesce(r.on_hand, 0) / c.qty)::integer as on_hand,
           min(coalesce(r.available, 0) / c.qty)::integer as available,
           coalesce(sum(r.version), 0)::bigint as version,
           max(r.last_movement_at) as last_movement_at
    from kit_warehouse kw
    join inventory.kit_components c on c.kit_id = kw.kit_id
    left join component_row r on r.kit_id = kw.kit_id and r.component_id = c.component_id and r.warehouse_id = kw.warehouse_id
    group by kw.kit_id, kw.warehouse_id
  ),
  total as (
    select c.kit_id, null::uuid as warehouse_id,
           min(coalesce(t.on_hand, 0) / c.qty)::integer as on_hand,
           min(coalesce(t.available, 0) / c.qty)::integer as available,
           coalesce(sum(t.version), 0)::bigint as version,
           max(t.last_movement_at) as last_movement_at
    from inventory.kit_components c
    left join (
      select r.kit_id, r.component_id, sum(r.on_hand) as on_hand, sum(r.available) as available,
             sum(r.version) as version, max(r.last_movement_at) as last_movement_at
      from component_row r group by 1, 2
    ) t on t.kit_id = c.kit_id and t.component_id = c.component_id
    where c.kit_id = any (p_kit_ids)
    group by c.kit_id
  )
  select * from per_warehouse
  union all
  select * from total
$$;
comment on function inventory._kit_rows(uuid[]) is
  'Internal: kits'' on_hand and available per warehouse and in total (warehouse null), from their components';
