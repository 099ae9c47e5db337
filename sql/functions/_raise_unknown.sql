-- IV004 for reserve() lines naming skus or warehouses that do not exist.
create or replace function inventory._raise_unknown(p_skus text[], p_warehouses text[]) returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  perform inventory._raise('IV004',
    concat_ws('; ',
      'unknown sku ' || (select string_agg(quote_literal(s), ', ') from unnest(p_skus) s),
      'unknown warehouse ' || (select string_agg(quote_literal(s), ', ') from unnest(p_warehouses) s)),
    jsonb_build_object('unknown_skus', coalesce(to_jsonb(p_skus), '[]'),
                       'unknown_warehouses', coalesce(to_jsonb(p_warehouses), '[]')),
    'Create products with inventory.upsert_product(sku) and warehouses with inventory.upsert_warehouse(code).');
end
$$;
comment on function inventory._raise_unknown(text[], text[]) is 'Internal: IV004 for unknown skus and warehouses in reserve() lines';
