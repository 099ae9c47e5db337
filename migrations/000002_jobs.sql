-- Jobs: graphile-worker's schema exists by now (the migration runner installs
-- it first). Stockroom talks to it through its public API only.
-- (This file once also registered task identifiers in graphile-worker's
-- private tables; src/db/migrate.ts accepts databases migrated with that
-- version, whose checksum it lists.)

-- Watermarks of periodic jobs (incremental_sync).
create table stockroom_meta.sync_state (
  name text primary key,
  watermark timestamptz not null,
  updated_at timestamptz not null default now()
);

-- graphile-worker has no heartbeat: ours tell a dead worker pool from a busy one.
create table stockroom_meta.worker_heartbeats (
  pool_id text primary key,
  hostname text not null,
  pid integer not null,
  started_at timestamptz not null default now(),
  last_seen timestamptz not null
);
