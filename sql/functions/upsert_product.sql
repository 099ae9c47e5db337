-- upsert_product(sku, name): create a product, or rename it; a null name
-- leaves the current one.
create or replace function inventory.upsert_product(sku text, name text default null)
returns inventory.products
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_product inventory.products;
begin
  perform inventory._require_text(upsert_product.sku, 'sku', 'sku');
  if upsert_product.sku <> btrim(upsert_product.sku) then
    perform inventory._raise('IV005',
      format('sku %s must not have leading or trailing spaces', inventory._quote(upsert_product.sku)),
      jsonb_build_object('argument', 'sku'));
  end if;
  perform inventory._check_length(upsert_product.name, 'name', 'name');
  insert into inventory.products as p (sku, name)
  values (upsert_product.sku, upsert_product.name)
  on conflict (sku) do update
    set name = coalesce(excluded.name, p.name), updated_at = now()
    where excluded.name is not null and excluded.name is distinct from p.name
  returning * into v_product;
  if v_product.id is null then -- exists, nothing to change
    select * into v_product from inventory.products p where p.sku = upsert_product.sku;
  end if;
  return v_product;
end
$$;
comment on function inventory.upsert_product(text, text) is 'Create a product or rename it (a null name keeps the current one)';
