-- Quantity states (issue 15): on-hand units that cannot be sold, kept as
-- named states per stock row (damaged, quality control, and states an
-- operator defines), moved with ledger movements, and excluded from available.
--
-- The units stay in on_hand (they are on the shelf; a count counts them):
-- stock_levels.unavailable is the sum of the row's states, and
-- available = greatest(on_hand - reserved - safety_stock - unavailable, 0).
-- Every state is unsellable; the sellable units are the rest of on_hand.

create table inventory.quantity_states (
  code text primary key
    constraint quantity_states_code_valid check (code ~ '^[A-Z][A-Z0-9_]{0,39}$'),
  name text not null
    constraint quantity_states_name_length check (char_length(name) between 1 and 200),
  created_at timestamptz not null default now()
);
comment on table inventory.quantity_states is
  'Named states of on-hand units that cannot be sold (DAMAGED, QUALITY_CONTROL, and those an operator defines with define_quantity_state)';
insert into inventory.quantity_states (code, name) values
  ('DAMAGED', 'Damaged'),
  ('QUALITY_CONTROL', 'Quality control');

alter table inventory.stock_levels add column unavailable integer not null default 0;
alter table inventory.stock_levels add constraint stock_levels_unavailable_non_negative check (unavailable >= 0);
-- Units in a state are on the shelf and promised to nobody: reserved and unavailable never overlap.
alter table inventory.stock_levels add constraint stock_levels_unavailable_within_on_hand check (unavailable <= on_hand - reserved);
comment on column inventory.stock_levels.unavailable is
  'On-hand units in a quantity state (Σ stock_level_states.qty of the row): excluded from available';

-- Like reservation_lines and movements (000001), no foreign key to
-- stock_levels: rows are written only by the SQL API with their stock row
-- locked, and stock rows are never deleted.
create table inventory.stock_level_states (
  product_id uuid not null,
  warehouse_id uuid not null,
  state text not null references inventory.quantity_states (code),
  qty integer not null constraint stock_level_states_qty_non_negative check (qty >= 0),
  primary key (product_id, warehouse_id, state)
);
comment on table inventory.stock_level_states is
  'Units of a stock row in each quantity state; written only with the row locked, by move_stock_state and adjust_state';

-- The ledger says which state a movement changed, and by how much: per row
-- and state, Σ state_delta is the state's qty (and Σ over states, unavailable).
alter table inventory.movements add column state text;
alter table inventory.movements add column state_delta integer not null default 0;
alter table inventory.movements add constraint movements_state_delta_has_state check (state_delta = 0 or state is not null);
comment on column inventory.movements.state is 'The quantity state this movement changed (STATE_MOVE, or RECEIVE/ADJUST of adjust_state); null otherwise';
comment on column inventory.movements.state_delta is 'Units this movement put into (+) or took out of (-) its state; 0 otherwise';

alter table inventory.movements drop constraint movements_kind_valid;
alter table inventory.movements add constraint movements_kind_valid check (kind in (
  'RECEIVE', 'ADJUST', 'COUNT', 'RESERVE', 'RELEASE', 'EXPIRE', 'CONFIRM', 'TRANSFER_OUT', 'TRANSFER_IN',
  'BACKORDER', 'FILL', 'TRANSIT_OUT', 'TRANSIT_IN', 'TRANSIT_LOST', 'STATE_MOVE'));

-- stock() shows the units in states (the breakdown is stock_states()).
alter type inventory.stock_row add attribute unavailable integer;

-- What stock_states() returns.
create type inventory.stock_state_row as (sku text, warehouse text, state text, qty integer);

grant select on inventory.quantity_states, inventory.stock_level_states to stockroom_reader;

