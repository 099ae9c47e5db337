-- reserve_many(requests): request combining. Many reservations in one
-- transaction, each with reserve()'s semantics and all-or-nothing on its own;
-- one result per request, in input order: its reservation, or its error
-- (sqlstate, message, detail, hint as reserve() would raise them). One
-- request's failure never fails another, and nothing is written for it.
--
-- requests: a JSON array of
--   {"order_ref": text, "lines": [...as reserve()...],
--    "ttl": seconds (number) or text such as "15 minutes" (default 15 minutes),
--    "idempotency_key": text (optional),
--    "actor": text (optional; the ledger's actor for this request, default
--             as for reserve(): stockroom.actor, else the role)}
-- Texts have the maximum lengths of _arguments.sql (those of reserve(), and
-- one for "actor"); beyond them that request alone is answered IV005.
-- At most 1000 requests and 10000 lines in all per call (IV005 for the call).
--
-- What combining saves is the cost of a transaction per reservation: the
-- commit (a WAL flush), the hand-off of each stock row's lock, and one write
-- per row where reserve() writes one per reservation. Steps:
--   1. check and resolve each request (_reserve_request): an invalid one is
--      answered with its error and takes no further part;
--   2. claim the idempotency keys (advisory locks, in key order); a key that
--      already holds a reservation answers its request with it (or IV006);
--   3. lock every candidate stock row of every request, in key order, once;
--   4. allocate each request in input order against what the rows have left
--      after the requests before it: in memory when every line names its
--      warehouse and is met, else through _allocate_locked (allocation
--      across warehouses, rows created meanwhile, lazy expiry), which counts
--      the batch's earlier holds as taken;
--   5. write the reservations, then every hold through _write_holds: one
--      update per stock row, one RESERVE movement per hold.
-- No subtransactions: nothing is written before step 5, and step 5 writes
-- only what step 4 accepted.
create or replace function inventory.reserve_many(requests jsonb)
returns setof inventory.reserve_result
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
set plan_cache_mode = force_generic_plan -- see reserve.sql
as $$
declare
  v_count integer;
  v_line_count integer := 0;
  v_known_skus text[];
  v_known_product_ids uuid[];
  v_known_codes text[];
  v_known_warehouse_ids uuid[];
  v_session_actor text := inventory._actor();
  v_request jsonb;
  v_ttl interval;
  v_problem text;
  v_problem_detail jsonb;
  v_requests inventory._reserve_request[] := '{}';
  v_state text[] := '{}';          -- per request: error, replay, same, held, short
  v_error inventory._error[] := '{}';
  v_existing inventory.reservations[] := '{}';
  v_same integer[] := '{}';        -- for 'same': the earlier request of this batch with the key
  v_ids uuid[] := '{}';            -- for 'held': its new reservation id
  v_keys text[];
  v_found inventory.reservations;
  v_all_lines inventory._line[] := '{}';
  v_kits inventory._line[];
  v_backorder inventory._line[];
  v_pending_backorders inventory._line[] := '{}';
  v_backorders inventory._hold[] := '{}';
  v_row_keys text[];
  v_base integer[];
  v_taken integer[];
  v_pending inventory._line[] := '{}';
  v_holds inventory._hold[] := '{}';
  v_req inventory._reserve_request;
  v_line inventory._line;
  v_position integer;
  v_met boolean;
  v_take inventory._line[];
  v_short jsonb;
  v_held_ids uuid[] := '{}';
  v_held_keys text[] := '{}';      -- idempotency keys claimed by held requests of this batch ...
  v_held_key_requests integer[] := '{}'; -- ... and which request claimed each
  v_held_rows inventory.reservations[];
  v_result inventory.reserve_result;
  i integer;
  j integer;
begin
  if requests is null or jsonb_typeof(requests) <> 'array' then
    perform inventory._raise('IV005', 'requests must be a JSON array of reserve() requests',
      jsonb_build_object('argument', 'requests', 'got', inventory._clip(coalesce(requests::text, 'null'))),
      'Example: [{"order_ref": "o-1", "lines": [{"sku": "A", "warehouse": "WH1", "qty": 1}], "ttl": 900, "idempotency_key": "k-1"}]');
  end if;
  v_count := jsonb_array_length(requests);
  if v_count > 1000 then
    perform inventory._raise('IV005', format('requests holds %s entries; at most 1000 fit one call', v_count),
      jsonb_build_object('argument', 'requests'));
  end if;
  for i in 0 .. v_count - 1 loop
    if jsonb_typeof(requests -> i -> 'lines') = 'array' then
      v_line_count := v_line_count + jsonb_array_length(requests -> i -> 'lines');
    end if;
  end loop;
  if v_line_count > 10000 then
    perform inventory._raise('IV005', 'requests hold more than 10000 lines in all; split them across calls',
      jsonb_build_object('argument', 'requests'));
  end if;

  -- 1. Check and resolve. The skus and warehouses of all requests are looked
  -- up together first, so a one-line request costs no statement here.
  with named as (
    select l.value ->> 'sku' as sku, l.value ->> 'warehouse' as code
    from jsonb_array_elements(requests) r
    cross join lateral jsonb_array_elements(case when jsonb_typeof(r.value -> 'lines') = 'array' then r.value -> 'lines' else '[]' end) l
    where jsonb_typeof(r.value) = 'object' and jsonb_typeof(l.value) = 'object'
  ),
  product as (
    -- (Kits are left out: _reserve_request looks them up and expands them.)
    select array_agg(p.sku) as skus, array_agg(p.id) as ids from inventory.products p where p.sku in (select n.sku from named n) and not p.is_kit
  ),
  warehouse as (
    select array_agg(w.code) as codes, array_agg(w.id) as ids from inventory.warehouses w where w.code in (select n.code from named n)
  )
  select product.skus, product.ids, warehouse.codes, warehouse.ids
  into v_known_skus, v_known_product_ids, v_known_codes, v_known_warehouse_ids
  from product, warehouse;
  for i in 1 .. v_count loop
    v_request := requests -> (i - 1);
    v_problem := null;
    v_problem_detail := null;
    v_ttl := interval '15 minutes';
    if jsonb_typeof(v_request) is distinct from 'object' then
      v_problem := 'must be an object like {"order_ref": "o-1", "lines": [...], "ttl": 900, "idempotency_key": "k-1"}';
    elsif (v_request - 'order_ref' - 'lines' - 'ttl' - 'idempotency_key' - 'actor') <> '{}'::jsonb then
      v_problem := format('unknown field(s) %s; a request has "order_ref", "lines", "ttl", "idempotency_key" and "actor"',
        inventory._clip((select string_agg(quote_ident(k), ', ')
                         from jsonb_object_keys(v_request - 'order_ref' - 'lines' - 'ttl' - 'idempotency_key' - 'actor') k)));
    elsif jsonb_typeof(v_request -> 'order_ref') is distinct from 'string' then
      v_problem := '"order_ref" must be a string';
    elsif jsonb_typeof(v_request -> 'idempotency_key') not in ('string', 'null') then
      v_problem := '"idempotency_key" must be a string or null';
    elsif jsonb_typeof(v_request -> 'actor') not in ('string', 'null') then
      v_problem := '"actor" must be a string or null';
    elsif length(v_request ->> 'actor') > inventory._max_length('actor') then
      v_problem := format('"actor" must be at most %s characters, got %s', inventory._max_length('actor'), length(v_request ->> 'actor'));
      v_problem_detail := jsonb_build_object('field', 'actor', 'max_length', inventory._max_length('actor'));
    elsif v_request ? 'ttl' and jsonb_typeof(v_request -> 'ttl') <> 'null' then
      -- Checked before the cast, which would otherwise fail the whole call.
      if jsonb_typeof(v_request -> 'ttl') = 'number' and (v_request ->> 'ttl')::numeric between 0 and 1e9 then
        v_ttl := make_interval(secs => (v_request ->> 'ttl')::double precision);
      elsif jsonb_typeof(v_request -> 'ttl') = 'string' and length(v_request ->> 'ttl') <= 64
        and ((v_request ->> 'ttl') ~* '^\s*(\d{1,6}(\.\d{1,6})?\s*(microseconds?|milliseconds?|seconds?|secs?|minutes?|mins?|hours?|days?|weeks?)\s*)+$'
             or (v_request ->> 'ttl') ~ '^\s*\d{1,4}:\d{2}(:\d{2}(\.\d{1,6})?)?\s*$') then
        v_ttl := (v_request ->> 'ttl')::interval;
      else
        v_problem := format('"ttl" must be a number of seconds or a text such as "15 minutes", got %s', inventory._clip((v_request -> 'ttl')::text));
      end if;
    end if;
    if v_problem is not null then
      v_req := null;
      v_req.error := row('IV005', format('request %s: %s', i, v_problem),
        jsonb_build_object('argument', 'requests', 'request', i) || coalesce(v_problem_detail, '{}'), null);
    else
      v_req := inventory._reserve_request(v_request ->> 'order_ref', v_request -> 'lines', v_ttl,
        v_request ->> 'idempotency_key', coalesce(v_request ->> 'actor', v_session_actor),
        coalesce(v_known_skus, '{}'), v_known_product_ids, coalesce(v_known_codes, '{}'), v_known_warehouse_ids);
    end if;
    v_requests := v_requests || v_req;
    v_state := v_state || case when (v_req.error).code is null then 'pending' else 'error' end;
    v_error := v_error || v_req.error;
    v_existing := v_existing || null::inventory.reservations;
    v_same := v_same || null::integer;
    v_ids := v_ids || null::uuid;
  end loop;

  -- Requests with kit lines: hold the kits' definitions, then expand again
  -- (as reserve() does).
  v_kits := array(select x from generate_subscripts(v_state, 1) n, unnest((v_requests[n]).kits) x where v_state[n] = 'pending');
  if cardinality(v_kits) > 0 then
    perform inventory._lock_kits(v_kits);
    for i in 1 .. v_count loop
      if v_state[i] = 'pending' and (v_requests[i]).kits is not null then
        v_request := requests -> (i - 1);
        v_req := inventory._reserve_request(v_request ->> 'order_ref', v_request -> 'lines', (v_requests[i]).ttl,
          v_request ->> 'idempotency_key', (v_requests[i]).actor,
          coalesce(v_known_skus, '{}'), v_known_product_ids, coalesce(v_known_codes, '{}'), v_known_warehouse_ids);
        v_requests[i] := v_req;
        if (v_req.error).code is not null then
          v_state[i] := 'error';
          v_error[i] := v_req.error;
        end if;
      end if;
    end loop;
  end if;

  -- 2. Idempotency keys.
  for i in 1 .. v_count loop
    if v_state[i] = 'pending' and (v_requests[i]).idempotency_key is not null then
      v_keys := v_keys || (v_requests[i]).idempotency_key;
    end if;
  end loop;
  if v_keys is not null then
    for v_found in select * from inventory._claim_reservation_keys(v_keys) loop
      for i in 1 .. v_count loop
        if v_state[i] = 'pending' and (v_requests[i]).idempotency_key = v_found.idempotency_key then
          v_error[i] := inventory._idempotency_error(v_found, (v_requests[i]).request_hash);
          v_state[i] := case when (v_error[i]).code is null then 'replay' else 'error' end;
          v_existing[i] := v_found;
        end if;
      end loop;
    end loop;
  end if;

  -- 3. Lock every candidate row once, in key order, and note what it has available.
  for i in 1 .. v_count loop
    if v_state[i] = 'pending' then
      if (v_requests[i]).ranks is null then
        v_all_lines := v_all_lines || (v_requests[i]).lines;
      else
        -- A channel request: only its channel's rows of a product it leaves open.
        v_all_lines := v_all_lines || inventory._ranked_lines((v_requests[i]).lines, (v_requests[i]).ranks);
      end if;
    end if;
  end loop;
  select array_agg(s.product_id::text || s.warehouse_id::text), array_agg(s.available), array_agg(0)
  into v_row_keys, v_base, v_taken
  from (
    select s.product_id, s.warehouse_id, greatest(s.on_hand - s.reserved - s.safety_stock - s.unavailable, 0) as available
    from inventory.stock_levels s
    where (s.product_id, s.warehouse_id) in (select * from inventory._candidate_rows(v_all_lines))
    order by s.product_id, s.warehouse_id
    for update of s
  ) s;

  -- 4. Allocate, in input order.
  for i in 1 .. v_count loop
    continue when v_state[i] <> 'pending';
    v_req := v_requests[i];
    -- A key claimed by an earlier request of this batch: answered as a retry of it.
    if v_req.idempotency_key is not null then
      j := v_held_key_requests[array_position(v_held_keys, v_req.idempotency_key)];
      if j is not null then
        if (v_requests[j]).request_hash is distinct from v_req.request_hash then
          v_state[i] := 'error';
          v_error[i] := row('IV006',
            format('idempotency key %s was already used by an earlier request of this batch with a different request',
              inventory._quote(v_req.idempotency_key)),
            jsonb_build_object('idempotency_key', inventory._clip(v_req.idempotency_key), 'request', j),
            'Use a new idempotency key for a different request.');
        else
          v_state[i] := 'same';
          v_same[i] := j;
        end if;
        continue;
      end if;
    end if;

    v_met := not v_req.has_open_line;
    if v_met then
      foreach v_line in array v_req.lines loop
        v_position := array_position(v_row_keys, v_line.product_id::text || v_line.warehouse_id::text);
        if v_position is null or v_base[v_position] - v_taken[v_position] < v_line.qty then
          v_met := false;
          exit;
        end if;
      end loop;
    end if;
    if v_met then
      v_take := v_req.lines;
    else
      select a.take, a.short, a.backorder into v_take, v_short, v_backorder
      from inventory._allocate_locked(v_req.lines, v_pending, v_pending_backorders, v_req.ranks) a;
      if v_short is not null then
        v_state[i] := 'short';
        v_error[i] := inventory._short_error(v_req.order_ref, inventory._short_with_kits(v_short, v_req.kits), cardinality(v_req.lines));
        continue;
      end if;
    end if;

    v_state[i] := 'held';
    if v_req.idempotency_key is not null then
      v_held_keys := v_held_keys || v_req.idempotency_key;
      v_held_key_requests := v_held_key_requests || i;
    end if;
    v_ids[i] := inventory._new_id();
    v_held_ids := v_held_ids || v_ids[i];
    v_pending := v_pending || coalesce(v_take, '{}');
    if not v_met and v_backorder is not null then
      v_pending_backorders := v_pending_backorders || v_backorder;
      v_backorders := v_backorders || array(
        select row(v_ids[i], b.product_id, b.warehouse_id, b.qty, v_req.order_ref, v_req.idempotency_key, v_req.actor)::inventory._hold
        from unnest(v_backorder) b);
    end if;
    foreach v_line in array coalesce(v_take, '{}') loop
      v_position := array_position(v_row_keys, v_line.product_id::text || v_line.warehouse_id::text);
      if v_position is not null then
        v_taken[v_position] := v_taken[v_position] + v_line.qty;
      end if;
      v_holds := v_holds || row(v_ids[i], v_line.product_id, v_line.warehouse_id, v_line.qty,
                                v_req.order_ref, v_req.idempotency_key, v_req.actor)::inventory._hold;
    end loop;
  end loop;

  -- 5. Write.
  if cardinality(v_held_ids) > 0 then
    with held as (
      insert into inventory.reservations (id, order_ref, expires_at, idempotency_key, request_hash)
      select v_ids[k], (v_requests[k]).order_ref, now() + (v_requests[k]).ttl, (v_requests[k]).idempotency_key, (v_requests[k]).request_hash
      from generate_subscripts(v_state, 1) k
      where v_state[k] = 'held'
      returning reservations as reservation
    )
    select array_agg(h.reservation order by u.n) into v_held_rows
    from held h join unnest(v_held_ids) with ordinality u(id, n) on u.id = (h.reservation).id;
    perform inventory._write_holds(v_holds);
    if cardinality(v_backorders) > 0 then
      perform inventory._write_backorders(v_backorders);
    end if;
    insert into inventory.reservation_kits (reservation_id, kit_id, warehouse_id, qty)
    select v_ids[k], x.product_id, x.warehouse_id, x.qty
    from generate_subscripts(v_state, 1) k, unnest((v_requests[k]).kits) x
    where v_state[k] = 'held';
  end if;

  for i in 1 .. v_count loop
    v_result := null;
    v_result.request := i;
    case v_state[i]
      when 'held' then
        v_result.reservation := v_held_rows[array_position(v_held_ids, v_ids[i])];
      when 'same' then
        v_result.reservation := v_held_rows[array_position(v_held_ids, v_ids[v_same[i]])];
      when 'replay' then
        v_result.reservation := v_existing[i];
      else
        v_result.sqlstate := (v_error[i]).code;
        v_result.message := (v_error[i]).message;
        v_result.detail := (v_error[i]).detail;
        v_result.hint := (v_error[i]).hint;
    end case;
    return next v_result;
  end loop;
end
$$;
comment on function inventory.reserve_many(jsonb) is
  'Request combining: many reserve() requests in one transaction, each all-or-nothing; one result per request in input order (its reservation, or its sqlstate, message, detail and hint)';
