-- Writes holds the caller has allocated on rows it has locked: the
-- reservation lines, one update per stock row (reserved grows by the row's
-- total, version by one per hold) and one RESERVE movement per hold, in the
-- order given, each carrying the row's on_hand/reserved right after it.
-- reserve()'s general path writes one reservation's holds, reserve_many() a
-- whole batch's in one go: a row taken by many requests changes once.
-- p_lines_written: the reservation lines exist already with these qty
-- (reserve()'s lean path writes its line before it takes the units).
drop function if exists inventory._write_holds(inventory._hold[]);
create or replace function inventory._write_holds(p_holds inventory._hold[], p_lines_written boolean default false) returns void
language plpgsql volatile
as $$
begin
  with hold as (
    select * from unnest(p_holds) with ordinality as h(reservation_id, product_id, warehouse_id, qty, reference, idempotency_key, actor, n)
  ),
  line as (
    insert into inventory.reservation_lines (reservation_id, product_id, warehouse_id, qty)
    select h.reservation_id, h.product_id, h.warehouse_id, h.qty from hold h where not p_lines_written
  ),
  per_row as (
    select h.product_id, h.warehouse_id, sum(h.qty)::integer as qty, count(*)::integer as changes
    from hold h group by h.product_id, h.warehouse_id
  ),
  changed as (
    update inventory.stock_levels s
    set reserved = s.reserved + r.qty, version = s.version + r.changes, last_movement_at = clock_timestamp()
    from per_row r
    where s.product_id = r.product_id and s.warehouse_id = r.warehouse_id
    returning s.product_id, s.warehouse_id, s.on_hand, s.reserved, r.qty as total
  )
  insert into inventory.movements (
    product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
    reservation_id, reference, idempotency_key, actor)
  select h.product_id, h.warehouse_id, 'RESERVE', 0, h.qty, c.on_hand,
         c.reserved - c.total + sum(h.qty) over (partition by h.product_id, h.warehouse_id order by h.n),
         h.reservation_id, h.reference, h.idempotency_key, h.actor
  from hold h
  join changed c on c.product_id = h.product_id and c.warehouse_id = h.warehouse_id
  order by h.n;
end
$$;
comment on function inventory._write_holds(inventory._hold[], boolean) is
  'Internal: write allocated holds (lines, stock rows, RESERVE movements) on rows the caller has locked';
