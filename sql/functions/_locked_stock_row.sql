-- Locks one stock row; with p_create, makes it (all zero) when missing.
-- Returns null when the row is missing and p_create is false.
create or replace function inventory._locked_stock_row(p_product_id uuid, p_warehouse_id uuid, p_create boolean)
returns inventory.stock_levels
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_row inventory.stock_levels;
begin
  select * into v_row from inventory.stock_levels
  where product_id = p_product_id and warehouse_id = p_warehouse_id
  for update;
  if v_row.product_id is null and p_create then
    insert into inventory.stock_levels (product_id, warehouse_id)
    values (p_product_id, p_warehouse_id)
    on conflict do nothing;
    -- Inserted here, or by a concurrent call: either way lock it now.
    select * into v_row from inventory.stock_levels
    where product_id = p_product_id and warehouse_id = p_warehouse_id
    for update;
  end if;
  return v_row;
end
$$;
comment on function inventory._locked_stock_row(uuid, uuid, boolean) is
  'Internal: lock (and optionally create) one stock row';
