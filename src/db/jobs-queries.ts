// Reads and operator actions on graphile-worker's jobs, for `stockroom jobs`,
// through its public interface only (the graphile_worker.jobs view and its
// SQL functions). Finished jobs are deleted by graphile-worker, so they are
// not counted.
import type pg from 'pg';

export interface TaskCounts {
  task: string;
  queue: string;
  queued: number;
  scheduled: number;
  running: number;
  failed: number;
  permanentlyFailed: number;
  oldestWaitingSeconds: number | null;
}

export interface JobFailure { id: string; task: string; attempts: number; maxAttempts: number; lastError: string; updatedAt: Date; runAt: Date }
export interface WorkerPool { poolId: string; hostname: string; pid: number; lastSeenSecondsAgo: number }
export interface Dashboard { tasks: TaskCounts[]; failures: JobFailure[]; workers: WorkerPool[]; at: Date }

/** Counts for each of `tasks` (Stockroom's, shown even without jobs), and any other task that has jobs. */
export async function jobsDashboard(client: Pick<pg.Client, 'query'>, knownTasks: readonly string[]): Promise<Dashboard> {
  // One after another: a pg client runs one query at a time.
  const [tasks, failures, workers, now] = [
    await client.query(`
      with counted as (
        select j.task_identifier as task, coalesce(j.queue_name, '') as queue,
          count(*) filter (where j.locked_at is null and j.attempts < j.max_attempts and j.run_at <= now()) as queued,
          count(*) filter (where j.locked_at is null and j.attempts = 0 and j.run_at > now()) as scheduled,
          count(*) filter (where j.locked_at is not null) as running,
          count(*) filter (where j.locked_at is null and j.attempts > 0 and j.attempts < j.max_attempts) as failed,
          count(*) filter (where j.attempts >= j.max_attempts) as permanently_failed,
          extract(epoch from now() - min(j.run_at) filter (
            where j.locked_at is null and j.attempts < j.max_attempts and j.run_at <= now())) as oldest_waiting_seconds
        from graphile_worker.jobs j
        group by 1, 2)
      select t.identifier as task, coalesce(c.queue, '') as queue,
             coalesce(c.queued, 0)::int as queued, coalesce(c.scheduled, 0)::int as scheduled, coalesce(c.running, 0)::int as running,
             coalesce(c.failed, 0)::int as failed, coalesce(c.permanently_failed, 0)::int as permanently_failed,
             c.oldest_waiting_seconds::float8 as oldest_waiting_seconds
      from (select unnest($1::text[]) union select task from counted) t(identifier)
      left join counted c on c.task = t.identifier
      order by t.identifier, c.queue`, [knownTasks]),
    await client.query(`
      select id::text, task_identifier as task, attempts, max_attempts, last_error, updated_at, run_at
      from graphile_worker.jobs where last_error is not null order by updated_at desc limit 10`),
    await client.query(`
      select pool_id, hostname, pid, extract(epoch from now() - last_seen)::float8 as ago
      from stockroom_meta.worker_heartbeats order by pool_id`),
    await client.query<{ now: Date }>('select now()'),
  ];
  return {
    tasks: tasks.rows.map((r) => ({
      task: r.task, queue: r.queue, queued: r.queued, scheduled: r.scheduled, running: r.running, failed: r.failed,
      permanentlyFailed: r.permanently_failed, oldestWaitingSeconds: r.oldest_waiting_seconds,
    })),
    failures: failures.rows.map((r) => ({
      id: r.id, task: r.task, attempts: r.attempts, maxAttempts: r.max_attempts, lastError: r.last_error, updatedAt: r.updated_at, runAt: r.run_at,
    })),
    workers: workers.rows.map((r) => ({ poolId: r.pool_id, hostname: r.hostname, pid: r.pid, lastSeenSecondsAgo: r.ago })),
    at: now.rows[0]!.now,
  };
}

/** Which of the ids exist, and which of those are running (locked), so actions can say why they skipped one. */
export async function jobStates(client: Pick<pg.Client, 'query'>, ids: string[]): Promise<Map<string, 'idle' | 'running'>> {
  const { rows } = await client.query<{ id: string; running: boolean }>(
    `select id::text, locked_at is not null as running from graphile_worker.jobs where id = any($1::bigint[])`, [ids]);
  return new Map(rows.map((r) => [r.id, r.running ? 'running' : 'idle']));
}

export async function failedJobIds(client: Pick<pg.Client, 'query'>): Promise<string[]> {
  const { rows } = await client.query<{ id: string }>(
    `select id::text from graphile_worker.jobs where last_error is not null and locked_at is null order by id`);
  return rows.map((r) => r.id);
}

/** Runs failed (or any) jobs again now, with their attempts reset. Returns the ids changed. */
export async function retryJobs(client: Pick<pg.Client, 'query'>, ids: string[]): Promise<string[]> {
  const { rows } = await client.query<{ id: string }>(
    `select id::text from graphile_worker.reschedule_jobs($1::bigint[], run_at => now(), attempts => 0)`, [ids]);
  return rows.map((r) => r.id);
}

export async function cancelJobs(client: Pick<pg.Client, 'query'>, ids: string[]): Promise<string[]> {
  const { rows } = await client.query<{ id: string }>(
    `select id::text from graphile_worker.permanently_fail_jobs($1::bigint[], 'cancelled by an operator (stockroom jobs cancel)')`, [ids]);
  return rows.map((r) => r.id);
}

export async function rescheduleJobs(client: Pick<pg.Client, 'query'>, ids: string[], at: Date): Promise<string[]> {
  const { rows } = await client.query<{ id: string }>(
    `select id::text from graphile_worker.reschedule_jobs($1::bigint[], run_at => $2)`, [ids, at]);
  return rows.map((r) => r.id);
}

export async function enqueueJob(client: Pick<pg.Client, 'query'>, task: string, payload: unknown): Promise<string> {
  const { rows } = await client.query<{ id: string }>(
    `select id::text from graphile_worker.add_job($1, $2::json)`, [task, JSON.stringify(payload)]);
  return rows[0]!.id;
}
