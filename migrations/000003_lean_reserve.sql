-- The checkout path under load (issue 9): expiry without a job per
-- reservation, time-ordered reservation ids, and the types of reserve_many().

-- Time-ordered ids for the rows reserve() writes: consecutive reservations
-- land on the same index pages (a random v4 id touches a random page of the
-- primary key and of reservation_lines' key, and after each checkpoint writes
-- that whole page to the WAL again). uuidv7() is built in from PostgreSQL 18;
-- before that, the same layout (48-bit Unix milliseconds, version 7, random
-- rest) is built from gen_random_uuid().
do $$
begin
  if to_regprocedure('pg_catalog.uuidv7()') is not null then
    create function inventory._new_id() returns uuid
    language sql volatile parallel safe
    as 'select pg_catalog.uuidv7()';
  else
    create function inventory._new_id() returns uuid
    language sql volatile parallel safe
    as $body$
      select encode(
        pg_catalog.set_bit(pg_catalog.set_bit(
          -- (overlay and substring in their SQL-standard keyword forms, which always mean pg_catalog's)
          overlay(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
            placing substring(pg_catalog.int8send((extract(epoch from pg_catalog.clock_timestamp()) * 1000)::bigint) from 3)
            from 1 for 6),
          52, 1), 53, 1),
        'hex')::uuid
    $body$;
  end if;
end
$$;
comment on function inventory._new_id() is 'Internal: a new time-ordered (version 7) uuid';
alter table inventory.reservations alter column id set default inventory._new_id();

-- Expiry is one self-scheduling sweeper job now (src/jobs/expire_sweep.ts),
-- found through the reservations_held_expires_at_idx index: reserve() writes
-- no job row, and nothing of Stockroom writes graphile-worker's tables. The
-- per-reservation jobs of earlier versions go, through graphile-worker's
-- public API (a locked one finishes, and its key is released).
drop function if exists inventory._schedule_expiry(uuid, timestamptz);
-- Helpers replaced by ones that return errors as values or take pending holds.
drop function if exists inventory._raise_unknown(text[], text[]);
drop function if exists inventory._allocate(inventory._line[], uuid[], uuid[]);
drop function if exists inventory._allocate_locked(inventory._line[], uuid[], uuid[]);
select graphile_worker.remove_job(j.key)
from graphile_worker.jobs j
where j.task_identifier = 'expire_reservation' and j.key like 'expire:%';

-- One error as a value: reserve_many() answers each request with its own
-- error instead of raising it (no subtransaction per request).
create type inventory._error as (code text, message text, detail jsonb, hint text);

-- A stock row as allocation sees it: what it has available for this request.
create type inventory._slot as (product_id uuid, warehouse_id uuid, available integer);

-- A reserve() request, checked and resolved: lines summed per stock row (a
-- null warehouse_id leaves the warehouse to allocation), or the error.
create type inventory._reserve_request as (
  order_ref text, ttl interval, idempotency_key text, actor text,
  lines inventory._line[], has_open_line boolean, request_hash text,
  error inventory._error);

-- One hold to write: qty of a stock row for a reservation.
create type inventory._hold as (
  reservation_id uuid, product_id uuid, warehouse_id uuid, qty integer,
  reference text, idempotency_key text, actor text);

-- reserve_many(): one result per request, in input order.
create type inventory.reserve_result as (
  request integer,
  reservation inventory.reservations,
  sqlstate text,
  message text,
  detail jsonb,
  hint text);
comment on type inventory.reserve_result is
  'reserve_many(): request (1-based position), its reservation, or its error (sqlstate, message, detail, hint)';
