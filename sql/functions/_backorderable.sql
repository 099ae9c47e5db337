-- How many more units a stock row may sell beyond what it has, now: its
-- backorder_limit less what is backordered already, under policy BACKORDER,
-- or PREORDER until preorder_until; 0 under DENY or after the preorder date.
-- The one statement of the rule (the cache's status follows it: src/cache/row.ts).
create or replace function inventory._backorderable(p_row inventory.stock_levels) returns integer
language sql stable
as $$
  select case
    when p_row.backorder_policy = 'BACKORDER' or (p_row.backorder_policy = 'PREORDER' and now() < p_row.preorder_until)
      then greatest(p_row.backorder_limit - p_row.backordered, 0)
    else 0 end
$$;
comment on function inventory._backorderable(inventory.stock_levels) is
  'Internal: units a stock row may still sell beyond what it has (backorder or preorder), now';
