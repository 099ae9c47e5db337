-- Transfers in transit (issue 15): a transfer that leaves its source now
-- (ship_transfer) and arrives later, whole or in parts (receive_transfer), or
-- never (write_off_transfer). inventory.transfer() stays the instant move.

-- One shipment of one product from one warehouse to another. Its counters
-- only grow, each under the shipment's row lock, and the CHECKs keep what was
-- received and written off within what was shipped whatever the concurrency.
-- Status and what is still in transit are derived (generated), so they can
-- never disagree with the counters.
create table inventory.transit_shipments (
  id uuid primary key default inventory._new_id(),
  reference text not null constraint transit_shipments_reference_key unique,
  product_id uuid not null constraint transit_shipments_product_id_fkey references inventory.products (id) on delete restrict,
  from_warehouse_id uuid not null constraint transit_shipments_from_warehouse_id_fkey references inventory.warehouses (id) on delete restrict,
  to_warehouse_id uuid not null constraint transit_shipments_to_warehouse_id_fkey references inventory.warehouses (id) on delete restrict,
  qty_shipped integer not null constraint transit_shipments_qty_shipped_positive check (qty_shipped > 0),
  qty_received integer not null default 0 constraint transit_shipments_qty_received_non_negative check (qty_received >= 0),
  qty_lost integer not null default 0 constraint transit_shipments_qty_lost_non_negative check (qty_lost >= 0),
  qty_in_transit integer generated always as (qty_shipped - qty_received - qty_lost) stored,
  status text generated always as (case
    when qty_received + qty_lost = 0 then 'IN_TRANSIT'
    when qty_received + qty_lost < qty_shipped then 'PARTIAL'
    when qty_lost = 0 then 'RECEIVED'
    else 'CLOSED' end) stored,
  reason text not null,
  idempotency_key text,
  actor text not null,
  shipped_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  closed_at timestamptz,
  constraint transit_shipments_not_to_itself check (from_warehouse_id <> to_warehouse_id),
  constraint transit_shipments_within_shipped check (qty_received + qty_lost <= qty_shipped),
  constraint transit_shipments_closed_when_done check ((qty_received + qty_lost = qty_shipped) = (closed_at is not null))
);
comment on table inventory.transit_shipments is
  'Transfers in transit: shipped from one warehouse (TRANSIT_OUT), received at another (TRANSIT_IN) in parts, or written off (TRANSIT_LOST)';
comment on column inventory.transit_shipments.reference is 'transit:<id>, the reference of every movement of the shipment';
comment on column inventory.transit_shipments.qty_in_transit is 'qty_shipped - qty_received - qty_lost: units on their way';
comment on column inventory.transit_shipments.status is
  'IN_TRANSIT (nothing arrived or written off yet), PARTIAL (some), RECEIVED (all arrived), CLOSED (done, some written off)';
comment on column inventory.transit_shipments.idempotency_key is 'The key ship_transfer() was called with: its retry returns this shipment';
create unique index transit_shipments_idempotency_key_key
  on inventory.transit_shipments (idempotency_key) where idempotency_key is not null;
-- Open shipments per route (in_transit()); closed ones leave the index.
create index transit_shipments_open_route_idx
  on inventory.transit_shipments (product_id, from_warehouse_id, to_warehouse_id) where closed_at is null;
create index transit_shipments_to_warehouse_idx on inventory.transit_shipments (to_warehouse_id) where closed_at is null;
-- Shipments are history the ledger points at (by reference): never deleted.
create trigger transit_shipments_no_delete before delete on inventory.transit_shipments
  for each row execute function inventory._refuse_delete();
create trigger transit_shipments_no_truncate before truncate on inventory.transit_shipments
  for each statement execute function inventory._refuse_delete();
grant select on inventory.transit_shipments to stockroom_reader;

-- The ledger records what a movement put into transit (TRANSIT_OUT, +qty) or
-- took out of it (TRANSIT_IN and TRANSIT_LOST, -qty); 0 for every other
-- movement. Per shipment (reference) it sums to what is in transit, which is
-- how a write-off, which changes no on_hand, shows its quantity.
alter table inventory.movements add column transit_delta integer not null default 0;
comment on column inventory.movements.transit_delta is
  'Units this movement put into transit (+, TRANSIT_OUT) or took out of it (-, TRANSIT_IN, TRANSIT_LOST); 0 otherwise';

alter table inventory.movements drop constraint movements_kind_valid;
alter table inventory.movements add constraint movements_kind_valid check (kind in (
  'RECEIVE', 'ADJUST', 'COUNT', 'RESERVE', 'RELEASE', 'EXPIRE', 'CONFIRM', 'TRANSFER_OUT', 'TRANSFER_IN',
  'BACKORDER', 'FILL', 'TRANSIT_OUT', 'TRANSIT_IN', 'TRANSIT_LOST'));

-- What in_transit() returns: one row per route (sku, from, to) with open shipments.
create type inventory.transit_route as (
  sku text, from_warehouse text, to_warehouse text, shipments integer, qty_in_transit bigint, oldest_shipped_at timestamptz);
