-- end_preorders(): rows whose preorder window has passed (PREORDER with
-- preorder_until in the past) become DENY, keeping preorder_until as the
-- date the preorder ended and every unit still waiting. reserve() stops
-- preordering at the date by itself (_backorderable); this is the change
-- the catalog cache sees (the worker runs it every minute), so its status
-- stops saying "preorder". Returns the rows changed.
create or replace function inventory.end_preorders()
returns integer
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_ended integer;
begin
  with due as (
    select s.product_id, s.warehouse_id from inventory.stock_levels s
    where s.backorder_policy = 'PREORDER' and s.preorder_until <= now()
    order by s.product_id, s.warehouse_id
    for update of s skip locked -- a row busy now ends at the next run
  )
  update inventory.stock_levels s
  set backorder_policy = 'DENY', version = s.version + 1, last_movement_at = clock_timestamp()
  from due
  where s.product_id = due.product_id and s.warehouse_id = due.warehouse_id;
  get diagnostics v_ended = row_count;
  return v_ended;
end
$$;
comment on function inventory.end_preorders() is
  'Rows whose preorder_until has passed become DENY (the worker runs it every minute); returns how many';
