-- available_to_promise(sku, warehouse, at): what can be promised by `at`
-- (default now): per warehouse (_atp_rows: available now, minus the units
-- already backordered on the row, plus inbound expected by `at` and not
-- received yet), and, without a warehouse, in total (warehouse null, first):
-- the sum of the warehouses' atp (a row's waiting backorders are filled from
-- that row only, so one warehouse's shortfall takes nothing from another).
-- A named warehouse always has its row (zeros when nothing is there or on
-- its way). A kit's atp is its components' by the kit rule (min over
-- components of floor(atp / qty), per warehouse and over the totals); its
-- backordered and inbound are null. IV004 for an unknown sku or warehouse.
-- One statement: one snapshot of stock rows and inbound lines.
create or replace function inventory.available_to_promise(
  sku text,
  warehouse text default null,
  at timestamptz default now()
) returns setof inventory.atp_row
language plpgsql stable security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_product_id uuid := inventory._product_id(available_to_promise.sku);
  v_warehouse_id uuid;
  v_is_kit boolean := (select p.is_kit from inventory.products p where p.id = v_product_id);
begin
  if available_to_promise.warehouse is not null then
    v_warehouse_id := inventory._warehouse_id(available_to_promise.warehouse);
  end if;
  if available_to_promise.at is null then
    perform inventory._raise('IV005', 'at must be a date and time (leave it out for now)', jsonb_build_object('argument', 'at'));
  end if;
  return query
    with per_row as (
      select r.warehouse_id, r.available, r.backordered, r.inbound, r.atp
      from inventory._atp_rows(array[v_product_id], available_to_promise.at) r
      where not v_is_kit
      union all
      -- (with its total: warehouse_id null)
      select k.warehouse_id, k.available, null, null, k.atp
      from inventory._kit_atp_rows(v_product_id, available_to_promise.at) k
      where v_is_kit
    ),
    answer as (
      select * from per_row r where v_warehouse_id is null or r.warehouse_id = v_warehouse_id
      union all
      select null, sum(r.available)::integer, sum(r.backordered)::integer, sum(r.inbound)::integer, sum(r.atp)::integer
      from per_row r
      having not v_is_kit and v_warehouse_id is null
      union all
      select v_warehouse_id, 0, null, null, 0
      where v_warehouse_id is not null and not exists (select from per_row r where r.warehouse_id = v_warehouse_id)
    )
    select available_to_promise.sku, w.code, coalesce(a.available, 0),
           case when not v_is_kit then coalesce(a.backordered, 0) end, case when not v_is_kit then coalesce(a.inbound, 0) end,
           coalesce(a.atp, 0)
    from answer a
    left join inventory.warehouses w on w.id = a.warehouse_id
    order by w.code nulls first;
end
$$;
comment on function inventory.available_to_promise(text, text, timestamptz) is
  'What can be promised by a date: per warehouse and in total, available now - backordered + inbound expected by then';
