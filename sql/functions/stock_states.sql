-- stock_states(skus): the units of each stock row of these skus in each
-- quantity state (rows with none are left out), by sku, warehouse and state.
-- stock() gives their sum per row (unavailable).
create or replace function inventory.stock_states(skus text[])
returns setof inventory.stock_state_row
language plpgsql stable security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
begin
  if stock_states.skus is null then
    perform inventory._raise('IV005', 'skus must be an array of sku texts', jsonb_build_object('argument', 'skus'));
  end if;
  return query
    select p.sku, w.code, t.state, t.qty
    from (select distinct q.sku from unnest(stock_states.skus) q(sku)) q
    join inventory.products p on p.sku = q.sku
    join inventory.stock_level_states t on t.product_id = p.id
    join inventory.warehouses w on w.id = t.warehouse_id
    where t.qty > 0
    order by 1, 2, 3;
end
$$;
comment on function inventory.stock_states(text[]) is 'Units per quantity state of the stock rows of a list of skus';
