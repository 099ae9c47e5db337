// The last run of each task (stockroom_meta.task_runs), recorded by the worker
// when a job ends and read by `stockroom jobs`. The next run of a recurring
// task comes from the crontab itself (graphile-worker's parsed items).
import type { ParsedCronItem } from 'graphile-worker';
import type pg from 'pg';

export interface TaskRun { task: string; startedAt: Date; finishedAt: Date; succeeded: boolean; error: string | null }

/** Records a job's end as its task's last run. */
export async function recordTaskRun(pool: Pick<pg.Pool, 'query'>, run: TaskRun): Promise<void> {
  await pool.query(`
    insert into stockroom_meta.task_runs (task, started_at, finished_at, succeeded, error) values ($1, $2, $3, $4, $5)
    on conflict (task) do update set started_at = excluded.started_at, finished_at = excluded.finished_at,
      succeeded = excluded.succeeded, error = excluded.error`,
  [run.task, run.startedAt, run.finishedAt, run.succeeded, run.error?.slice(0, 1000) ?? null]);
}

export async function lastTaskRuns(client: Pick<pg.Client, 'query'>): Promise<Map<string, TaskRun>> {
  const { rows } = await client.query<{ task: string; started_at: Date; finished_at: Date; succeeded: boolean; error: string | null }>(
    'select task, started_at, finished_at, succeeded, error from stockroom_meta.task_runs');
  return new Map(rows.map((r) => [r.task, { task: r.task, startedAt: r.started_at, finishedAt: r.finished_at, succeeded: r.succeeded, error: r.error }]));
}

/** The next minute (UTC) at or after `from` that a crontab item matches; undefined if none within a year. */
export function nextCronRun(item: ParsedCronItem, from: Date): Date | undefined {
  const at = new Date(from);
  at.setUTCSeconds(0, 0);
  if (at < from) at.setUTCMinutes(at.getUTCMinutes() + 1);
  for (let i = 0; i < 366 * 24 * 60; i++, at.setUTCMinutes(at.getUTCMinutes() + 1)) {
    if (item.match({ min: at.getUTCMinutes(), hour: at.getUTCHours(), date: at.getUTCDate(), month: at.getUTCMonth() + 1, dow: at.getUTCDay() })) return new Date(at);
  }
  return undefined;
}

/** The earliest run_at of each task's waiting (unlocked) jobs. */
export async function nextQueuedRuns(client: Pick<pg.Client, 'query'>): Promise<Map<string, Date>> {
  const { rows } = await client.query<{ task: string; run_at: Date }>(`
    select task_identifier as task, min(run_at) as run_at from graphile_worker.jobs
    where locked_at is null and attempts < max_attempts group by 1`);
  return new Map(rows.map((r) => [r.task, r.run_at]));
}
