-- Selling beyond plain on-hand (issue 14): kits, backorders and preorders,
-- and reservations that change after they are made.

-- Kits. A kit is a product made of other products (its components), sold as
-- one: it has no stock of its own, and reserving, confirming, releasing or
-- expiring a kit line acts on its components. Kits are one level deep: a kit
-- is never a component (set_kit refuses it), which keeps every expansion a
-- single join and every availability a single minimum.
alter table inventory.products add column is_kit boolean not null default false;
comment on column inventory.products.is_kit is
  'A kit: no stock of its own, made of the components in inventory.kit_components (set with inventory.set_kit)';

create table inventory.kits (
  product_id uuid primary key references inventory.products (id) on delete restrict,
  low_stock_threshold integer not null default 0
    constraint kits_low_stock_threshold_non_negative check (low_stock_threshold >= 0),
  version bigint not null default 1,
  updated_at timestamptz not null default now()
);
comment on table inventory.kits is 'Kits: products sold as a set of components; a kit''s available is min over components of floor(available / qty)';

create table inventory.kit_components (
  kit_id uuid not null references inventory.kits (product_id) on delete restrict,
  component_id uuid not null references inventory.products (id) on delete restrict,
  qty integer not null constraint kit_components_qty_range check (qty between 1 and 100000),
  primary key (kit_id, component_id),
  constraint kit_components_not_itself check (kit_id <> component_id)
);
comment on table inventory.kit_components is 'What one kit is made of: qty units of each component per kit';
-- Which kits a component is in (availability of kits after a component changes).
create index kit_components_component_idx on inventory.kit_components (component_id, kit_id);

-- The kit lines of a reservation, as requested (its reservation_lines hold
-- the components). warehouse_id is null for a kit line left to allocation.
create table inventory.reservation_kits (
  reservation_id uuid not null,
  kit_id uuid not null,
  warehouse_id uuid,
  qty integer not null constraint reservation_kits_qty_non_negative check (qty >= 0)
);
comment on table inventory.reservation_kits is 'The kit lines of a reservation (its components are in reservation_lines)';
create index reservation_kits_reservation_idx on inventory.reservation_kits (reservation_id);
create index reservation_kits_kit_idx on inventory.reservation_kits (kit_id);
create trigger reservation_kits_no_delete before delete on inventory.reservation_kits
  for each row execute function inventory._refuse_delete();

-- Backorders and preorders: a stock row may sell beyond what it has, up to a
-- limit. What it sold beyond is `backordered`, filled first come first served
-- when stock arrives. The check makes the limit hold whatever the concurrency.
alter table inventory.stock_levels
  add column backorder_policy text not null default 'DENY'
    constraint stock_levels_backorder_policy_valid check (backorder_policy in ('DENY', 'BACKORDER', 'PREORDER')),
  add column backorder_limit integer not null default 0
    constraint stock_levels_backorder_limit_non_negative check (backorder_limit >= 0),
  add column preorder_until timestamptz,
  add column backordered integer not null default 0,
  add constraint stock_levels_backordered_within_limit check (backordered >= 0 and backordered <= backorder_limit),
  add constraint stock_levels_preorder_has_date check (backorder_policy <> 'PREORDER' or preorder_until is not null);
comment on column inventory.stock_levels.backorder_policy is
  'DENY: never sell beyond available; BACKORDER: up to backorder_limit units beyond; PREORDER: the same until preorder_until';
comment on column inventory.stock_levels.backordered is
  'Units sold beyond available and not filled yet (at most backorder_limit)';

-- A reservation line holds qty units and waits for `backordered` more; both
-- go down as the line is filled, confirmed or released, so a line may end at
-- zero (it stays, as history). backorder_seq orders the row's waiting lines:
-- taken under the stock row's lock, it is the order the backorders were made.
alter table inventory.reservation_lines drop constraint reservation_lines_qty_positive;
alter table inventory.reservation_lines
  add constraint reservation_lines_qty_non_negative check (qty >= 0),
  add column backordered integer not null default 0
    constraint reservation_lines_backordered_non_negative check (backordered >= 0),
  add column backorder_seq bigint,
  add column confirmed integer not null default 0
    constraint reservation_lines_confirmed_non_negative check (confirmed >= 0);
comment on column inventory.reservation_lines.qty is 'Units this line holds (reserved on the stock row) now';
comment on column inventory.reservation_lines.backordered is 'Units this line waits for (backordered on the stock row)';
comment on column inventory.reservation_lines.confirmed is 'Units of this line confirmed so far';
create sequence inventory.backorder_seq;
-- The waiting lines of a stock row, in the order they are filled.
create index reservation_lines_backorder_queue_idx
  on inventory.reservation_lines (product_id, warehouse_id, backorder_seq) where backordered > 0;

-- The ledger records backorders: how many units a movement added to or took
-- from the row's backordered, and what it was after (null when the movement
-- did not change it: most movements, which then cost nothing more).
alter table inventory.movements
  add column backordered_delta integer not null default 0,
  add column backordered_after integer;
alter table inventory.movements drop constraint movements_kind_valid;
alter table inventory.movements add constraint movements_kind_valid check (kind in (
  'RECEIVE', 'ADJUST', 'COUNT', 'RESERVE', 'RELEASE', 'EXPIRE', 'CONFIRM', 'TRANSFER_OUT', 'TRANSFER_IN',
  'BACKORDER', 'FILL'));

grant select on inventory.kits, inventory.kit_components to stockroom_public;
grant select on inventory.reservation_kits to stockroom_reader;

-- A resolved reserve() request also carries its kit lines (kit_id, warehouse_id or null, qty): its lines are the components.
alter type inventory._reserve_request add attribute kits inventory._line[];

-- Allocation sees, per candidate row, also how many units it may still sell
-- beyond what it has (0 unless its policy allows backorders or preorders now).
alter type inventory._slot add attribute backorderable integer;
