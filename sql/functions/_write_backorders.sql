-- Writes backorders the caller has allocated on rows it has locked (the
-- hold's qty is the units backordered): the row's backordered grows (its
-- CHECK keeps it within backorder_limit whatever happens), the reservation
-- line waits for them (a line holding units of the row already gets them
-- added), and one BACKORDER movement per backorder. Each backorder takes the
-- next backorder_seq while its row is locked: the row's queue is the order
-- in which backorders were made, which is the order they are filled in.
create or replace function inventory._write_backorders(p_backorders inventory._hold[]) returns void
language plpgsql volatile
as $$
begin
  with back as (
    select b.*, nextval('inventory.backorder_seq') as seq
    from (select * from unnest(p_backorders) with ordinality as b(reservation_id, product_id, warehouse_id, qty, reference, idempotency_key, actor, n)
          order by n) b
  ),
  line as (
    insert into inventory.reservation_lines as l (reservation_id, product_id, warehouse_id, qty, backordered, backorder_seq)
    select b.reservation_id, b.product_id, b.warehouse_id, 0, b.qty, b.seq from back b
    on conflict (reservation_id, product_id, warehouse_id) do update
      set backordered = l.backordered + excluded.backordered, backorder_seq = coalesce(l.backorder_seq, excluded.backorder_seq)
  ),
  per_row as (
    select b.product_id, b.warehouse_id, sum(b.qty)::integer as qty, count(*)::integer as changes
    from back b group by b.product_id, b.warehouse_id
  ),
  changed as (
    update inventory.stock_levels s
    set backordered = s.backordered + r.qty, version = s.version + r.changes, last_movement_at = clock_timestamp()
    from per_row r
    where s.product_id = r.product_id and s.warehouse_id = r.warehouse_id
    returning s.product_id, s.warehouse_id, s.on_hand, s.reserved, s.backordered, r.qty as total
  )
  insert into inventory.movements (
    product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
    backordered_delta, backordered_after, reservation_id, reference, idempotency_key, actor)
  select b.product_id, b.warehouse_id, 'BACKORDER', 0, 0, c.on_hand, c.reserved,
         b.qty, c.backordered - c.total + sum(b.qty) over (partition by b.product_id, b.warehouse_id order by b.n),
         b.reservation_id, b.reference, b.idempotency_key, b.actor
  from back b
  join changed c on c.product_id = b.product_id and c.warehouse_id = b.warehouse_id
  order by b.n;
end
$$;
comment on function inventory._write_backorders(inventory._hold[]) is
  'Internal: write allocated backorders (row backordered, line, queue position, BACKORDER movements) on rows the caller has locked';
