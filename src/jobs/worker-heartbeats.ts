// graphile-worker has no heartbeat: a job locked by a process that died stays
// locked for 4 hours. Each of our worker pools records a heartbeat; a pool
// whose heartbeat stopped is dead, and its jobs are unlocked for others.
import type pg from 'pg';

/** A pool silent this long is dead (heartbeats come every HEARTBEAT_MS). */
export const HEARTBEAT_MS = 5_000;
const DEAD_AFTER = '30 seconds';

export async function beat(client: Pick<pg.Pool, 'query'>, poolId: string): Promise<void> {
  await client.query(`
    insert into stockroom_meta.worker_heartbeats (pool_id, hostname, pid, last_seen)
    values ($1, $2, $3, now())
    on conflict (pool_id) do update set last_seen = now()`, [poolId, process.env.HOSTNAME ?? 'localhost', process.pid]);
}

export async function forget(client: Pick<pg.Pool, 'query'>, poolId: string): Promise<void> {
  await client.query('delete from stockroom_meta.worker_heartbeats where pool_id = $1', [poolId]);
}

/** Unlocks jobs and queues held by pools without a recent heartbeat; returns those pool ids. */
export async function unlockDeadWorkers(client: Pick<pg.Pool, 'query'>): Promise<string[]> {
  const { rows } = await client.query<{ pool_id: string }>(`
    select distinct locked_by as pool_id from graphile_worker._private_jobs j
    where locked_at is not null
      and locked_at < now() - interval '${DEAD_AFTER}' -- a pool that just started may not have beaten yet
      and not exists (select from stockroom_meta.worker_heartbeats h
                      where h.pool_id = j.locked_by and h.last_seen > now() - interval '${DEAD_AFTER}')`);
  const dead = rows.map((r) => r.pool_id);
  if (dead.length) {
    await client.query('select graphile_worker.force_unlock_workers($1::text[])', [dead]);
    await client.query(`delete from stockroom_meta.worker_heartbeats where pool_id = any($1::text[])`, [dead]);
  }
  await client.query(`delete from stockroom_meta.worker_heartbeats where last_seen < now() - interval '1 day'`);
  return dead;
}
