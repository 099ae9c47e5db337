create or replace function inventory._product_id(p_sku text) returns uuid
language plpgsql stable
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_id uuid;
begin
  if p_sku is null or btrim(p_sku) = '' then
    perform inventory._raise('IV005', 'sku must be a non-empty text', jsonb_build_object('argument', 'sku'));
  end if;
  select id into v_id from inventory.products where sku = p_sku;
  if v_id is null then
    perform inventory._raise('IV004', format('unknown sku %L', p_sku),
      jsonb_build_object('sku', p_sku),
      'Create it first with inventory.upsert_product(sku, name).');
  end if;
  return v_id;
end
$$;
comment on function inventory._product_id(text) is 'Internal: product id of a sku, IV004 when unknown';
