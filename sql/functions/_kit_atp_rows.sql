-- A kit's available-to-promise by p_at, by the kit rule of _kit_rows applied
-- to its components' _atp_rows: per warehouse where any component has a row,
-- min over components of floor(atp / qty) (a component without a row there
-- counts 0); in total (warehouse_id null), the same over each component's
-- sums across warehouses. available likewise, from the components' available.
create or replace function inventory._kit_atp_rows(p_kit_id uuid, p_at timestamptz)
returns table (warehouse_id uuid, available integer, atp integer)
language sql stable
as $$
  with component as (
    select c.component_id, c.qty from inventory.kit_components c where c.kit_id = p_kit_id
  ),
  component_row as (
    select r.* from inventory._atp_rows(array(select component_id from component), p_at) r
  ),
  per_warehouse as (
    select w.warehouse_id, min(coalesce(r.available, 0) / c.qty)::integer as available, min(coalesce(r.atp, 0) / c.qty)::integer as atp
    from (select distinct r.warehouse_id from component_row r) w
    cross join component c
    left join component_row r on r.product_id = c.component_id and r.warehouse_id = w.warehouse_id
    group by w.warehouse_id
  ),
  total as (
    select null::uuid as warehouse_id, coalesce(min(coalesce(t.available, 0) / c.qty), 0)::integer, coalesce(min(coalesce(t.atp, 0) / c.qty), 0)::integer
    from component c
    left join (select r.product_id, sum(r.available) as available, sum(r.atp) as atp from component_row r group by 1) t
      on t.product_id = c.component_id
  )
  select * from per_warehouse
  union all
  select * from total
$$;
comment on function inventory._kit_atp_rows(uuid, timestamptz) is
  'Internal: a kit''s available and available-to-promise per warehouse and in total, from its components'' by the kit rule';
