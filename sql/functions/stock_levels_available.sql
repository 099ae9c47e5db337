-- available of a stock row: what can be reserved. PostGraphile shows it as
-- StockLevel.available (a computed column).
create or replace function inventory.stock_levels_available(stock_level inventory.stock_levels)
returns integer
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select greatest(stock_level.on_hand - stock_level.reserved - stock_level.safety_stock - stock_level.unavailable, 0)
$$;
comment on function inventory.stock_levels_available(inventory.stock_levels) is
  'available = greatest(on_hand - reserved - safety_stock - unavailable, 0)';
