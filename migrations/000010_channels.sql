-- Sales channels (issue 15): a channel (web, retail, a marketplace) sells
-- from a set of warehouses, in an order of its own, by one of three
-- allocation strategies. A reserve() line that names a channel allocates only
-- among the channel's warehouses (README "Sales channels").

-- A channel. strategy decides the order its warehouses are allocated in
-- for a line without a warehouse:
--   PRIORITY   the channel's own order (channel_warehouses.priority, lower
--              first), then most available, then warehouse code;
--   MOST_STOCK most available first, then the channel's order, then code;
--   NEAREST    warehouses in the customer's region first (the line's
--              "region", else the channel's region), then as PRIORITY.
create table inventory.channels (
  id uuid primary key default gen_random_uuid(),
  code text not null unique
    constraint channels_code_format check (code = btrim(code) and length(code) between 1 and 64),
  name text,
  strategy text not null default 'PRIORITY'
    constraint channels_strategy_valid check (strategy in ('PRIORITY', 'MOST_STOCK', 'NEAREST')),
  region text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table inventory.channels is
  'Sales channels: each sells from its warehouses (channel_warehouses) by its strategy (PRIORITY, MOST_STOCK, NEAREST)';
comment on column inventory.channels.region is
  'The region a NEAREST channel prefers when a line names none';

-- The warehouses a channel may sell from, and its own order of them.
create table inventory.channel_warehouses (
  channel_id uuid not null references inventory.channels (id) on delete cascade,
  warehouse_id uuid not null references inventory.warehouses (id) on delete restrict,
  priority integer not null,
  primary key (channel_id, warehouse_id)
);
comment on table inventory.channel_warehouses is
  'The warehouses a channel sells from; priority is the channel''s own order (lower first)';
-- Which channels sell from a warehouse.
create index channel_warehouses_warehouse_idx on inventory.channel_warehouses (warehouse_id, channel_id);

-- Channels are catalog, like warehouses: the public reads them.
grant select on inventory.channels, inventory.channel_warehouses to stockroom_public;

-- Where a channel line's product may be allocated, and in what order: per
-- (product, warehouse) of the channel, the sort keys (grp, priority, then
-- most available, then tiebreak, then code). A line without a channel has none.
create type inventory._rank as (product_id uuid, warehouse_id uuid, grp integer, priority integer, tiebreak integer);

-- A resolved reserve() request also carries the ranks of its channel lines
-- without a warehouse (null when it has none).
alter type inventory._reserve_request add attribute ranks inventory._rank[];

-- Allocation takes the ranks as a further (optional) argument: the earlier
-- forms would stay as overloads of the same name.
drop function if exists inventory._allocate(inventory._line[], inventory._slot[]);
drop function if exists inventory._allocate_locked(inventory._line[], inventory._line[], inventory._line[]);
