-- Inbound stock (issue 15): purchase orders and returns on their way, and the
-- dates they are expected. Receiving turns them into on_hand through RECEIVE
-- movements (inventory.receive_inbound); available_to_promise counts what is
-- expected by a date. See README "Inbound stock and available-to-promise".
--
-- Neither table is in the logical replication publication: the cache keeps
-- on_hand and available, which only movements change; inbound reaches the
-- cache as the RECEIVE movements its receipts write.

-- One shipment: a purchase order (or part of one) or a customer return on its
-- way. Its status sums up its lines' (see inventory._inbound_status):
--   OPEN          nothing received yet, something still expected
--   PARTIAL       some units received, some still expected
--   RECEIVED      every line received in full
--   CANCELLED     every line cancelled, nothing received
--   CLOSED_SHORT  nothing expected any more, and not all of it came
create table inventory.inbound_shipments (
  id uuid primary key default gen_random_uuid(),
  reference text not null,
  kind text not null
    constraint inbound_shipments_kind_valid check (kind in ('PURCHASE', 'RETURN')),
  status text not null default 'OPEN'
    constraint inbound_shipments_status_valid check (status in ('OPEN', 'PARTIAL', 'RECEIVED', 'CANCELLED', 'CLOSED_SHORT')),
  idempotency_key text,
  request_hash text,
  created_by text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table inventory.inbound_shipments is
  'Inbound shipments (purchase orders, returns) on their way: inventory.create_inbound, receive_inbound, close_inbound, cancel_inbound';
comment on column inventory.inbound_shipments.reference is 'The caller''s name for it: a PO or RMA number (not unique: a PO may arrive as several shipments)';
comment on column inventory.inbound_shipments.request_hash is
  'Digest of the create_inbound request, to tell a retry from a reused idempotency key';
create unique index inbound_shipments_idempotency_key_key
  on inventory.inbound_shipments (idempotency_key) where idempotency_key is not null;
create index inbound_shipments_reference_idx on inventory.inbound_shipments (reference);

-- One expected stock row of a shipment: qty_expected units of a product at a
-- warehouse by expected_at. A shipment has one line per stock row, so a
-- receipt names a line by sku and warehouse. Line statuses are the
-- shipment's, per line; the CHECKs keep each status true to its quantities.
create table inventory.inbound_lines (
  shipment_id uuid not null references inventory.inbound_shipments (id) on delete restrict,
  product_id uuid not null references inventory.products (id) on delete restrict,
  warehouse_id uuid not null references inventory.warehouses (id) on delete restrict,
  qty_expected integer not null constraint inbound_lines_qty_expected_positive check (qty_expected > 0),
  qty_received integer not null default 0 constraint inbound_lines_qty_received_non_negative check (qty_received >= 0),
  expected_at timestamptz not null,
  status text not null default 'OPEN'
    constraint inbound_lines_status_valid check (status in ('OPEN', 'PARTIAL', 'RECEIVED', 'CANCELLED', 'CLOSED_SHORT')),
  closed_reason text,
  updated_at timestamptz not null default now(),
  primary key (shipment_id, product_id, warehouse_id),
  constraint inbound_lines_status_matches_quantities check (case status
    when 'OPEN' then qty_received = 0
    when 'PARTIAL' then qty_received > 0 and qty_received < qty_expected
    when 'RECEIVED' then qty_received >= qty_expected
    when 'CANCELLED' then qty_received = 0
    when 'CLOSED_SHORT' then qty_received < qty_expected
  end),
  constraint inbound_lines_closed_reason_when_closed check ((status in ('CANCELLED', 'CLOSED_SHORT')) = (closed_reason is not null))
);
comment on table inventory.inbound_lines is
  'What a shipment brings: qty_expected units of a product at a warehouse by expected_at; qty_received so far (more than expected only when an over-receipt was allowed)';
-- What is still expected per stock row, by date: available_to_promise, backorder_position, inbound().
create index inbound_lines_open_idx
  on inventory.inbound_lines (product_id, warehouse_id, expected_at) where status in ('OPEN', 'PARTIAL');
-- Shipments and their lines are history the ledger's RECEIVE movements point at.
create trigger inbound_shipments_no_delete before delete on inventory.inbound_shipments
  for each row execute function inventory._refuse_delete();
create trigger inbound_shipments_no_truncate before truncate on inventory.inbound_shipments
  for each statement execute function inventory._refuse_delete();
create trigger inbound_lines_no_delete before delete on inventory.inbound_lines
  for each row execute function inventory._refuse_delete();
create trigger inbound_lines_no_truncate before truncate on inventory.inbound_lines
  for each statement execute function inventory._refuse_delete();

-- Purchase orders and returns are the business's, not the storefront's: readers and up.
grant select on inventory.inbound_shipments, inventory.inbound_lines to stockroom_reader;

-- The rows of the two reads (their arguments are named sku and warehouse too,
-- which a RETURNS TABLE could not also use as column names).
create type inventory.atp_row as (
  sku text, warehouse text, available integer, backordered integer, inbound integer, atp integer);
comment on type inventory.atp_row is
  'available_to_promise: per warehouse (and in total, warehouse null) what can be promised by a date';
create type inventory.inbound_row as (
  inbound_id uuid, reference text, kind text, sku text, warehouse text, qty_expected integer, qty_received integer,
  qty_outstanding integer, expected_at timestamptz, status text, overdue boolean, shipment_status text);
comment on type inventory.inbound_row is 'inventory.inbound: one inbound line with its shipment';
