-- set_policy(sku, warehouse, safety_stock, low_stock_threshold): how much of a
-- row is never offered (safety_stock) and when it counts as low. A null leaves
-- that value as it is. Creates the (empty) stock row if needed. No movement:
-- on_hand and reserved do not change, but version and last_movement_at do, so
-- the cache and the incremental sync follow.
create or replace function inventory.set_policy(
  sku text,
  warehouse text,
  safety_stock integer default null,
  low_stock_threshold integer default null
) returns inventory.stock_levels
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
set plan_cache_mode = force_generic_plan -- see reserve.sql
as $$
#variable_conflict use_column
declare
  v_product_id uuid := inventory._stocked_product_id(set_policy.sku);
  v_warehouse_id uuid := inventory._warehouse_id(set_policy.warehouse);
  v_row inventory.stock_levels;
begin
  if set_policy.safety_stock < 0 then
    perform inventory._raise('IV005', format('safety_stock must be zero or more, got %s', set_policy.safety_stock),
      jsonb_build_object('argument', 'safety_stock'));
  end if;
  if set_policy.low_stock_threshold < 0 then
    perform inventory._raise('IV005', format('low_stock_threshold must be zero or more, got %s', set_policy.low_stock_threshold),
      jsonb_build_object('argument', 'low_stock_threshold'));
  end if;
  v_row := inventory._locked_stock_row(v_product_id, v_warehouse_id, true);
  if set_policy.safety_stock is null and set_policy.low_stock_threshold is null then
    return v_row;
  end if;
  update inventory.stock_levels s
  set safety_stock = coalesce(set_policy.safety_stock, s.safety_stock),
      low_stock_threshold = coalesce(set_policy.low_stock_threshold, s.low_stock_threshold),
      version = s.version + 1,
      last_movement_at = clock_timestamp() -- the incremental sync's watermark: available changed
  where s.product_id = v_product_id and s.warehouse_id = v_warehouse_id
  returning * into v_row;
  -- A lower safety stock makes units available: waiting backorders take them first.
  if v_row.backordered > 0 and inventory._fill_backorders(v_product_id, v_warehouse_id) > 0 then
    select * into v_row from inventory.stock_levels s where s.product_id = v_product_id and s.warehouse_id = v_warehouse_id;
  end if;
  return v_row;
end
$$;
comment on function inventory.set_policy(text, text, integer, integer) is
  'Set safety_stock and/or low_stock_threshold of a stock row (null keeps the current value)';
