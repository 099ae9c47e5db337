-- Fills a stock row's waiting backorders from what it has available, first
-- come first served (backorder_seq), after a change that may have made room
-- (a receipt, a count or transfer in, a release or expiry). The caller holds
-- the row's lock. Per waiting line, as far as the units go:
--   - of a HELD reservation: the units become held (reserved grows; the
--     reservation's confirm takes them like any other);
--   - of a CONFIRMED reservation (sold, waiting for stock): the units leave
--     (on_hand drops), as a confirm would have taken them.
-- One FILL movement per line filled, in queue order. Returns the units filled.
create or replace function inventory._fill_backorders(p_product_id uuid, p_warehouse_id uuid) returns integer
language plpgsql volatile
as $$
declare
  v_filled integer;
begin
  with row_now as (
    select s.on_hand, s.reserved, s.backordered, greatest(s.on_hand - s.reserved - s.safety_stock - s.unavailable, 0) as free
    from inventory.stock_levels s
    where s.product_id = p_product_id and s.warehouse_id = p_warehouse_id and s.backordered > 0
  ),
  queue as (
    select l.reservation_id, l.backordered, l.backorder_seq, r.status, r.order_ref, r.idempotency_key,
           coalesce(sum(l.backordered) over (order by l.backorder_seq rows between unbounded preceding and 1 preceding), 0) as before
    from inventory.reservation_lines l
    join inventory.reservations r on r.id = l.reservation_id
    where l.product_id = p_product_id and l.warehouse_id = p_warehouse_id and l.backordered > 0
  ),
  fill as (
    select q.reservation_id, q.backorder_seq, q.status, q.order_ref, q.idempotency_key,
           least(q.backordered, greatest(n.free - q.before, 0))::integer as qty,
           case when q.status = 'CONFIRMED' then 1 else 0 end as leaves
    from queue q cross join row_now n
    where n.free > q.before
  ),
  running as (
    select f.*,
           sum(f.qty * f.leaves) over w as left_so_far,
           sum(f.qty * (1 - f.leaves)) over w as held_so_far,
           sum(f.qty) over w as filled_so_far
    from fill f
    window w as (order by f.backorder_seq)
  ),
  line as (
    update inventory.reservation_lines l
    set backordered = l.backordered - f.qty,
        qty = l.qty + f.qty * (1 - f.leaves),
        confirmed = l.confirmed + f.qty * f.leaves
    from fill f
    where l.reservation_id = f.reservation_id and l.product_id = p_product_id and l.warehouse_id = p_warehouse_id
  ),
  changed as (
    update inventory.stock_levels s
    set on_hand = s.on_hand - t.left_total, reserved = s.reserved + t.held_total, backordered = s.backordered - t.total,
        version = s.version + t.changes, last_movement_at = clock_timestamp()
    from (select coalesce(sum(qty * leaves), 0)::integer as left_total, coalesce(sum(qty * (1 - leaves)), 0)::integer as held_total,
                 coalesce(sum(qty), 0)::integer as total, count(*)::integer as changes from fill) t
    where s.product_id = p_product_id and s.warehouse_id = p_warehouse_id and t.changes > 0
  ),
  moved as (
    insert into inventory.movements (
      product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
      backordered_delta, backordered_after, reason, reservation_id, reference, idempotency_key, actor)
    select p_product_id, p_warehouse_id, 'FILL', -r.qty * r.leaves, r.qty * (1 - r.leaves),
           n.on_hand - r.left_so_far, n.reserved + r.held_so_far,
           -r.qty, n.backordered - r.filled_so_far,
           case when r.leaves = 1 then 'CONFIRMED' else 'HELD' end, r.reservation_id, r.order_ref, r.idempotency_key, inventory._actor()
    from running r cross join row_now n
    order by r.backorder_seq
  )
  select coalesce(sum(qty), 0) into v_filled from fill;
  return v_filled;
end
$$;
comment on function inventory._fill_backorders(uuid, uuid) is
  'Internal: fill a locked stock row''s waiting backorders first come first served (FILL movements)';
