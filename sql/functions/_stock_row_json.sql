-- The identifying part of a stock row for error details (arguments clipped: _clip),
-- with its units in quantity states when it has any.
create or replace function inventory._stock_row_json(p_sku text, p_warehouse text, p_row inventory.stock_levels)
returns jsonb
language sql immutable
set search_path = pg_catalog, inventory, pg_temp
as $$
  select jsonb_build_object('sku', inventory._clip(p_sku), 'warehouse', inventory._clip(p_warehouse),
    'on_hand', coalesce(p_row.on_hand, 0), 'reserved', coalesce(p_row.reserved, 0))
    -- Units in quantity states only where there are any: the detail keeps its shape for rows without.
    || case when coalesce(p_row.unavailable, 0) > 0 then jsonb_build_object('unavailable', p_row.unavailable) else '{}' end
$$;
comment on function inventory._stock_row_json(text, text, inventory.stock_levels) is 'Internal: error detail of a stock row';
