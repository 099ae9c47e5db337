-- Product id of a sku that holds stock of its own: _product_id's errors, and
-- IV005 for a kit (its stock is its components'; adjust, count, transfer
-- and policy apply to them).
create or replace function inventory._stocked_product_id(p_sku text, p_argument text default 'sku') returns uuid
language plpgsql stable
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_id uuid := inventory._product_id(p_sku, p_argument);
begin
  if (select is_kit from inventory.products where id = v_id) then
    perform inventory._raise('IV005', format('%s is a kit: it holds no stock of its own', inventory._quote(p_sku)),
      jsonb_build_object('argument', p_argument, 'sku', inventory._clip(p_sku)),
      'Change the stock of its components instead; inventory.kit_stock(skus) shows what the kit can sell.');
  end if;
  return v_id;
end
$$;
comment on function inventory._stocked_product_id(text, text) is 'Internal: product id of a sku that is not a kit (IV005 for a kit)';
