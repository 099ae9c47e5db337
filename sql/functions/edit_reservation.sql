-- edit_reservation(reservation_id, lines, idempotency_key): a HELD
-- reservation's content becomes `lines` (reserve()'s format, kits included),
-- all or nothing. See README "Editing a reservation" for the contract.
--
-- What changes is the difference per stock row between what the reservation
-- holds and what `lines` asks for: units added are RESERVE movements and must
-- be available (IV001, as reserve() reports it, when not: nothing changes),
-- units given back are RELEASE movements with reason ORDER_CHANGED. An edit
-- that changes nothing writes nothing.
--
-- Which rows a line takes from:
--   * a line naming its warehouse wants exactly that row; the units the
--     reservation already holds there count for it;
--   * a line leaving the warehouse open (reserve() allocated it) keeps the
--     reservation's other holds of that sku first, where they are (an edit
--     never moves units it does not have to: a customer adding one mug does
--     not get the other two re-picked from another warehouse), in the
--     allocation order (warehouse priority, then code) when it keeps fewer;
--     only what they do not cover is allocated anew, as reserve() would
--     (lower priority number first, then most available, split).
-- So the reservation's own holds count as available to it, and a unit it
-- gives back is never taken again by the same edit.
--
-- Locks, in the one order: the kits' definitions (shared), then every stock
-- row the old or the new lines touch in key order, then the reservation
-- (_locked_reservation_and_rows). The idempotency key (operation_keys) is
-- claimed before any lock: a concurrent retry waits for the first call.
create or replace function inventory.edit_reservation(
  reservation_id uuid,
  lines jsonb,
  idempotency_key text default null
) returns inventory.reservations
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_actor text := inventory._actor();
  v_request inventory._reserve_request;
  v_reservation inventory.reservations;
  v_own inventory._line[];
  v_keep inventory._line[];
  v_more inventory._line[];
  v_take inventory._line[];
  v_short jsonb;
  v_changes inventory._line[];
  v_error inventory._error;
  v_kits_changed boolean;
begin
  if edit_reservation.reservation_id is null then
    perform inventory._raise('IV005', 'reservation_id must not be null', jsonb_build_object('argument', 'reservation_id'));
  end if;
  if jsonb_typeof(edit_reservation.lines) = 'array' and jsonb_array_length(edit_reservation.lines) = 0 then
    perform inventory._raise('IV005', 'lines must not be empty: a reservation holds at least one line',
      jsonb_build_object('argument', 'lines'),
      'To give back everything, release the reservation: inventory.release(reservation_id, ''ORDER_CHANGED'').');
  end if;
  -- reserve()'s checks and resolution of the lines (order_ref and ttl are not
  -- an edit's: fixed, valid values stand in for them).
  v_request := inventory._reserve_request('edit', edit_reservation.lines, interval '15 minutes', null, v_actor);
  perform inventory._raise_error(v_request.error);
  if v_request.ranks is not null then
    -- (A channel is a reserve()'s: an edit keeps the holds where they are, or names the warehouse.)
    perform inventory._raise('IV005', 'edit_reservation takes a "channel" only on lines that name their warehouse',
      jsonb_build_object('argument', 'lines'), 'Name the warehouse (one of the channel''s), or leave out the channel.');
  end if;
  if v_request.kits is not null then
    -- Hold the kits' definitions, then expand again (as reserve() does).
    perform inventory._lock_kits(v_request.kits);
    v_request := inventory._reserve_request('edit', edit_reservation.lines, interval '15 minutes', null, v_actor);
  end if;
  if edit_reservation.idempotency_key is not null
     and not inventory._claim_operation_key(edit_reservation.idempotency_key, 'edit_reservation',
           concat_ws(chr(31), edit_reservation.reservation_id, inventory._lines_digest(edit_reservation.lines))) then
    -- A retry: the reservation as it is now, without a second change.
    select * into v_reservation from inventory.reservations r where r.id = edit_reservation.reservation_id;
    return v_reservation;
  end if;

  v_reservation := inventory._locked_reservation_and_rows(edit_reservation.reservation_id, v_request.lines);
  if v_reservation.status <> 'HELD' then
    perform inventory._refuse_transition(v_reservation, 'edit',
      format('it is %s%s', v_reservation.status, coalesce(' (' || inventory._clip(v_reservation.release_reason) || ')', '')),
      'Only a HELD reservation can be edited; reserve the new lines instead.');
  elsif v_reservation.expires_at <= now() then
    perform inventory._refuse_transition(v_reservation, 'edit',
      format('it expired at %s', v_reservation.expires_at),
      'Reserve again, and extend() a reservation while its order is being changed.');
  elsif exists (select from inventory.reservation_lines l where l.reservation_id = v_reservation.id and l.backordered > 0) then
    -- (Its waiting units hold places in their rows' queues; an edit would
    -- have to say which places it keeps. Decided: not editable.)
    perform inventory._refuse_transition(v_reservation, 'edit',
      format('it waits for %s backordered unit(s)', (select sum(l.backordered) from inventory.reservation_lines l where l.reservation_id = v_reservation.id)),
      'Confirm or release part of it (confirm_lines, release_lines), or release it and reserve the new lines.');
  end if;

  -- What the reservation keeps of its holds (v_keep, per row), what it
  -- still needs (v_more: per named row, and per sku left to allocation), and
  -- how much of each requested line its own holds cover (v_own, for IV001).
  with cur as (
    select l.product_id, l.warehouse_id, l.qty::bigint as qty
    from inventory.reservation_lines l
    where l.reservation_id = v_reservation.id and l.qty > 0
  ),
  named as (
    select n.product_id, n.warehouse_id, n.qty, least(n.qty, coalesce(c.qty, 0)) as own
    from unnest(v_request.lines) n
    left join cur c on c.product_id = n.product_id and c.warehouse_id = n.warehouse_id
    where n.warehouse_id is not null
  ),
  open_line as (
    select o.product_id, o.qty from unnest(v_request.lines) o where o.warehouse_id is null
  ),
  -- Holds no named line keeps, of skus with an open line, in allocation order.
  leftover as (
    select c.product_id, c.warehouse_id, c.qty - coalesce(n.own, 0) as qty, w.priority, w.code
    from cur c
    join inventory.warehouses w on w.id = c.warehouse_id
    left join named n on n.product_id = c.product_id and n.warehouse_id = c.warehouse_id
    where c.qty > coalesce(n.own, 0) and c.product_id in (select o.product_id from open_line o)
  ),
  kept_open as (
    select l.product_id, l.warehouse_id,
           least(l.qty, greatest(o.qty - coalesce(sum(l.qty) over (
             partition by l.product_id order by l.priority, l.code
             rows between unbounded preceding and 1 preceding), 0), 0)) as qty
    from leftover l join open_line o on o.product_id = l.product_id
  ),
  own_open as (
    select o.product_id, o.qty, coalesce((select sum(k.qty) from kept_open k where k.product_id = o.product_id), 0) as own
    from open_line o
  )
  select
    array(select row(x.product_id, x.warehouse_id, sum(x.qty))::inventory._line
          from (select n.product_id, n.warehouse_id, n.own as qty from named n
                union all
                select k.product_id, k.warehouse_id, k.qty from kept_open k) x
          where x.qty > 0
          group by x.product_id, x.warehouse_id
          order by x.product_id, x.warehouse_id),
    array(select row(x.product_id, x.warehouse_id, x.qty)::inventory._line
          from (select n.product_id, n.warehouse_id, n.qty - n.own as qty from named n
                union all
                select o.product_id, null::uuid, o.qty - o.own from own_open o) x
          where x.qty > 0
          order by x.product_id, x.warehouse_id nulls last),
    array(select row(n.product_id, n.warehouse_id, n.own)::inventory._line from named n
          union all
          select row(o.product_id, null::uuid, o.own)::inventory._line from own_open o)
  into v_keep, v_more, v_own;

  -- What is still needed comes from what is available, as reserve() takes
  -- it (due reservations on the rows expire first when short).
  if cardinality(v_more) > 0 then
    select a.take, a.short into v_take, v_short from inventory._allocate_locked(v_more) a;
    if v_short is not null then
      -- Short lines as the caller wrote them: requested is the line's qty, and
      -- available counts what the reservation holds there already.
      select jsonb_agg(s || jsonb_build_object(
               'requested', (s ->> 'requested')::bigint + coalesce(o.qty, 0),
               'available', (s ->> 'available')::bigint + coalesce(o.qty, 0)) order by n)
      into v_short
      from jsonb_array_elements(v_short) with ordinality x(s, n)
      join inventory.products p on p.sku = s ->> 'sku'
      left join inventory.warehouses w on w.code = s ->> 'warehouse'
      left join unnest(v_own) o on o.product_id = p.id and o.warehouse_id is not distinct from w.id;
      v_error := inventory._short_error(v_reservation.order_ref, v_short, cardinality(v_request.lines));
      v_error.detail := v_error.detail || jsonb_build_object('reservation_id', v_reservation.id);
      v_error.hint := 'Nothing was changed: the reservation still holds what it held. Ask for less, or leave out the warehouse to allocate across warehouses.';
      perform inventory._raise_error(v_error);
    end if;
  end if;

  -- The change per row: what it will hold less what it holds.
  select array_agg(row(x.product_id, x.warehouse_id, x.qty)::inventory._line order by x.product_id, x.warehouse_id)
  into v_changes
  from (
    select t.product_id, t.warehouse_id, sum(t.qty) as qty
    from (
      select k.product_id, k.warehouse_id, k.qty from unnest(v_keep) k
      union all
      select k.product_id, k.warehouse_id, k.qty from unnest(v_take) k
      union all
      select l.product_id, l.warehouse_id, -l.qty from inventory.reservation_lines l
      where l.reservation_id = v_reservation.id and l.qty > 0
    ) t
    group by t.product_id, t.warehouse_id
    having sum(t.qty) <> 0
  ) x;

  -- The kit lines follow: a kit line no longer asked for goes to 0 (rows are
  -- never deleted), a new one gets a row.
  select exists (
    select from (select k.kit_id, k.warehouse_id, k.qty from inventory.reservation_kits k
                 where k.reservation_id = v_reservation.id and k.qty > 0) old
    full join unnest(v_request.kits) new
      on new.product_id = old.kit_id and new.warehouse_id is not distinct from old.warehouse_id
    where old.qty is distinct from new.qty)
  into v_kits_changed;

  if v_changes is null and not v_kits_changed then
    return v_reservation; -- nothing to change: nothing written
  end if;
  if v_changes is not null then
    perform inventory._change_holds(v_reservation, v_changes, 'RELEASE', 'ORDER_CHANGED', edit_reservation.idempotency_key);
  end if;
  if v_kits_changed then
    update inventory.reservation_kits k
    set qty = coalesce((select n.qty from unnest(v_request.kits) n
                        where n.product_id = k.kit_id and n.warehouse_id is not distinct from k.warehouse_id), 0)
    where k.reservation_id = v_reservation.id;
    insert into inventory.reservation_kits (reservation_id, kit_id, warehouse_id, qty)
    select v_reservation.id, n.product_id, n.warehouse_id, n.qty
    from unnest(v_request.kits) n
    where not exists (select from inventory.reservation_kits k
                      where k.reservation_id = v_reservation.id and k.kit_id = n.product_id
                        and k.warehouse_id is not distinct from n.warehouse_id);
  end if;
  update inventory.reservations r set updated_at = now() where r.id = v_reservation.id
  returning * into v_reservation;
  return v_reservation;
end
$$;
comment on function inventory.edit_reservation(uuid, jsonb, text) is
  'Change a HELD reservation''s lines to `lines` (reserve()''s format), all or nothing: units added are RESERVE (IV001 when short), units given back RELEASE (ORDER_CHANGED); optional idempotency key';
