-- Jobs: graphile-worker's schema exists by now (the migration runner installs
-- it first). Stockroom's task identifiers are registered up front, so the SQL
-- API can schedule a job without calling graphile_worker.add_job (whose NOTIFY
-- would serialise every reserving transaction's commit on one lock).
insert into graphile_worker._private_tasks (identifier)
values ('expire_reservation'), ('expire_sweep'), ('incremental_sync'), ('verify_counters')
on conflict (identifier) do nothing;

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
