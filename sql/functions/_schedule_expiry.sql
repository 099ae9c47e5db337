-- Schedules (or moves) the job that expires a reservation at its expires_at:
-- one job per reservation, key expire:<id>, in graphile-worker's own table, in
-- the caller's transaction (so it exists exactly when the reservation does).
-- Written directly rather than through graphile_worker.add_job: add_job
-- NOTIFYs, and PostgreSQL serialises the commits of all notifying
-- transactions on one lock held across the WAL flush. A job due in the future
-- needs no wake-up: workers poll for due jobs. The columns follow
-- graphile_worker.add_jobs (graphile-worker 0.18) for a keyed job.
create or replace function inventory._schedule_expiry(p_reservation_id uuid, p_run_at timestamptz)
returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  insert into graphile_worker._private_jobs as jobs (task_id, payload, run_at, max_attempts, key)
  select t.id, json_build_object('reservation_id', p_reservation_id), p_run_at, 25, 'expire:' || p_reservation_id
  from graphile_worker._private_tasks t
  where t.identifier = 'expire_reservation'
  on conflict (key) do update
    set run_at = excluded.run_at, updated_at = now(), revision = jobs.revision + 1, attempts = 0, last_error = null
    where jobs.locked_at is null;
end
$$;
comment on function inventory._schedule_expiry(uuid, timestamptz) is
  'Internal: schedule or move the expiry job of a reservation (graphile-worker job key expire:<id>)';
