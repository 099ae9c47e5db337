// expire_sweep: the one job that expires reservations. A run expires every due
// HELD reservation (inventory.expire_due, in batches), then schedules the
// next run of itself under one job key, at the earlier of the next expires_at
// and SWEEP_INTERVAL_MS from now: a reservation made meanwhile with a shorter
// ttl waits at most that interval plus the worker's poll interval. reserve()
// writes no job at all (a job row per reservation cost a fifth of each
// reserve and much of its WAL): the sweeper finds due reservations through
// their expires_at index. Scheduling goes through graphile-worker's public
// add_job only. The worker adds the job when it starts, and the crontab adds
// it every minute without moving a scheduled run (preserve_run_at), so the
// chain survives a lost job, a failed run or a worker killed mid-sweep.
// Sweeps depend on no lock another role could take and keep: expire_due skips
// rows other transactions hold, so two sweeps at once (one started by hand)
// only share the work; and each batch has a statement timeout, so a sweep
// that cannot get on (a table locked by a DBA) gives its worker slot back
// within SWEEP_STATEMENT_TIMEOUT, before the crontab adds the next one: stuck
// sweeps cannot pile up and take every slot. (Not a named queue: a worker
// killed mid-sweep would hold the queue, and expiry with it, until it is
// found dead.)
import type { JobHelpers, Task } from 'graphile-worker';
import type pg from 'pg';
import type { JobMetrics } from './metrics.ts';

export const EXPIRE_SWEEP = 'expire_sweep';
/** The job key of the one pending sweep. */
export const EXPIRE_SWEEP_KEY = 'expire_sweep';
/** The longest one expire_due call may run before the sweep gives up and the next one retries (under the crontab's minute). */
const SWEEP_STATEMENT_TIMEOUT = '30s';
/** The longest a sweep waits for the next one. */
export const SWEEP_INTERVAL_MS = 1_000;
/** The crontab line that keeps the chain alive. */
export const EXPIRE_SWEEP_CRON = `* * * * * ${EXPIRE_SWEEP} ?max=1&jobKey=${EXPIRE_SWEEP_KEY}&jobKeyMode=preserve_run_at`;

/**
 * Calls inventory.expire_due until nothing is due; returns how many it
 * expired. Each call is bounded by a statement timeout of its own (the
 * session's setting is restored after), so a sweep that cannot get on ends
 * with an error instead of holding its worker slot.
 */
export async function expireAllDue(client: Pick<pg.PoolClient, 'query'>, batch = 1000): Promise<number> {
  let total = 0;
  for (;;) {
    await client.query('begin');
    let n: number;
    try {
      await client.query(`set local statement_timeout = '${SWEEP_STATEMENT_TIMEOUT}'`);
      const { rows } = await client.query<{ n: number }>('select inventory.expire_due($1) as n', [batch]);
      await client.query('commit');
      n = rows[0]?.n ?? 0;
    } catch (error) {
      await client.query('rollback').catch(() => {});
      throw error;
    }
    total += n;
    if (n < batch) return total;
  }
}

/**
 * When the next sweep should run: the next expires_at still to come of a HELD
 * reservation, but no later than intervalMs from now. A reservation already
 * due that this sweep had to skip (expire_due skips one whose rows another
 * transaction holds) waits for the interval: counting it would schedule the
 * next sweep in the past, and sweeps would run back to back for as long as the
 * other transaction holds the rows.
 */
export async function nextSweepAt(client: Pick<pg.PoolClient, 'query'>, intervalMs: number): Promise<Date> {
  const { rows } = await client.query<{ at: Date }>(`
    select least(min(expires_at), now() + make_interval(secs => $1)) as at
    from inventory.reservations where status = 'HELD' and expires_at > now()`, [intervalMs / 1000]);
  return rows[0]!.at;
}

/** Puts the next sweep in the queue (replacing the pending one): at runAt, or now. */
export function scheduleSweep(addJob: JobHelpers['addJob'], runAt?: Date, mode: 'replace' | 'preserve_run_at' = 'replace') {
  return addJob(EXPIRE_SWEEP, {}, { jobKey: EXPIRE_SWEEP_KEY, jobKeyMode: mode, ...(runAt ? { runAt } : {}) });
}

export function expireSweepTask(metrics: JobMetrics): Task {
  return async (_payload, helpers) => {
    try {
      const expired = await helpers.withPgClient((client) => expireAllDue(client));
      metrics.ttlExpired.inc(expired);
      if (expired) helpers.logger.info(`expired ${expired} reservation(s)`, { expired });
    } catch (error) {
      // Not a job failure: the next sweep, a second from now, is the retry (a
      // failed job would instead wait out graphile-worker's growing backoff).
      metrics.sweepErrors.inc();
      helpers.logger.error(`expiry sweep failed: ${(error as Error).message}`, { error });
    }
    const runAt = await helpers.withPgClient((client) => nextSweepAt(client, SWEEP_INTERVAL_MS));
    await scheduleSweep(helpers.addJob, runAt);
  };
}
