-- The reference of bench/reserve: inventory.reserve's add-to-cart path as it
-- was before issue 9 (one line naming its warehouse), so the hot-row figures
-- compare against it in the same run. It differs from today's function in
-- what issue 9 changed: random v4 reservation ids, SELECT … FOR UPDATE and
-- then UPDATE, the reservation row claiming its key with ON CONFLICT, and one
-- expiry job row per reservation. The job row went into graphile-worker's
-- jobs table then; here it goes into a table of the same shape (columns,
-- key, indexes), so nothing of graphile-worker is touched. Other shapes of
-- request are not part of the reference and are refused.
create schema bench_reference;

-- The line check of that time (inventory._line_problem, since replaced by _line_check).
create or replace function bench_reference._line_problem(p_line jsonb) returns text
language plpgsql immutable
as $$
declare
  v_qty numeric;
begin
  if jsonb_typeof(p_line) is distinct from 'object' then
    return 'must be an object like {"sku": "A", "warehouse": "WH1", "qty": 2}';
  end if;
  if jsonb_typeof(p_line -> 'sku') is distinct from 'string' or btrim(p_line ->> 'sku') = '' then
    return '"sku" must be a non-empty string';
  end if;
  if jsonb_typeof(p_line -> 'warehouse') not in ('string', 'null') or btrim(p_line ->> 'warehouse') = '' then
    return '"warehouse" must be a non-empty string, or left out to allocate across warehouses';
  end if;
  if jsonb_typeof(p_line -> 'qty') is distinct from 'number' then
    return format('"qty" must be a positive integer, got %s', coalesce((p_line -> 'qty')::text, 'nothing'));
  end if;
  v_qty := (p_line ->> 'qty')::numeric;
  if v_qty <= 0 or v_qty > 2147483647 or v_qty <> trunc(v_qty) then
    return format('"qty" must be a positive integer, got %s', p_line -> 'qty');
  end if;
  if (p_line - 'sku' - 'warehouse' - 'qty') <> '{}'::jsonb then
    return format('unknown field(s) %s; a line has only "sku", "warehouse" and "qty"',
      (select string_agg(quote_ident(k), ', ') from jsonb_object_keys(p_line - 'sku' - 'warehouse' - 'qty') k));
  end if;
  return null;
end
$$;
comment on function bench_reference._line_problem(jsonb) is 'Internal: what is wrong with one reserve() line, or null';

create table bench_reference.reservations (like inventory.reservations including all);
alter table bench_reference.reservations alter column id set default gen_random_uuid();
create table bench_reference.reservation_lines (like inventory.reservation_lines including all);
create table bench_reference.jobs (
  id bigint primary key generated always as identity,
  job_queue_id int null,
  task_id int not null,
  payload json default '{}'::json not null,
  priority smallint default 0 not null,
  run_at timestamptz default now() not null,
  attempts smallint default 0 not null,
  max_attempts smallint default 25 not null,
  last_error text,
  created_at timestamptz default now() not null,
  updated_at timestamptz default now() not null,
  key text unique,
  locked_at timestamptz,
  locked_by text,
  revision integer default 0 not null,
  flags jsonb,
  is_available boolean generated always as (((locked_at is null) and (attempts < max_attempts))) stored not null);
create index on bench_reference.jobs using btree (priority, run_at) include (id, task_id, job_queue_id) where (is_available = true);
create index on bench_reference.jobs using btree (priority, run_at) include (id, task_id) where (is_available = true and job_queue_id is null);

create function bench_reference.reserve(
  order_ref text, lines jsonb, ttl interval default interval '15 minutes', idempotency_key text default null
) returns bench_reference.reservations
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  v_line jsonb;
  v_problem text;
  v_hash text;
  v_reservation bench_reference.reservations;
  v_product_id uuid;
  v_warehouse_id uuid;
  v_qty integer;
  v_row inventory.stock_levels;
  v_actor text := inventory._actor();
begin
  if reserve.order_ref is null or btrim(reserve.order_ref) = '' then
    perform inventory._raise('IV005', 'order_ref must be a non-empty text');
  end if;
  if reserve.ttl is null or reserve.ttl <= interval '0' or not isfinite(reserve.ttl) or reserve.ttl > interval '1 year' then
    perform inventory._require_ttl(reserve.ttl);
  end if;
  if reserve.idempotency_key is not null and btrim(reserve.idempotency_key) = '' then
    perform inventory._raise('IV005', 'idempotency_key must be null or a non-empty text');
  end if;
  if reserve.lines is null or jsonb_typeof(reserve.lines) <> 'array' or jsonb_array_length(reserve.lines) <> 1
     or jsonb_typeof(reserve.lines -> 0 -> 'warehouse') <> 'string' then
    perform inventory._raise('IV005', 'the reference takes one line naming its warehouse');
  end if;
  v_line := reserve.lines -> 0;
  v_problem := 'line 1: ' || bench_reference._line_problem(v_line);
  if v_problem is not null then
    perform inventory._raise('IV005', 'invalid reservation ' || v_problem);
  end if;
  select p.id into v_product_id from inventory.products p where p.sku = v_line ->> 'sku';
  select w.id into v_warehouse_id from inventory.warehouses w where w.code = v_line ->> 'warehouse';
  if v_product_id is null or v_warehouse_id is null then
    perform inventory._raise('IV004', 'unknown sku or warehouse');
  end if;
  v_qty := (v_line ->> 'qty')::numeric;

  if reserve.idempotency_key is not null then
    v_hash := md5(concat_ws(chr(31), reserve.order_ref, extract(epoch from reserve.ttl)::text,
      array[row(v_product_id, v_warehouse_id, v_qty)::inventory._line]::text));
  end if;
  insert into bench_reference.reservations (order_ref, expires_at, idempotency_key, request_hash)
  values (reserve.order_ref, now() + reserve.ttl, reserve.idempotency_key, v_hash)
  on conflict (idempotency_key) where idempotency_key is not null do nothing
  returning * into v_reservation;
  if v_reservation.id is null then
    select * into v_reservation from bench_reference.reservations r where r.idempotency_key = reserve.idempotency_key;
    return v_reservation;
  end if;

  select * into v_row from inventory.stock_levels s
  where s.product_id = v_product_id and s.warehouse_id = v_warehouse_id
  for update;
  if v_row.product_id is null or greatest(v_row.on_hand - v_row.reserved - v_row.safety_stock, 0) < v_qty then
    perform inventory._raise('IV001', 'insufficient stock (the reference does not allocate further)');
  end if;

  insert into bench_reference.reservation_lines (reservation_id, product_id, warehouse_id, qty)
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

  insert into bench_reference.jobs as jobs (task_id, payload, run_at, max_attempts, key)
  values (1, json_build_object('reservation_id', v_reservation.id), v_reservation.expires_at, 25, 'expire:' || v_reservation.id)
  on conflict (key) do update
    set run_at = excluded.run_at, updated_at = now(), revision = jobs.revision + 1, attempts = 0, last_error = null
    where jobs.locked_at is null;
  return v_reservation;
end
$$;
