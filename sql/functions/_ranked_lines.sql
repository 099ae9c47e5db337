-- A channel request's lines as _candidate_rows should see them for locking:
-- a line without a warehouse of a product in p_ranks becomes its ranked rows
-- (each a line naming its warehouse, qty 0), so that only the channel's rows
-- of it are locked; every other line stays as it is.
create or replace function inventory._ranked_lines(p_lines inventory._line[], p_ranks inventory._rank[])
returns inventory._line[]
language sql immutable
as $$
  select array(
    select row(l.product_id, l.warehouse_id, l.qty)::inventory._line from unnest(p_lines) l
    where l.warehouse_id is not null or l.product_id <> all (array(select k.product_id from unnest(p_ranks) k))
    union all
    select row(k.product_id, k.warehouse_id, 0)::inventory._line from unnest(p_ranks) k)
$$;
comment on function inventory._ranked_lines(inventory._line[], inventory._rank[]) is
  'Internal: a channel request''s lines with each ranked open line replaced by its ranked rows (for locking)';
