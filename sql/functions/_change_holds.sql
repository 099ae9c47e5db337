-- Changes what one locked HELD reservation holds, row by row: p_changes holds
-- one signed qty per stock row (in key order, no zeros). Units added are
-- RESERVE movements (reserved grows), units taken away are p_kind movements:
-- RELEASE (reserved drops) or CONFIRM (on_hand and reserved drop, and the
-- line's `confirmed` grows). One movement per row, each carrying the row's
-- on_hand/reserved right after it. The line of each row follows (a line that
-- reaches 0 stays, as history; a row the reservation did not hold gets a
-- line). The caller has locked the rows and the reservation
-- (_locked_reservation_and_rows) and checked that every change fits: units
-- added are available, units taken are held.
-- The one write path of edit_reservation, confirm_lines and release_lines.
create or replace function inventory._change_holds(
  p_reservation inventory.reservations,
  p_changes inventory._line[],
  p_kind text,
  p_reason text,
  p_idempotency_key text
) returns void
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_confirm integer := case when p_kind = 'CONFIRM' then 1 else 0 end;
begin
  if p_kind not in ('CONFIRM', 'RELEASE') then
    raise exception 'inventory._change_holds: unknown kind %', p_kind;
  end if;

  update inventory.reservation_lines l
  set qty = l.qty + c.qty,
      confirmed = l.confirmed + case when c.qty < 0 then -c.qty * v_confirm else 0 end
  from unnest(p_changes) c
  where l.reservation_id = p_reservation.id and l.product_id = c.product_id and l.warehouse_id = c.warehouse_id;
  insert into inventory.reservation_lines (reservation_id, product_id, warehouse_id, qty)
  select p_reservation.id, c.product_id, c.warehouse_id, c.qty
  from unnest(p_changes) c
  where c.qty > 0
    and not exists (select from inventory.reservation_lines l
                    where l.reservation_id = p_reservation.id and l.product_id = c.product_id and l.warehouse_id = c.warehouse_id);

  with changed as (
    update inventory.stock_levels s
    set reserved = s.reserved + c.qty,
        on_hand = s.on_hand + least(c.qty, 0) * v_confirm,
        version = s.version + 1,
        last_movement_at = clock_timestamp()
    from unnest(p_changes) c
    where s.product_id = c.product_id and s.warehouse_id = c.warehouse_id
    returning s.product_id, s.warehouse_id, s.on_hand, s.reserved, c.qty
  )
  insert into inventory.movements (
    product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
    reason, reservation_id, reference, idempotency_key, actor)
  select c.product_id, c.warehouse_id, case when c.qty > 0 then 'RESERVE' else p_kind end,
         least(c.qty, 0) * v_confirm, c.qty, c.on_hand, c.reserved,
         p_reason, p_reservation.id, p_reservation.order_ref, p_idempotency_key, inventory._actor()
  from changed c
  order by c.product_id, c.warehouse_id;

  -- Units given back go to the rows' waiting backorders first.
  if v_confirm = 0 then
    perform inventory._fill_backorders(s.product_id, s.warehouse_id)
    from unnest(p_changes) c
    join inventory.stock_levels s on s.product_id = c.product_id and s.warehouse_id = c.warehouse_id
    where c.qty < 0 and s.backordered > 0
    order by s.product_id, s.warehouse_id;
  end if;
end
$$;
comment on function inventory._change_holds(inventory.reservations, inventory._line[], text, text, text) is
  'Internal: add units to or take units from a locked HELD reservation''s lines, with their stock rows and movements';
