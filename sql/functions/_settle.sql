-- Ends HELD reservations: CONFIRM (on_hand and reserved both drop), RELEASE or
-- EXPIRE (reserved drops). The caller has locked the reservations and checked
-- they are HELD. One movement per reservation line, in (row, reservation) order,
-- each carrying the row's on_hand/reserved right after it.
create or replace function inventory._settle(
  p_reservation_ids uuid[],
  p_kind text,
  p_reason text
) returns void
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_confirm integer := case when p_kind = 'CONFIRM' then 1 else 0 end;
  v_waiting boolean;
  v_status text := case p_kind when 'CONFIRM' then 'CONFIRMED' when 'RELEASE' then 'RELEASED' else 'EXPIRED' end;
begin
  if p_kind not in ('CONFIRM', 'RELEASE', 'EXPIRE') then
    raise exception 'inventory._settle: unknown kind %', p_kind;
  end if;

  -- Lock every stock row involved in key order, the one order every function
  -- uses, so settling never deadlocks with reserve() or another settle.
  perform 1 from (
    select 1 from inventory.stock_levels s
    where (s.product_id, s.warehouse_id) in (
      select l.product_id, l.warehouse_id from inventory.reservation_lines l
      where l.reservation_id = any (p_reservation_ids) and (l.qty > 0 or l.backordered > 0))
    order by s.product_id, s.warehouse_id
    for update of s
  ) locked;

  -- A line's waiting backorder (backordered) is cancelled by a release or
  -- expiry; a confirm leaves it waiting (the sale stands; _fill_backorders
  -- ships the units when they arrive).
  with line as (
    select l.reservation_id, l.product_id, l.warehouse_id, l.qty, l.back,
           sum(l.qty) over w as qty_so_far, sum(l.back) over w as back_so_far
    from (select l.*, l.backordered * (1 - v_confirm) as back from inventory.reservation_lines l
          where l.reservation_id = any (p_reservation_ids)) l
    where l.qty > 0 or l.back > 0 -- (a line edited down to 0 holds nothing)
    window w as (partition by l.product_id, l.warehouse_id order by l.reservation_id)
  ),
  per_row as (
    select product_id, warehouse_id, sum(qty)::integer as qty, sum(back)::integer as back, count(*) as changes
    from line group by product_id, warehouse_id
  ),
  changed as (
    update inventory.stock_levels s
    set reserved = s.reserved - r.qty,
        on_hand = s.on_hand - r.qty * v_confirm,
        backordered = s.backordered - r.back,
        version = s.version + r.changes,
        last_movement_at = clock_timestamp()
    from per_row r
    where s.product_id = r.product_id and s.warehouse_id = r.warehouse_id
    returning s.product_id, s.warehouse_id, s.on_hand, s.reserved, s.backordered, r.qty as total, r.back as back_total
  ),
  cancelled as (
    update inventory.reservation_lines l set backordered = 0
    from line
    where line.back > 0 and l.reservation_id = line.reservation_id and l.product_id = line.product_id and l.warehouse_id = line.warehouse_id
  ),
  moved as (
  insert into inventory.movements (
    product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
    backordered_delta, backordered_after, reason, reservation_id, reference, idempotency_key, actor)
  select l.product_id, l.warehouse_id, p_kind, -l.qty * v_confirm, -l.qty,
         c.on_hand + (c.total - l.qty_so_far) * v_confirm,
         c.reserved + (c.total - l.qty_so_far),
         -l.back, case when l.back > 0 then c.backordered + (c.back_total - l.back_so_far) end,
         p_reason, l.reservation_id, r.order_ref, r.idempotency_key, inventory._actor()
  from line l
  join changed c on c.product_id = l.product_id and c.warehouse_id = l.warehouse_id
  join inventory.reservations r on r.id = l.reservation_id
  where l.qty > 0 or l.back > 0
  order by l.product_id, l.warehouse_id, l.reservation_id
  )
  -- (The writes above run whether read or not; this asks whether a row has a queue.)
  select coalesce(bool_or(c.backordered > 0), false) into v_waiting from changed c;

  -- Units given back go to the rows' waiting backorders first.
  if v_confirm = 0 and v_waiting then
    perform inventory._fill_backorders(s.product_id, s.warehouse_id)
    from inventory.stock_levels s
    where (s.product_id, s.warehouse_id) in (
        select l.product_id, l.warehouse_id from inventory.reservation_lines l where l.reservation_id = any (p_reservation_ids))
      and s.backordered > 0
    order by s.product_id, s.warehouse_id;
  end if;

  update inventory.reservations
  set status = v_status,
      release_reason = case when p_kind = 'CONFIRM' then null else p_reason end,
      updated_at = now()
  where id = any (p_reservation_ids);
end
$$;
comment on function inventory._settle(uuid[], text, text) is
  'Internal: confirm, release or expire locked HELD reservations, writing their movements';
