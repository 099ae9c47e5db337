// graphile-worker has no heartbeat: a job locked by a process that died stays
// locked for 4 hours. Each of our worker pools records a heartbeat; a pool
// silent for DEAD_AFTER_BEATS beats is dead, and its jobs are unlocked for
// others. Everything here goes through graphile-worker's public interface
// (the graphile_worker.jobs view, force_unlock_workers, complete_jobs).
import type pg from 'pg';
import { EXPIRE_SWEEP } from './expire_sweep.ts';

/** How often a pool beats by default. */
export const HEARTBEAT_MS = 5_000;
/** Beats a pool may miss before it counts as dead. */
const DEAD_AFTER_BEATS = 6;

export async function beat(client: Pick<pg.Pool, 'query'>, poolId: string): Promise<void> {
  await client.query(`
    insert into stockroom_meta.worker_heartbeats (pool_id, hostname, pid, last_seen)
    values ($1, $2, $3, now())
    on conflict (pool_id) do update set last_seen = now()`, [poolId, process.env.HOSTNAME ?? 'localhost', process.pid]);
}

export async function forget(client: Pick<pg.Pool, 'query'>, poolId: string): Promise<void> {
  await client.query('delete from stockroom_meta.worker_heartbeats where pool_id = $1', [poolId]);
}

/**
 * Unlocks jobs and queues held by pools without a recent heartbeat; returns
 * those pool ids. A dead pool's expiry sweep whose job key has since moved to
 * a new sweep (graphile-worker gives a locked job's key to the new job and
 * marks the old one as out of attempts) has nothing left to do: it is
 * completed rather than left looking permanently failed.
 */
export async function unlockDeadWorkers(client: Pick<pg.Pool, 'query'>, heartbeatMs = HEARTBEAT_MS): Promise<string[]> {
  const deadAfterSeconds = (heartbeatMs * DEAD_AFTER_BEATS) / 1000;
  const { rows } = await client.query<{ pool_id: string }>(`
    select distinct locked_by as pool_id from graphile_worker.jobs j
    where locked_at is not null
      and locked_at < now() - make_interval(secs => $1) -- a pool that just started may not have beaten yet
      and not exists (select from stockroom_meta.worker_heartbeats h
                      where h.pool_id = j.locked_by and h.last_seen > now() - make_interval(secs => $1))`, [deadAfterSeconds]);
  const dead = rows.map((r) => r.pool_id);
  if (dead.length) {
    const { rows: superseded } = await client.query<{ id: string }>(`
      select id::text from graphile_worker.jobs
      where locked_by = any($1::text[]) and task_identifier = $2 and key is null and attempts >= max_attempts and last_error is null`,
    [dead, EXPIRE_SWEEP]);
    await client.query('select graphile_worker.force_unlock_workers($1::text[])', [dead]);
    if (superseded.length) await client.query('select graphile_worker.complete_jobs($1::bigint[])', [superseded.map((r) => r.id)]);
    await client.query(`delete from stockroom_meta.worker_heartbeats where pool_id = any($1::text[])`, [dead]);
  }
  await client.query(`delete from stockroom_meta.worker_heartbeats where last_seen < now() - interval '1 day'`);
  return dead;
}
