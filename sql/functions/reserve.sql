-- reserve(order_ref, lines, ttl, idempotency_key): hold stock for an order, all
-- lines or none. See README "SQL API" for the contract.
--
-- This is the hottest function in the system, and its cost is mostly the
-- start-up of each statement it runs, and the time the stock row stays
-- locked (from the first write to it until commit: every other reserve of
-- that sku waits that long). So one line naming its warehouse (the
-- add-to-cart case) takes a lean path:
--   1. check the arguments with simple expressions (maximum lengths
--      included: see _arguments.sql), resolve sku and warehouse in one
--      statement;
--   2. claim the idempotency key, if any (IV006 on reuse);
--   3. write the reservation and its line: nothing is locked yet;
--   4. queue for the stock row on an advisory lock (see below);
--   5. one statement takes the units (UPDATE … WHERE available >= qty, which
--      locks the row) and writes the RESERVE movement from what it returns.
-- When the UPDATE finds nothing (short as the row stands), the locked path
-- decides: it takes in a row created meanwhile, expires due reservations on
-- the row, and raises IV001 if the line is still short.
-- Everything else (several lines, a line without a warehouse, a kit, a line
-- naming a channel, any error) takes the general path: _reserve_request checks and resolves, the
-- reservation row claims the key, _allocate_locked locks every candidate row
-- in key order and allocates, _write_holds writes. A kit line is its
-- components' lines (_reserve_request expands it, under a shared lock on the
-- kit's definition: _lock_kits). A line naming a channel never takes the
-- lean path (_line_check answers it {"channel": true}, at no cost to other
-- lines); _reserve_request resolves its channel into ranks, which confine
-- allocation to the channel's rows (README "Sales channels").
--
-- The advisory lock of step 4: when many sessions want one row (a flash
-- sale), waiting on the row itself is expensive: each commit wakes every
-- waiter on the transaction id to race for the tuple lock again, and waiters
-- pile up dead row versions for the one that wins to step over. On an
-- advisory lock, waiters queue in the lock manager and are woken one at a
-- time. Deadlock-free: it is taken before any stock row lock, and no path
-- takes it while holding one (bench/reserve measures it against the row lock
-- alone). Expiry no longer adds anything here: the sweeper finds due
-- reservations through their index.
create or replace function inventory.reserve(
  order_ref text,
  lines jsonb,
  ttl interval default interval '15 minutes',
  idempotency_key text default null
) returns inventory.reservations
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
-- Custom plans of these statements cost more to make than to run (measured:
-- 3 ms a call against 1.2 ms); the generic plans are index probes throughout.
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  v_line jsonb;
  v_product_id uuid;
  v_warehouse_id uuid;
  v_qty integer;
  v_lines inventory._line[];
  v_hash text;
  v_reservation inventory.reservations;
  v_taken integer;
  v_request inventory._reserve_request;
  v_take inventory._line[];
  v_backorder inventory._line[];
  v_short jsonb;
  v_actor text := inventory._actor();
begin
  -- 1. The lean path's preconditions; any failure goes to the general path,
  -- which finds the problem again and reports it.
  if jsonb_typeof(reserve.lines) = 'array' and jsonb_array_length(reserve.lines) = 1 then
    v_line := reserve.lines -> 0;
    if jsonb_typeof(v_line -> 'warehouse') = 'string'
       and btrim(reserve.order_ref) <> '' and length(reserve.order_ref) <= inventory._max_length('order_ref')
       and reserve.ttl > interval '0' and isfinite(reserve.ttl) and reserve.ttl <= interval '1 year'
       and (reserve.idempotency_key is null
            or (btrim(reserve.idempotency_key) <> ''
                and length(reserve.idempotency_key) <= inventory._max_length('idempotency_key')))
       and inventory._line_check(v_line) is null then
      select (select p.id from inventory.products p where p.sku = v_line ->> 'sku' and not p.is_kit),
             (select w.id from inventory.warehouses w where w.code = v_line ->> 'warehouse')
      into v_product_id, v_warehouse_id;
    end if;
  end if;

  if v_product_id is not null and v_warehouse_id is not null then
    v_qty := (v_line ->> 'qty')::numeric; -- an integer by _line_check, possibly written 2.0
    v_lines := array[row(v_product_id, v_warehouse_id, v_qty)::inventory._line];
    -- 2.
    if reserve.idempotency_key is not null then
      v_hash := inventory._request_hash(reserve.order_ref, reserve.ttl, v_lines);
      select * into v_reservation from inventory._claim_reservation_keys(array[reserve.idempotency_key]);
      if v_reservation.id is not null then
        perform inventory._raise_error(inventory._idempotency_error(v_reservation, v_hash));
        return v_reservation;
      end if;
    end if;
    -- 3. (Each statement is one executor start-up: the reservation and its
    -- line go in together, as do the take and its movement.)
    with held as (
      insert into inventory.reservations (order_ref, expires_at, idempotency_key, request_hash)
      values (reserve.order_ref, now() + reserve.ttl, reserve.idempotency_key, v_hash)
      returning *
    ), line as (
      insert into inventory.reservation_lines (reservation_id, product_id, warehouse_id, qty)
      select held.id, v_product_id, v_warehouse_id, v_qty from held
    )
    select * into v_reservation from held;
    -- 4.
    perform pg_advisory_xact_lock(uuid_hash_extended(v_product_id, uuid_hash_extended(v_warehouse_id, 0)));
    -- 5. When short as the row stands, the locked path makes room if it can
    -- (or raises IV001), and the same statement takes the units then.
    for v_attempt in 1 .. 2 loop
      with taken as (
        update inventory.stock_levels s
        set reserved = s.reserved + v_qty, version = s.version + 1, last_movement_at = clock_timestamp()
        where s.product_id = v_product_id and s.warehouse_id = v_warehouse_id
          and s.on_hand - s.reserved - s.safety_stock - s.unavailable >= v_qty
        returning s.on_hand, s.reserved
      ), moved as (
        insert into inventory.movements (
          product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
          reservation_id, reference, idempotency_key, actor)
        select v_product_id, v_warehouse_id, 'RESERVE', 0, v_qty, taken.on_hand, taken.reserved,
          v_reservation.id, reserve.order_ref, reserve.idempotency_key, v_actor
        from taken
      )
      select count(*) into v_taken from taken;
      exit when v_taken = 1;
      select a.short, a.take, a.backorder into v_short, v_take, v_backorder from inventory._allocate_locked(v_lines) a;
      if v_short is null and v_backorder is not null then
        -- Beyond available, and the row's policy allows it: hold what there
        -- is (the line was written for all of it) and backorder the rest.
        update inventory.reservation_lines l set qty = coalesce((select sum(t.qty) from unnest(v_take) t), 0)
        where l.reservation_id = v_reservation.id;
        perform inventory._write_holds(array(
          select row(v_reservation.id, t.product_id, t.warehouse_id, t.qty, reserve.order_ref, reserve.idempotency_key, v_actor)::inventory._hold
          from unnest(v_take) t), true);
        perform inventory._write_backorders(array(
          select row(v_reservation.id, b.product_id, b.warehouse_id, b.qty, reserve.order_ref, reserve.idempotency_key, v_actor)::inventory._hold
          from unnest(v_backorder) b));
        return v_reservation;
      end if;
      if v_short is not null or v_attempt = 2 then
        perform inventory._raise_error(inventory._short_error(reserve.order_ref, coalesce(v_short, '[]'), 1));
      end if;
    end loop;
    return v_reservation;
  end if;

  -- The general path.
  v_request := inventory._reserve_request(reserve.order_ref, reserve.lines, reserve.ttl, reserve.idempotency_key, v_actor);
  if (v_request.error).code is not null then
    perform inventory._raise_error(v_request.error);
  end if;
  if v_request.kits is not null then
    -- Hold the kits' definitions (set_kit waits), then expand again: the
    -- first expansion may have read a definition changed since.
    perform inventory._lock_kits(v_request.kits);
    v_request := inventory._reserve_request(reserve.order_ref, reserve.lines, reserve.ttl, reserve.idempotency_key, v_actor);
  end if;
  if reserve.idempotency_key is not null then
    select * into v_reservation from inventory._claim_reservation_keys(array[reserve.idempotency_key]);
    if v_reservation.id is not null then
      perform inventory._raise_error(inventory._idempotency_error(v_reservation, v_request.request_hash));
      return v_reservation;
    end if;
  end if;
  insert into inventory.reservations (order_ref, expires_at, idempotency_key, request_hash)
  values (reserve.order_ref, now() + reserve.ttl, reserve.idempotency_key, v_request.request_hash)
  returning * into v_reservation;
  select a.take, a.short, a.backorder into v_take, v_short, v_backorder
  from inventory._allocate_locked(v_request.lines, null, null, v_request.ranks) a;
  if v_short is not null then
    perform inventory._raise_error(inventory._short_error(reserve.order_ref, inventory._short_with_kits(v_short, v_request.kits), cardinality(v_request.lines)));
  end if;
  perform inventory._write_holds(array(
    select row(v_reservation.id, t.product_id, t.warehouse_id, t.qty, reserve.order_ref, reserve.idempotency_key, v_actor)::inventory._hold
    from unnest(v_take) t));
  if v_backorder is not null then
    perform inventory._write_backorders(array(
      select row(v_reservation.id, b.product_id, b.warehouse_id, b.qty, reserve.order_ref, reserve.idempotency_key, v_actor)::inventory._hold
      from unnest(v_backorder) b));
  end if;
  if v_request.kits is not null then
    insert into inventory.reservation_kits (reservation_id, kit_id, warehouse_id, qty)
    select v_reservation.id, k.product_id, k.warehouse_id, k.qty from unnest(v_request.kits) k;
  end if;
  return v_reservation;
end
$$;
comment on function inventory.reserve(text, jsonb, interval, text) is
  'Hold stock for an order: all lines or none (IV001 lists every short line). Lines: [{"sku":"A","warehouse":"WH1","qty":2},{"sku":"B","qty":1}]';
