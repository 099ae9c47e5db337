-- reserve(order_ref, lines, ttl, idempotency_key): hold stock for an order, all
-- lines or none. See README "SQL API" for the contract; the steps below are
--   1. validate and resolve the lines (IV005, IV004), summing repeats per row;
--   2. claim the idempotency key with the new reservation row (IV006 on reuse);
--   3. lock every candidate stock row in (product_id, warehouse_id) order;
--   4. allocate: direct when every line names its warehouse and is met, else
--      _allocate_locked (which also takes in rows created since the lock and
--      expires due HELD reservations on the rows when short);
--   5. write lines, stock rows and one RESERVE movement per row, and schedule
--      the job that expires the reservation at expires_at.
--
-- This is the hottest function in the system, and its cost is mostly the
-- start-up of each statement it runs, not the work. So one line naming its
-- warehouse (the add-to-cart case) takes a path of small single-row
-- statements and simple expressions; anything else takes set-based statements.
-- Both paths share the checks, the reservation row and the allocation fallback.
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
  v_single boolean;
  v_problem text;
  v_line jsonb;
  v_lines inventory._line[];
  v_unknown_skus text[];
  v_unknown_warehouses text[];
  v_has_open_line boolean := false;
  v_too_much boolean := false;
  v_hash text;
  v_reservation inventory.reservations;
  v_slot_products uuid[];
  v_slot_warehouses uuid[];
  v_lines_met bigint;
  v_take inventory._line[];
  v_short jsonb;
  v_product_id uuid;
  v_warehouse_id uuid;
  v_qty integer;
  v_row inventory.stock_levels;
  v_actor text := inventory._actor();
begin
  -- 1. Arguments, checked inline (each PERFORM of a helper is one more statement).
  if reserve.order_ref is null or btrim(reserve.order_ref) = '' then
    perform inventory._raise('IV005', 'order_ref must be a non-empty text', jsonb_build_object('argument', 'order_ref'));
  end if;
  if reserve.ttl is null or reserve.ttl <= interval '0' or not isfinite(reserve.ttl) or reserve.ttl > interval '1 year' then
    perform inventory._require_ttl(reserve.ttl);
  end if;
  if reserve.idempotency_key is not null and btrim(reserve.idempotency_key) = '' then
    perform inventory._raise('IV005', 'idempotency_key must be null or a non-empty text',
      jsonb_build_object('argument', 'idempotency_key'));
  end if;
  if reserve.lines is null or jsonb_typeof(reserve.lines) <> 'array' or jsonb_array_length(reserve.lines) = 0 then
    perform inventory._raise('IV005', 'lines must be a non-empty JSON array of {"sku", "warehouse", "qty"} objects',
      jsonb_build_object('argument', 'lines', 'got', left(coalesce(reserve.lines::text, 'null'), 200)),
      'Example: [{"sku": "A", "warehouse": "WH1", "qty": 2}, {"sku": "B", "qty": 1}]');
  end if;
  if jsonb_array_length(reserve.lines) > 1000 then
    perform inventory._raise('IV005', format('lines holds %s entries; at most 1000 fit one reservation', jsonb_array_length(reserve.lines)),
      jsonb_build_object('argument', 'lines'));
  end if;

  -- The first malformed line, if any.
  if jsonb_array_length(reserve.lines) = 1 then
    v_line := reserve.lines -> 0;
    v_problem := 'line 1: ' || inventory._line_problem(v_line);
  else
    select format('line %s: %s', n, problem) into v_problem
    from (select n, inventory._line_problem(e) as problem
          from jsonb_array_elements(reserve.lines) with ordinality as x(e, n)) checked
    where problem is not null
    order by n
    limit 1;
  end if;
  if v_problem is not null then
    perform inventory._raise('IV005', 'invalid reservation ' || v_problem, jsonb_build_object('argument', 'lines'),
      'Each line is {"sku": text, "warehouse": text (optional), "qty": positive integer}.');
  end if;

  -- Resolve skus and warehouses.
  v_single := v_line is not null and jsonb_typeof(v_line -> 'warehouse') = 'string';
  if v_single then
    select p.id into v_product_id from inventory.products p where p.sku = v_line ->> 'sku';
    select w.id into v_warehouse_id from inventory.warehouses w where w.code = v_line ->> 'warehouse';
    if v_product_id is null or v_warehouse_id is null then
      perform inventory._raise_unknown(
        case when v_product_id is null then array[v_line ->> 'sku'] end,
        case when v_warehouse_id is null then array[v_line ->> 'warehouse'] end);
    end if;
    v_qty := (v_line ->> 'qty')::numeric;
    v_lines := array[row(v_product_id, v_warehouse_id, v_qty)::inventory._line];
  else
    -- Repeated lines for one row are summed; a line without a warehouse keeps warehouse_id null.
    select
      array_agg(row(p.id, w.id, l.qty)::inventory._line order by p.id, w.id nulls last)
        filter (where p.id is not null and (l.warehouse is null or w.id is not null)),
      array_agg(distinct l.sku) filter (where p.id is null),
      array_agg(distinct l.warehouse) filter (where l.warehouse is not null and w.id is null),
      coalesce(bool_or(l.warehouse is null), false),
      coalesce(bool_or(l.qty > 2147483647), false)
    into v_lines, v_unknown_skus, v_unknown_warehouses, v_has_open_line, v_too_much
    from (
      select e ->> 'sku' as sku, e ->> 'warehouse' as warehouse, sum((e ->> 'qty')::numeric)::bigint as qty
      from jsonb_array_elements(reserve.lines) e
      group by 1, 2
    ) l
    -- One index probe per line, whatever the planner guesses a JSON array holds
    -- (limit 1 keeps these subqueries from being flattened into a hash join).
    left join lateral (select p.id from inventory.products p where p.sku = l.sku limit 1) p on true
    left join lateral (select w.id from inventory.warehouses w where w.code = l.warehouse limit 1) w on true;
    if v_unknown_skus is not null or v_unknown_warehouses is not null then
      perform inventory._raise_unknown(v_unknown_skus, v_unknown_warehouses);
    end if;
    if v_too_much then
      perform inventory._raise('IV005', 'the summed qty of one sku in one warehouse exceeds 2147483647',
        jsonb_build_object('argument', 'lines'));
    end if;
  end if;

  -- 2. The reservation row goes in first: with a key, it claims the key (a
  -- concurrent call with the same key waits here, then finds the winner's row).
  if reserve.idempotency_key is not null then
    v_hash := md5(concat_ws(chr(31), reserve.order_ref, extract(epoch from reserve.ttl)::text, v_lines::text));
  end if;
  insert into inventory.reservations (order_ref, expires_at, idempotency_key, request_hash)
  values (reserve.order_ref, now() + reserve.ttl, reserve.idempotency_key, v_hash)
  on conflict (idempotency_key) where idempotency_key is not null do nothing
  returning * into v_reservation;
  if v_reservation.id is null then
    select * into v_reservation from inventory.reservations r where r.idempotency_key = reserve.idempotency_key;
    if v_reservation.request_hash is distinct from v_hash then
      perform inventory._raise('IV006',
        format('idempotency key %L was already used for reservation %s with a different request', reserve.idempotency_key, v_reservation.id),
        jsonb_build_object('idempotency_key', reserve.idempotency_key, 'reservation_id', v_reservation.id,
                           'order_ref', v_reservation.order_ref),
        'Use a new idempotency key for a different request; retry with the same lines, order_ref and ttl to get the first result.');
    end if;
    return v_reservation;
  end if;

  -- 3. Lock the candidate rows in (product_id, warehouse_id) order — the one
  -- order every function locks in, so reserves never deadlock — and see
  -- whether the lines are met as they stand.
  if v_single then
    select * into v_row from inventory.stock_levels s
    where s.product_id = v_product_id and s.warehouse_id = v_warehouse_id
    for update;
    if v_row.product_id is not null then
      v_slot_products := array[v_product_id];
      v_slot_warehouses := array[v_warehouse_id];
      v_lines_met := case when greatest(v_row.on_hand - v_row.reserved - v_row.safety_stock, 0) >= v_qty then 1 else 0 end;
    end if;
  elsif v_has_open_line then
    -- Every row of a product whose line leaves the warehouse open is a candidate.
    select array_agg(product_id), array_agg(warehouse_id)
    into v_slot_products, v_slot_warehouses
    from (
      select s.product_id, s.warehouse_id
      from inventory.stock_levels s
      where (s.product_id, s.warehouse_id) in (
        select l.product_id, l.warehouse_id from unnest(v_lines) l where l.warehouse_id is not null
        union
        select s2.product_id, s2.warehouse_id
        from unnest(v_lines) l join inventory.stock_levels s2 on s2.product_id = l.product_id
        where l.warehouse_id is null)
      order by s.product_id, s.warehouse_id
      for update of s
    ) locked;
  else
    select count(*) filter (where l.qty <= greatest(s.on_hand - s.reserved - s.safety_stock, 0)),
           array_agg(s.product_id), array_agg(s.warehouse_id)
    into v_lines_met, v_slot_products, v_slot_warehouses
    from (
      select s.* from inventory.stock_levels s
      where (s.product_id, s.warehouse_id) in (select l.product_id, l.warehouse_id from unnest(v_lines) l)
      order by s.product_id, s.warehouse_id
      for update of s
    ) s
    join unnest(v_lines) l on l.product_id = s.product_id and l.warehouse_id = s.warehouse_id;
  end if;

  -- 4. Allocate.
  if v_lines_met = cardinality(v_lines) then
    v_take := v_lines;
  else
    select a.take, a.short into v_take, v_short
    from inventory._allocate_locked(v_lines, v_slot_products, v_slot_warehouses) a;
  end if;
  if v_short is not null then
    perform inventory._raise('IV001',
      format('insufficient stock for %s of %s line(s): %s', jsonb_array_length(v_short), cardinality(v_lines),
        (select string_agg(format('%s%s requested %s, available %s', s ->> 'sku',
                                  coalesce(' at ' || (s ->> 'warehouse'), ' across warehouses'),
                                  s ->> 'requested', s ->> 'available'), '; ')
         from jsonb_array_elements(v_short) s)),
      jsonb_build_object('order_ref', reserve.order_ref, 'lines', v_short),
      'Nothing was reserved. Reserve less, or leave out the warehouse to allocate across warehouses.');
  end if;

  -- 5. Writes: lines, rows, ledger.
  if cardinality(v_take) = 1 then
    v_product_id := v_take[1].product_id;
    v_warehouse_id := v_take[1].warehouse_id;
    v_qty := v_take[1].qty;
    insert into inventory.reservation_lines (reservation_id, product_id, warehouse_id, qty)
    values (v_reservation.id, v_product_id, v_warehouse_id, v_qty);
    update inventory.stock_levels s
    set reserved = s.reserved + v_qty, version = s.version + 1, last_movement_at = clock_timestamp()
    where s.product_id = v_product_id and s.warehouse_id = v_warehouse_id
    returning * into v_row;
    insert into inventory.movements (
      product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
      reservation_id, reference, idempotency_key, actor)
    values (v_product_id, v_warehouse_id, 'RESERVE', 0, v_qty, v_row.on_hand, v_row.reserved,
      v_reservation.id, reserve.order_ref, reserve.idempotency_key, v_actor);
  else
    with take as (
      select t.product_id, t.warehouse_id, t.qty::integer as qty from unnest(v_take) t
    ),
    held as (
      insert into inventory.reservation_lines (reservation_id, product_id, warehouse_id, qty)
      select v_reservation.id, t.product_id, t.warehouse_id, t.qty from take t
    ),
    changed as (
      update inventory.stock_levels s
      set reserved = s.reserved + t.qty, version = s.version + 1, last_movement_at = clock_timestamp()
      from take t
      where s.product_id = t.product_id and s.warehouse_id = t.warehouse_id
      returning s.product_id, s.warehouse_id, s.on_hand, s.reserved, t.qty
    )
    insert into inventory.movements (
      product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
      reservation_id, reference, idempotency_key, actor)
    select c.product_id, c.warehouse_id, 'RESERVE', 0, c.qty, c.on_hand, c.reserved,
           v_reservation.id, reserve.order_ref, reserve.idempotency_key, v_actor
    from changed c
    order by c.product_id, c.warehouse_id;
  end if;

  perform inventory._schedule_expiry(v_reservation.id, v_reservation.expires_at);
  return v_reservation;
end
$$;
comment on function inventory.reserve(text, jsonb, interval, text) is
  'Hold stock for an order: all lines or none (IV001 lists every short line). Lines: [{"sku":"A","warehouse":"WH1","qty":2},{"sku":"B","qty":1}]';
