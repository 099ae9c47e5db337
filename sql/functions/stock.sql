-- stock(skus): bulk read of every stock row of the given skus (any count;
-- unknown skus simply have no rows), ordered by sku and warehouse code. A sku
-- longer than the maximum (_arguments.sql) cannot exist, so it is unknown
-- like any other: no rows, no error, as a read of a batch should be.
create or replace function inventory.stock(skus text[])
returns setof inventory.stock_row
language plpgsql stable security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
begin
  if stock.skus is null then
    perform inventory._raise('IV005', 'skus must be an array of sku texts', jsonb_build_object('argument', 'skus'));
  end if;
  return query
    select p.sku, w.code, s.on_hand, s.reserved, s.safety_stock,
           greatest(s.on_hand - s.reserved - s.safety_stock - s.unavailable, 0), s.version, s.last_movement_at, s.unavailable
    from (select distinct q.sku from unnest(stock.skus) q(sku)) q
    join inventory.products p on p.sku = q.sku
    join inventory.stock_levels s on s.product_id = p.id
    join inventory.warehouses w on w.id = s.warehouse_id
    where not p.is_kit
    union all
    select p.sku, w.code, r.on_hand, null, null, r.available, r.version, r.last_movement_at, null::integer
    from (select distinct q.sku from unnest(stock.skus) q(sku)) q
    join inventory.products p on p.sku = q.sku and p.is_kit
    cross join lateral inventory._kit_rows(array[p.id]) r
    join inventory.warehouses w on w.id = r.warehouse_id
    order by 1, 2;
end
$$;
comment on function inventory.stock(text[]) is 'Bulk read of stock rows for a list of skus';
