-- (Its first form did not take the argument's name; an overload would make calls ambiguous.)
drop function if exists inventory._product_id(text);

-- Product id of a sku: IV005 for a missing, blank or over-long sku (named as
-- p_argument), IV004 when unknown.
create or replace function inventory._product_id(p_sku text, p_argument text default 'sku') returns uuid
language plpgsql stable
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_id uuid;
begin
  if p_sku is null or btrim(p_sku) = '' or length(p_sku) > inventory._max_length('sku') then
    perform inventory._require_text(p_sku, p_argument, 'sku'); -- raises the IV005 that applies
  end if;
  select id into v_id from inventory.products where sku = p_sku;
  if v_id is null then
    perform inventory._raise('IV004', format('unknown sku %s', inventory._quote(p_sku)),
      jsonb_build_object('sku', inventory._clip(p_sku)),
      'Create it first with inventory.upsert_product(sku, name).');
  end if;
  return v_id;
end
$$;
comment on function inventory._product_id(text, text) is 'Internal: product id of a sku, IV005 when missing or too long, IV004 when unknown';
