-- Stockroom inventory schema. Migrations are append-only: never edit this file
-- once released; change the schema in a new numbered migration.

create schema inventory;
comment on schema inventory is 'Stockroom: stock per product per warehouse, reservations and the movement ledger';

-- Roles are cluster-wide, so they may exist already (another database of the
-- same cluster, or a DBA who created them up front).
do $$
declare
  r text;
begin
  foreach r in array array['stockroom_reader', 'stockroom_writer', 'stockroom_admin'] loop
    if not exists (select from pg_catalog.pg_roles where rolname = r) then
      begin
        execute format('create role %I nologin', r);
      exception when duplicate_object or unique_violation then
        null; -- created concurrently by a migrator of another database
      end;
    end if;
  end loop;
end
$$;
grant stockroom_reader to stockroom_writer;
grant stockroom_writer to stockroom_admin;

create table inventory.products (
  id uuid primary key default gen_random_uuid(),
  sku text not null unique
    constraint products_sku_format check (sku = btrim(sku) and length(sku) between 1 and 128),
  name text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table inventory.products is 'Products, identified to callers by sku';

create table inventory.warehouses (
  id uuid primary key default gen_random_uuid(),
  code text not null unique
    constraint warehouses_code_format check (code = btrim(code) and length(code) between 1 and 64),
  name text,
  region text,
  priority integer not null default 100,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table inventory.warehouses is 'Warehouses; allocation prefers a lower priority number';

create table inventory.stock_levels (
  product_id uuid not null references inventory.products (id) on delete restrict,
  warehouse_id uuid not null references inventory.warehouses (id) on delete restrict,
  on_hand integer not null default 0,
  reserved integer not null default 0,
  safety_stock integer not null default 0,
  low_stock_threshold integer not null default 0,
  version bigint not null default 1,
  last_movement_at timestamptz not null default now(),
  primary key (product_id, warehouse_id),
  constraint stock_levels_on_hand_non_negative check (on_hand >= 0),
  constraint stock_levels_reserved_non_negative check (reserved >= 0),
  constraint stock_levels_reserved_within_on_hand check (reserved <= on_hand),
  constraint stock_levels_safety_stock_non_negative check (safety_stock >= 0),
  constraint stock_levels_low_stock_threshold_non_negative check (low_stock_threshold >= 0)
);
comment on table inventory.stock_levels is
  'One row per product per warehouse; available = greatest(on_hand - reserved - safety_stock, 0)';
comment on column inventory.stock_levels.version is
  'Grows on every change; the cache consumer uses it to refuse stale writes';
comment on column inventory.stock_levels.last_movement_at is
  'When the row last changed: clock time of the change (not of its transaction start), so a keyset reader who has passed that time sees it again';
-- Keyset order of recently_updated(): (last_movement_at, product_id, warehouse_id).
-- (No index on warehouse_id alone: every lookup starts from the product, and
-- each index here is one more write on the hottest UPDATE in the system.)
create index stock_levels_last_movement_at_idx
  on inventory.stock_levels (last_movement_at, product_id, warehouse_id);

-- A change made outside the SQL API (a DBA's UPDATE) must still move version
-- forward, or the cache would reject it as stale. The WHEN clause keeps the
-- API's own updates, which always bump version, free of trigger calls.
create function inventory._stock_levels_bump_version() returns trigger
language plpgsql as $$
begin
  new.version := old.version + 1;
  new.last_movement_at := clock_timestamp();
  return new;
end
$$;
create trigger stock_levels_bump_version
  before update on inventory.stock_levels
  for each row when (new.version <= old.version)
  execute function inventory._stock_levels_bump_version();

create table inventory.reservations (
  id uuid primary key default gen_random_uuid(),
  order_ref text not null,
  status text not null default 'HELD'
    constraint reservations_status_valid check (status in ('HELD', 'CONFIRMED', 'RELEASED', 'EXPIRED')),
  expires_at timestamptz not null,
  idempotency_key text,
  request_hash text,
  release_reason text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint reservations_release_reason_only_when_released
    check ((status in ('RELEASED', 'EXPIRED')) = (release_reason is not null))
);
comment on table inventory.reservations is 'Holds on stock; HELD until confirmed, released or expired';
comment on column inventory.reservations.request_hash is
  'Digest of the canonical reserve() request, to tell a retry from a reused idempotency key';
-- Partial: most calls carry no key, and those then cost no index entry.
create unique index reservations_idempotency_key_key
  on inventory.reservations (idempotency_key) where idempotency_key is not null;
create index reservations_order_ref_idx on inventory.reservations (order_ref);
-- Due HELD reservations: expiry job, sweeper and reserve()'s lazy expiry.
create index reservations_held_expires_at_idx
  on inventory.reservations (expires_at) where status = 'HELD';

-- reservation_lines and movements reference reservations and stock_levels
-- without FOREIGN KEY constraints, deliberately: their rows are written only
-- by the SQL API, in the transaction that has just locked (or created) the
-- rows they point at, and the RI triggers of four foreign keys were 75% of
-- the cost of reserve()'s writes. What the constraints would protect against
-- instead is refused outright: nobody deletes a stock row or a reservation
-- (triggers below), and nobody but the owner writes these tables.
-- The relations are declared to PostGraphile in src/graphql/preset.ts.
create table inventory.reservation_lines (
  reservation_id uuid not null,
  product_id uuid not null,
  warehouse_id uuid not null,
  qty integer not null constraint reservation_lines_qty_positive check (qty > 0),
  primary key (reservation_id, product_id, warehouse_id)
);
comment on table inventory.reservation_lines is 'What a reservation holds, one line per stock row';

create table inventory.movements (
  id bigint generated always as identity primary key,
  product_id uuid not null,
  warehouse_id uuid not null,
  kind text not null constraint movements_kind_valid check (kind in (
    'RECEIVE', 'ADJUST', 'COUNT', 'RESERVE', 'RELEASE', 'EXPIRE', 'CONFIRM', 'TRANSFER_OUT', 'TRANSFER_IN')),
  on_hand_delta integer not null,
  reserved_delta integer not null,
  on_hand_after integer not null,
  reserved_after integer not null,
  reason text,
  reservation_id uuid,
  reference text,
  idempotency_key text,
  actor text not null,
  occurred_at timestamptz not null default now()
);
comment on table inventory.movements is
  'Append-only ledger: one row per change of one stock row; UPDATE, DELETE and TRUNCATE are refused';
create index movements_stock_row_idx on inventory.movements (product_id, warehouse_id, id);
create index movements_occurred_at_idx on inventory.movements using brin (occurred_at);

-- The ledger is append-only for everyone, its owner included (REVOKE alone
-- does not bind an owner). Only a superuser disabling the trigger gets past.
create function inventory._movements_append_only() returns trigger
language plpgsql as $$
begin
  raise exception 'inventory.movements is an append-only ledger: % is not allowed', tg_op
    using errcode = '42501',
          hint = 'Record a correcting movement instead, e.g. inventory.adjust(sku, warehouse, delta, reason).';
end
$$;
create trigger movements_append_only
  before update or delete on inventory.movements
  for each row execute function inventory._movements_append_only();
create trigger movements_no_truncate
  before truncate on inventory.movements
  for each statement execute function inventory._movements_append_only();

-- Stock rows and reservations are history the ledger points at: never deleted
-- (this is what stands in for the foreign keys above).
create function inventory._refuse_delete() returns trigger
language plpgsql as $$
begin
  raise exception '% rows are never deleted: the movement ledger refers to them', tg_table_name
    using errcode = '42501',
          hint = 'Set a stock row to zero with adjust() or set_count(); end a reservation with release().';
end
$$;
create trigger stock_levels_no_delete before delete on inventory.stock_levels
  for each row execute function inventory._refuse_delete();
create trigger stock_levels_no_truncate before truncate on inventory.stock_levels
  for each statement execute function inventory._refuse_delete();
create trigger reservations_no_delete before delete on inventory.reservations
  for each row execute function inventory._refuse_delete();
create trigger reservations_no_truncate before truncate on inventory.reservations
  for each statement execute function inventory._refuse_delete();
create trigger reservation_lines_no_delete before delete on inventory.reservation_lines
  for each row execute function inventory._refuse_delete();
create trigger reservation_lines_no_truncate before truncate on inventory.reservation_lines
  for each statement execute function inventory._refuse_delete();

-- Idempotency keys of adjust() and transfer() (reserve() keeps its own on the reservation).
create table inventory.operation_keys (
  idempotency_key text primary key,
  operation text not null,
  request_hash text not null,
  created_at timestamptz not null default now()
);
comment on table inventory.operation_keys is
  'Idempotency keys of adjust() and transfer(): a retry returns the first result, another payload is refused';

-- Nobody but the owner writes tables directly; the SQL API does it.
revoke all on all tables in schema inventory from public;
alter default privileges in schema inventory revoke execute on functions from public;
revoke execute on all functions in schema inventory from public;
grant usage on schema inventory to stockroom_reader;
grant select on all tables in schema inventory to stockroom_reader;

-- One requested or allocated quantity of one stock row (warehouse_id is null
-- for a reserve() line that leaves the warehouse to allocation).
create type inventory._line as (product_id uuid, warehouse_id uuid, qty bigint);

-- Row shapes of the bulk reads stock() and recently_updated() (composite types,
-- because recently_updated's warehouse argument and output column share a name).
create type inventory.stock_row as (
  sku text, warehouse text, on_hand integer, reserved integer, safety_stock integer,
  available integer, version bigint, last_movement_at timestamptz);
create type inventory.stock_change as (
  sku text, warehouse text, on_hand integer, reserved integer, safety_stock integer,
  available integer, version bigint, last_movement_at timestamptz, cursor text);
