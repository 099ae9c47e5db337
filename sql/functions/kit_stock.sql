-- kit_stock(skus): what kits can be sold, per warehouse and in total
-- (warehouse null), by the kit rule of _kit_rows: min over components of
-- floor(available / qty). Skus that are not kits (or unknown) have no rows.
-- status is what the catalog shows (in_stock, low_stock at or below the
-- kit's low_stock_threshold, out_of_stock), on the total row only.
create or replace function inventory.kit_stock(skus text[])
returns table (sku text, warehouse text, on_hand integer, available integer, low_stock_threshold integer, status text)
language plpgsql stable security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
begin
  if kit_stock.skus is null then
    perform inventory._raise('IV005', 'skus must be an array of sku texts', jsonb_build_object('argument', 'skus'));
  end if;
  return query
    select p.sku, w.code, r.on_hand, r.available, k.low_stock_threshold,
           case when r.warehouse_id is not null then null
                when r.available <= 0 then 'out_of_stock'
                when r.available <= k.low_stock_threshold then 'low_stock'
                else 'in_stock' end
    from (select distinct q.sku from unnest(kit_stock.skus) q(sku)) q
    join inventory.products p on p.sku = q.sku and p.is_kit
    join inventory.kits k on k.product_id = p.id
    cross join lateral inventory._kit_rows(array[p.id]) r
    left join inventory.warehouses w on w.id = r.warehouse_id
    order by p.sku, w.code nulls first;
end
$$;
comment on function inventory.kit_stock(text[]) is
  'Kits'' on_hand and available per warehouse and in total (warehouse null), min over components of floor(available / qty)';
