-- The last run of each task, for operators (`stockroom jobs` shows it beside
-- the next run). graphile-worker deletes jobs that succeed and keeps its own
-- crontab bookkeeping private: the worker records each run here when it ends.
create table stockroom_meta.task_runs (
  task text primary key,
  started_at timestamptz not null,
  finished_at timestamptz not null,
  succeeded boolean not null,
  error text
);
comment on table stockroom_meta.task_runs is 'The last run of each worker task (written by the worker when a job ends)';
