-- The stock rows a request's lines could take from: the row each named line
-- names, and every row of a product whose line leaves the warehouse open.
-- (A set-returning SQL function without SET: PostgreSQL inlines it into the
-- statements that lock these rows.)
create or replace function inventory._candidate_rows(p_lines inventory._line[])
returns table (product_id uuid, warehouse_id uuid)
language sql stable
as $$
  select l.product_id, l.warehouse_id from unnest(p_lines) l where l.warehouse_id is not null
  union
  select s.product_id, s.warehouse_id
  from unnest(p_lines) l join inventory.stock_levels s on s.product_id = l.product_id
  where l.warehouse_id is null
$$;
comment on function inventory._candidate_rows(inventory._line[]) is 'Internal: the stock rows a reserve() request could take from';
