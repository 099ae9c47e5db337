-- Locks every candidate stock row of a request in (product_id, warehouse_id)
-- order (the rows its lines name, and every row of a product whose line
-- leaves the warehouse open) and allocates over them. When short, first takes
-- in rows that became visible after the lock statement's snapshot (a
-- concurrent transfer() or adjust() created them: READ COMMITTED re-reads
-- locked rows but never finds new ones), then expires due HELD reservations
-- on the rows, allocating again after each step. Returns the take per row
-- or, if still short, every short line.
-- p_pending: holds this transaction has taken but not written yet
-- (reserve_many's earlier requests); they are not available again. Likewise
-- p_pending_backorders for what rows may still backorder. backorder: what
-- to backorder per row when the policy of a row allows selling beyond it. When
-- given, the caller already holds stock rows (it locked every row it knew of,
-- in key order): then a row it does not hold yet is taken only if it is free
-- right now (SKIP LOCKED, as for new rows), since waiting for it out of key
-- order could deadlock.
-- p_ranks: a channel request's ranks (_channel_request): the rows of a
-- ranked product are its ranked rows only, for locking as for allocation.
drop function if exists inventory._allocate_locked(inventory._line[], inventory._line[]);
drop function if exists inventory._allocate_locked(inventory._line[], inventory._line[], inventory._line[]);
create or replace function inventory._allocate_locked(
  p_lines inventory._line[],
  p_pending inventory._line[] default null,
  p_pending_backorders inventory._line[] default null,
  p_ranks inventory._rank[] default null,
  out take inventory._line[],
  out short jsonb,
  out backorder inventory._line[]
)
language plpgsql volatile
as $$
declare
  v_products uuid[];
  v_warehouses uuid[];
  v_new_products uuid[];
  v_new_warehouses uuid[];
  v_lock_lines inventory._line[]; -- with p_ranks: the lines whose candidate rows are the ones to lock
begin
  if p_ranks is not null then
    v_lock_lines := inventory._ranked_lines(p_lines, p_ranks);
  end if;
  if p_pending is null then
    select array_agg(s.product_id), array_agg(s.warehouse_id)
    into v_products, v_warehouses
    from (
      select s.product_id, s.warehouse_id
      from inventory.stock_levels s
      where (s.product_id, s.warehouse_id) in (select * from inventory._candidate_rows(coalesce(v_lock_lines, p_lines)))
      order by s.product_id, s.warehouse_id
      for update of s
    ) s;
  else
    -- (Rows this transaction holds are locked again at once; SKIP LOCKED skips only others'.)
    select array_agg(s.product_id), array_agg(s.warehouse_id)
    into v_products, v_warehouses
    from (
      select s.product_id, s.warehouse_id
      from inventory.stock_levels s
      where (s.product_id, s.warehouse_id) in (select * from inventory._candidate_rows(coalesce(v_lock_lines, p_lines)))
      order by s.product_id, s.warehouse_id
      for update of s skip locked
    ) s;
  end if;
  select a.take, a.short, a.backorder into take, short, backorder
  from inventory._allocate(p_lines, inventory._slots(v_products, v_warehouses, p_pending, p_pending_backorders), p_ranks) a;
  if short is null and backorder is null then
    return;
  end if;

  -- Rows this statement's fresh snapshot sees that the lock statement did not.
  -- SKIP LOCKED: we hold rows already, so waiting here could break key order;
  -- a row busy right now counts as unavailable for this call.
  select array_agg(s.product_id), array_agg(s.warehouse_id)
  into v_new_products, v_new_warehouses
  from (
    select s.product_id, s.warehouse_id from inventory.stock_levels s
    where (s.product_id, s.warehouse_id) in (
        select * from inventory._candidate_rows(coalesce(v_lock_lines, p_lines))
        except
        select * from unnest(coalesce(v_products, '{}'), coalesce(v_warehouses, '{}')))
    order by s.product_id, s.warehouse_id
    for update of s skip locked
  ) s;
  if v_new_products is not null then
    v_products := coalesce(v_products, '{}') || v_new_products;
    v_warehouses := coalesce(v_warehouses, '{}') || v_new_warehouses;
    select a.take, a.short, a.backorder into take, short, backorder
    from inventory._allocate(p_lines, inventory._slots(v_products, v_warehouses, p_pending, p_pending_backorders), p_ranks) a;
    if short is null and backorder is null then
      return;
    end if;
  end if;

  if inventory._expire_due_on_rows(v_products, v_warehouses) > 0 then
    select a.take, a.short, a.backorder into take, short, backorder
    from inventory._allocate(p_lines, inventory._slots(v_products, v_warehouses, p_pending, p_pending_backorders), p_ranks) a;
  end if;
end
$$;
comment on function inventory._allocate_locked(inventory._line[], inventory._line[], inventory._line[], inventory._rank[]) is
  'Internal: lock a request''s candidate rows in key order and allocate, taking in new rows and expiring due reservations when short';
