-- IV004 for reserve() lines naming skus or warehouses that do not exist
-- (each quoted through _quote and _clip).
create or replace function inventory._unknown_error(p_skus text[], p_warehouses text[]) returns inventory._error
language sql immutable
as $$
  select row('IV004',
    concat_ws('; ',
      'unknown sku ' || (select string_agg(inventory._quote(s), ', ') from unnest(p_skus) s),
      'unknown warehouse ' || (select string_agg(inventory._quote(s), ', ') from unnest(p_warehouses) s)),
    jsonb_build_object(
      'unknown_skus', coalesce((select jsonb_agg(inventory._clip(s) order by n) from unnest(p_skus) with ordinality u(s, n)), '[]'),
      'unknown_warehouses', coalesce((select jsonb_agg(inventory._clip(s) order by n) from unnest(p_warehouses) with ordinality u(s, n)), '[]')),
    'Create products with inventory.upsert_product(sku) and warehouses with inventory.upsert_warehouse(code).'
  )::inventory._error
$$;
comment on function inventory._unknown_error(text[], text[]) is 'Internal: IV004 for unknown skus and warehouses in reserve() lines';
