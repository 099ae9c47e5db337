-- IV004 for reserve() lines naming skus or warehouses that do not exist.
create or replace function inventory._unknown_error(p_skus text[], p_warehouses text[]) returns inventory._error
language sql immutable
as $$
  select row('IV004',
    concat_ws('; ',
      'unknown sku ' || (select string_agg(quote_literal(s), ', ') from unnest(p_skus) s),
      'unknown warehouse ' || (select string_agg(quote_literal(s), ', ') from unnest(p_warehouses) s)),
    jsonb_build_object('unknown_skus', coalesce(to_jsonb(p_skus), '[]'),
                       'unknown_warehouses', coalesce(to_jsonb(p_warehouses), '[]')),
    'Create products with inventory.upsert_product(sku) and warehouses with inventory.upsert_warehouse(code).'
  )::inventory._error
$$;
comment on function inventory._unknown_error(text[], text[]) is 'Internal: IV004 for unknown skus and warehouses in reserve() lines';
