// `stockroom jobs`: graphile-worker's jobs for operators — counts by task and
// state, recent failures, live workers; --watch redraws live; retry, cancel,
// reschedule and run act on them.
import { InvalidArgumentError, type Command } from 'commander';
import pg from 'pg';
import { checkDatabase } from '../db/check.ts';
import {
  cancelJobs, enqueueJob, failedJobIds, jobStates, jobsDashboard, rescheduleJobs, retryJobs, type Dashboard,
} from '../db/jobs-queries.ts';
import { StockroomError, UsageError } from '../errors.ts';
import { END_PREORDERS } from '../jobs/end_preorders.ts';
import { EXPIRE_SWEEP } from '../jobs/expire_sweep.ts';
import { INCREMENTAL_SYNC } from '../jobs/incremental_sync.ts';
import { UNLOCK_DEAD_WORKERS } from '../jobs/unlock_dead_workers.ts';
import { VERIFY_COUNTERS } from '../jobs/verify_counters.ts';
import { CRONTAB } from '../jobs/crontab.ts';
import { lastTaskRuns, nextCronRun, nextQueuedRuns, type TaskRun } from '../jobs/task-runs.ts';
import { withCliContext, type CliContext } from './context.ts';
import { age } from './format.ts';
import { formatTable, printJson, printTable } from './output.ts';

const TASKS = [END_PREORDERS, EXPIRE_SWEEP, INCREMENTAL_SYNC, UNLOCK_DEAD_WORKERS, VERIFY_COUNTERS];

class JobsError extends StockroomError {
  constructor(message: string) {
    super('JOBS', message);
  }
}

async function withClient<T>(context: CliContext, body: (client: pg.Client) => Promise<T>): Promise<T> {
  await checkDatabase(context.services.databaseUrl, { logicalWal: false });
  const client = new pg.Client({ connectionString: context.services.databaseUrl, application_name: 'stockroom jobs' });
  client.on('error', () => {});
  await client.connect();
  try {
    const { rowCount } = await client.query(`select 1 from pg_namespace where nspname = 'graphile_worker'`);
    if (!rowCount) throw new JobsError('no jobs schema in this database: run stockroom migrate (or stockroom start) first');
    return await body(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** A recurring task: its schedule (UTC), when it runs next, and how its last run went. */
interface Recurring { task: string; schedule: string; nextRunAt: Date | null; lastRun: TaskRun | null }
type Board = Dashboard & { recurring: Recurring[] };

const SCHEDULES = new Map(CRONTAB.split('\n').map((line) => [line.split(/\s+/)[5]!, line.split(/\s+/).slice(0, 5).join(' ')]));

/** The dashboard, with the recurring tasks' next and last runs. */
async function board(client: pg.Client): Promise<Board> {
  const dashboard = await jobsDashboard(client, TASKS);
  const [last, queued] = [await lastTaskRuns(client), await nextQueuedRuns(client)];
  const { parseCrontab } = await import('graphile-worker'); // loaded when needed: --help stays fast
  const recurring = parseCrontab(CRONTAB).map((item): Recurring => {
    // The crontab's next minute, or a job already waiting (the sweep's own chain) if sooner.
    const candidates = [nextCronRun(item, dashboard.at), queued.get(item.task)].filter((d): d is Date => d !== undefined);
    const next = candidates.length ? new Date(Math.min(...candidates.map((d) => d.getTime()))) : null;
    return { task: item.task, schedule: SCHEDULES.get(item.task) ?? '', nextRunAt: next, lastRun: last.get(item.task) ?? null };
  });
  return { ...dashboard, recurring };
}

function render(d: Board): string {
  const lines: string[] = [];
  const table = (head: string[], rows: Array<Array<string | number>>) => lines.push(formatTable(head, rows));
  const since = (at: Date) => age((d.at.getTime() - at.getTime()) / 1000);
  lines.push(`jobs at ${d.at.toISOString()}`, '');
  // "dead": failed for good (attempts used up); a job in a named queue shows it after the task.
  table(['task', 'queued', 'later', 'running', 'failed', 'dead', 'oldest'],
    d.tasks.map((t) => [t.queue ? `${t.task} (queue ${t.queue})` : t.task, t.queued, t.scheduled, t.running, t.failed, t.permanentlyFailed, age(t.oldestWaitingSeconds) || '-']));
  lines.push('');
  table(['recurring', 'schedule (UTC)', 'next run', 'last run'], d.recurring.map((r) => [
    r.task, r.schedule,
    r.nextRunAt ? (r.nextRunAt <= d.at ? 'due now' : `in ${age((r.nextRunAt.getTime() - d.at.getTime()) / 1000)}`) : '-',
    r.lastRun ? `${since(r.lastRun.finishedAt)} ago, ${r.lastRun.succeeded ? 'ok' : 'FAILED'}` : 'never',
  ]));
  lines.push('');
  if (d.failures.length) {
    table(['job', 'task', 'attempts', 'last error', 'next run'], d.failures.map((f) => [
      f.id, f.task, `${f.attempts}/${f.maxAttempts}`, f.lastError.split('\n')[0]!.slice(0, 30),
      f.attempts >= f.maxAttempts ? 'never (retry)' : `in ${age(Math.max(0, (f.runAt.getTime() - d.at.getTime()) / 1000))}`,
    ]));
  } else {
    lines.push('no failures');
  }
  lines.push('');
  lines.push(...(d.workers.length
    ? ['workers:', ...d.workers.map((w) => `  ${w.poolId} (${w.hostname} pid ${w.pid}, seen ${age(w.lastSeenSecondsAgo)} ago)`)]
    : ['workers: none running (stockroom start --worker)']));
  return `${lines.join('\n')}\n`;
}

async function watch(client: pg.Client, intervalMs: number): Promise<void> {
  const out = process.stdout;
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });
  const onKey = (key: Buffer) => {
    if (key[0] === 3 || key.toString() === 'q') stop(); // Ctrl-C (raw mode) or q
  };
  process.once('SIGINT', () => stop());
  process.once('SIGTERM', () => stop());
  if (process.stdin.isTTY) {
    process.stdin.setRawMode(true);
    process.stdin.on('data', onKey);
  }
  out.write('\x1b[?25l'); // hide the cursor while redrawing
  try {
    while (true) {
      const frame = render(await board(client));
      out.write(`\x1b[H\x1b[2J${frame}\n(q or Ctrl-C to quit; every ${intervalMs / 1000} s)\n`);
      const next = await Promise.race([stopped.then(() => 'stop'), new Promise((r) => setTimeout(r, intervalMs)).then(() => 'tick')]);
      if (next === 'stop') break;
    }
  } finally {
    out.write('\x1b[?25h');
    if (process.stdin.isTTY) {
      process.stdin.setRawMode(false);
      process.stdin.off('data', onKey);
      process.stdin.pause();
    }
  }
}

const ids = (values: string[]) => {
  for (const v of values) if (!/^\d+$/.test(v)) throw new UsageError(`job ids are whole numbers, got '${v}'`);
  return values;
};

/** "2026-11-22T10:00:00Z", "now", or "+10m" / "+2h" / "+30s" / "+1d" from now. */
export function parseWhen(text: string, now = new Date()): Date {
  if (text === 'now') return now;
  const relative = /^\+(\d+)([smhd])$/.exec(text);
  if (relative) return new Date(now.getTime() + Number(relative[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[relative[2] as 's' | 'm' | 'h' | 'd']);
  const at = new Date(text);
  if (Number.isNaN(at.getTime())) throw new InvalidArgumentError(`expected a time like 2026-11-22T10:00:00Z, now, or +10m, got '${text}'`);
  return at;
}

/** Reports what an action did, and why it skipped the ids it skipped; exit 1 when it changed nothing asked for. */
async function report(client: pg.Client, action: string, asked: string[], changed: string[], json?: boolean): Promise<void> {
  const states = await jobStates(client, asked.filter((id) => !changed.includes(id)));
  const skipped = asked.filter((id) => !changed.includes(id)).map((id) => ({
    id, reason: states.get(id) === 'running' ? 'running now; try again when it finishes' : states.has(id) ? 'not changed' : 'no such job (finished jobs are deleted)',
  }));
  if (json) printJson({ action, changed, skipped });
  else {
    if (changed.length) process.stdout.write(`${action}: ${changed.join(', ')}\n`);
    for (const s of skipped) process.stderr.write(`stockroom: job ${s.id}: ${s.reason}\n`);
  }
  if (asked.length && changed.length === 0) process.exitCode = 1;
}

export function registerJobs(program: Command): void {
  const jobs = program
    .command('jobs')
    .description('background jobs: counts by task and state, recent failures, workers')
    // `jobs run x --json` is run's --json, not the dashboard's.
    .enablePositionalOptions()
    .option('--watch', 'redraw every second until q or Ctrl-C')
    .option('--interval <seconds>', 'with --watch, seconds between redraws', (v) => Number(v), 1)
    .option('--json', 'print the dashboard as JSON')
    .addHelpText('after', [
      '', 'Examples:', '  stockroom jobs', '  stockroom jobs --watch', '  stockroom jobs --json | jq \'.tasks[] | select(.failed > 0)\'',
      '  stockroom jobs retry --failed', '  stockroom jobs retry 42 43', '  stockroom jobs cancel 42',
      '  stockroom jobs reschedule 42 --at +10m', '  stockroom jobs run incremental_sync',
    ].join('\n'))
    .action(async (options: { watch?: boolean; interval: number; json?: boolean }) => {
      if (options.watch && options.json) {
        throw new UsageError('--watch redraws a screen for a person and --json prints one answer for a script: pick one (a script can run stockroom jobs --json in a loop)');
      }
      if (options.watch && !process.stdout.isTTY) {
        throw new UsageError('--watch redraws a terminal, and stdout is not one: run stockroom jobs (or --json) instead');
      }
      await withCliContext({ redis: false }, (context) => withClient(context, async (client) => {
        if (options.watch) return watch(client, Math.max(0.2, options.interval) * 1000);
        const dashboard = await board(client);
        if (options.json) printJson(dashboard);
        else process.stdout.write(render(dashboard));
      }));
    });

  jobs.command('retry')
    .description('run jobs again now, attempts reset (failed or permanently failed ones)')
    .argument('[ids...]', 'job ids')
    .option('--failed', 'every job that has failed and is not running')
    .option('--json', 'print the result as JSON')
    .action(async (given: string[], options: { failed?: boolean; json?: boolean }) => {
      await withCliContext({ redis: false }, (context) => withClient(context, async (client) => {
        const asked = options.failed ? await failedJobIds(client) : ids(given);
        if (!asked.length) {
          if (!options.failed) throw new UsageError('name the job ids to retry, or use --failed');
          return options.json ? printJson({ action: 'retried', changed: [], skipped: [] }) : void process.stdout.write('no failed jobs\n');
        }
        await report(client, 'retried', asked, await retryJobs(client, asked), options.json);
      }));
    });

  jobs.command('cancel')
    .description('stop jobs from running (marked permanently failed, "cancelled by an operator"; retry brings them back)')
    .argument('<ids...>', 'job ids')
    .option('--json', 'print the result as JSON')
    .action(async (given: string[], options: { json?: boolean }) => {
      await withCliContext({ redis: false }, (context) => withClient(context, async (client) => {
        await report(client, 'cancelled', ids(given), await cancelJobs(client, ids(given)), options.json);
      }));
    });

  jobs.command('reschedule')
    .description('move jobs to another time')
    .argument('<ids...>', 'job ids')
    .requiredOption('--at <time>', 'ISO time (2026-11-22T10:00:00Z), now, or +10m/+2h/+1d', (v) => parseWhen(v))
    .option('--json', 'print the result as JSON')
    .action(async (given: string[], options: { at: Date; json?: boolean }) => {
      await withCliContext({ redis: false }, (context) => withClient(context, async (client) => {
        await report(client, `rescheduled to ${options.at.toISOString()}`, ids(given), await rescheduleJobs(client, ids(given), options.at), options.json);
      }));
    });

  jobs.command('run')
    .description(`enqueue one job of a task now (${TASKS.join(', ')})`)
    .argument('<task>', 'task identifier')
    .option('--payload <json>', 'the job payload as JSON', '{}')
    .option('--json', 'print the result as JSON')
    .action(async (task: string, options: { payload: string; json?: boolean }) => {
      if (!TASKS.includes(task)) throw new UsageError(`unknown task '${task}'; the tasks are ${TASKS.join(', ')}`);
      let payload: unknown;
      try {
        payload = JSON.parse(options.payload);
      } catch {
        throw new UsageError(`--payload is not JSON: ${options.payload}`);
      }
      await withCliContext({ redis: false }, (context) => withClient(context, async (client) => {
        const id = await enqueueJob(client, task, payload);
        if (options.json) printJson({ action: 'enqueued', task, id });
        else process.stdout.write(`enqueued ${task} as job ${id}; a running worker picks it up now\n`);
      }));
    });
}
