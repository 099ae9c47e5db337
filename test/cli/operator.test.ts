// The operator commands as an operator runs them: `stockroom` subprocesses
// with --json, their output parsed and held against PostgreSQL and Redis.
// jobs (dashboard, --watch in a pseudo-terminal, retry, cancel, reschedule,
// run), slot (exit status for monitoring), cache rebuild|verify [--fix],
// stock <sku>; and what each says, in one line, when it cannot do its job.
import { spawn } from 'node:child_process';
import test, { type ExecutionContext } from 'ava';
import { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication';
import pg from 'pg';
import { freePort } from '../../src/harness/processes.ts';
import { cacheMismatches, testRedis, uniqueNames, waitFor, waitForCache } from '../helpers/cache.ts';
import { openTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { testServers } from '../helpers/environment.ts';
import { assertInvariants } from '../helpers/invariants.ts';
import { queryOne, setupCatalog } from '../helpers/inventory.ts';
import { startTestListener } from '../helpers/listener.ts';
import { startTestWorker } from '../jobs/worker-harness.ts';
import { CLI, cliEnv, isOneLineError, removeCliDataDirs, runCli, startOwnPostgres, type CliResult } from './run-cli.ts';

test.after.always(removeCliDataDirs);

const CATALOG = { A: { WH1: 10, WH2: 5 }, B: { WH1: 3 } };

interface Setup { db: TestDatabase; env: NodeJS.ProcessEnv; names: ReturnType<typeof uniqueNames> }

async function setUp(t: ExecutionContext, label: string, stock: Record<string, Record<string, number>> = CATALOG): Promise<Setup> {
  const db = await openTestDatabase(label);
  t.teardown(() => db.close());
  await setupCatalog(db, stock);
  const names = uniqueNames(label);
  const env = cliEnv({
    DATABASE_URL: db.url, REDIS_URL: testServers().redisUrl, STOCKROOM_CACHE_PREFIX: names.prefix,
    STOCKROOM_SLOT: names.slot, STOCKROOM_PUBLICATION: names.publication, STOCKROOM_STREAM: names.stream,
  });
  return { db, env, names };
}

/** Runs a command expected to print JSON; fails the test with its stderr when it does not. */
async function runJson<T = any>(t: ExecutionContext, args: string[], env: NodeJS.ProcessEnv, code = 0): Promise<{ result: CliResult; json: T }> {
  const result = await runCli(args, env);
  t.is(result.code, code, `stockroom ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  let json: T;
  try {
    json = JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`stockroom ${args.join(' ')} printed no JSON: ${JSON.stringify(result.stdout.slice(0, 200))}`);
  }
  return { result, json };
}

interface JobRow { id: string; task: string; run_at: Date; attempts: number; max_attempts: number; last_error: string | null; locked_at: Date | null }

/** A job as graphile-worker's public view shows it. */
async function jobRow(db: TestDatabase, id: string): Promise<JobRow | undefined> {
  const { rows } = await db.query<JobRow>(`
    select id::text, task_identifier as task, run_at, attempts, max_attempts, last_error, locked_at
    from graphile_worker.jobs where id = $1`, [id]);
  return rows[0];
}

/**
 * Two verify_counters jobs scheduled an hour away, and an incremental_sync job
 * that has failed twice (its next try an hour away), made through
 * graphile-worker's public functions.
 */
async function someJobs(db: TestDatabase): Promise<{ scheduled: string[]; failed: string }> {
  const scheduled: string[] = [];
  for (let i = 0; i < 2; i++) {
    scheduled.push((await queryOne<{ id: string }>(db,
      `select id::text from graphile_worker.add_job('verify_counters', run_at => now() + interval '1 hour')`)).id);
  }
  const failed = (await queryOne<{ id: string }>(db, `select id::text from graphile_worker.add_job('incremental_sync', '{}'::json)`)).id;
  await db.query(`select graphile_worker.permanently_fail_jobs($1::bigint[], 'Error: boom')`, [[failed]]);
  await db.query(`select graphile_worker.reschedule_jobs($1::bigint[], run_at => now() + interval '1 hour', attempts => 2)`, [[failed]]);
  return { scheduled, failed };
}

const near = (t: ExecutionContext, at: Date, expected: number, slackMs: number, what: string) =>
  t.true(Math.abs(at.getTime() - expected) <= slackMs, `${what}: ${at.toISOString()} vs ${new Date(expected).toISOString()}`);

// ── jobs ────────────────────────────────────────────────────────────────────

test('jobs --json: every task with its counts by state, the failures, the live workers', async (t) => {
  const { db, env } = await setUp(t, 'ops_jobs');
  const { failed } = await someJobs(db);
  const worker = await startTestWorker(db.url);
  t.teardown(() => worker.stop());
  const pool = (await queryOne<{ pool_id: string }>(db, 'select pool_id from stockroom_meta.worker_heartbeats')).pool_id;

  const { json } = await runJson(t, ['jobs', '--json'], env);
  t.deepEqual(json.tasks.map((x: { task: string }) => x.task), ['end_preorders', 'expire_sweep', 'incremental_sync', 'unlock_dead_workers', 'verify_counters']);
  t.deepEqual(json.tasks.find((x: { task: string }) => x.task === 'verify_counters'), {
    task: 'verify_counters', queue: '', queued: 0, scheduled: 2, running: 0, failed: 0, permanentlyFailed: 0, oldestWaitingSeconds: null,
  });
  t.like(json.tasks.find((x: { task: string }) => x.task === 'incremental_sync'), { queued: 0, scheduled: 0, running: 0, failed: 1, permanentlyFailed: 0 });
  const sweep = json.tasks.find((x: { task: string }) => x.task === 'expire_sweep');
  t.is(sweep.queued + sweep.scheduled + sweep.running, 1, 'the one sweep of the expiry chain, pending or running');
  t.is(json.failures.length, 1);
  t.like(json.failures[0], { id: failed, task: 'incremental_sync', attempts: 2, maxAttempts: 25, lastError: 'Error: boom' });
  t.deepEqual(json.workers.map((w: { poolId: string; pid: number }) => [w.poolId, w.pid]), [[pool, process.pid]]);
  t.true(json.workers[0].lastSeenSecondsAgo < 10);
  t.false(Number.isNaN(Date.parse(json.at)));

  const text = await runCli(['jobs'], env);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /task\s+queued\s+later\s+running\s+failed\s+dead\s+oldest/);
  t.regex(text.stdout, new RegExp(`${failed}\\s+incremental_sync\\s+2/25`));
  t.regex(text.stdout, new RegExp(`workers:\\n  ${pool} \\(`));
  // The recurring tasks: schedule, next run, last run.
  t.regex(text.stdout, /recurring\s+schedule \(UTC\)\s+next run\s+last run/);
  t.regex(text.stdout, /verify_counters\s+30 3 \* \* \*\s+in \d+[hm]\d+[ms]s?\s+never/);
  t.regex(text.stdout, /incremental_sync\s+\*\/5 \* \* \* \*\s+(in \d+m?\d*s|due now)/);
  t.true(text.stdout.split('\n').every((line) => line.length <= 80), `fits 80 columns:\n${text.stdout}`);
  t.deepEqual(json.recurring.map((r: { task: string }) => r.task).sort(), ['end_preorders', 'expire_sweep', 'incremental_sync', 'unlock_dead_workers', 'verify_counters']);
  // The worker records each job's end: the sweep it runs at start is there, with its outcome.
  t.true(await waitFor(async () => {
    const again = await runJson(t, ['jobs', '--json'], env);
    return again.json.recurring.find((r: { task: string }) => r.task === 'expire_sweep')?.lastRun?.succeeded === true;
  }, 15_000, 250), 'the last sweep is recorded as a success');

  await worker.stop();
  const after = await runJson(t, ['jobs', '--json'], env);
  t.deepEqual(after.json.workers, [], 'a stopped worker is gone from the list');
});

test('jobs retry, retry --failed, cancel, reschedule --at +10m and run change the jobs as asked', async (t) => {
  const { db, env } = await setUp(t, 'ops_actions');
  const { scheduled: [j1, j2], failed } = await someJobs(db);

  const reschedule = await runCli(['jobs', 'reschedule', j1!, '--at', '+10m'], env);
  t.is(reschedule.code, 0, reschedule.stderr);
  t.regex(reschedule.stdout, new RegExp(`^rescheduled to \\S+Z: ${j1}\\n$`));
  near(t, (await jobRow(db, j1!))!.run_at, Date.now() + 10 * 60_000, 60_000, 'run_at moved 10 minutes ahead');

  const cancel = await runCli(['jobs', 'cancel', j2!], env);
  t.is(cancel.code, 0, cancel.stderr);
  t.is(cancel.stdout, `cancelled: ${j2}\n`);
  t.like(await jobRow(db, j2!), { attempts: 25, max_attempts: 25, last_error: 'cancelled by an operator (stockroom jobs cancel)' });
  const dashboard = await runJson(t, ['jobs', '--json'], env);
  t.like(dashboard.json.tasks.find((x: { task: string }) => x.task === 'verify_counters'), { scheduled: 1, permanentlyFailed: 1 });

  const retryFailed = await runCli(['jobs', 'retry', '--failed'], env);
  t.is(retryFailed.code, 0, retryFailed.stderr);
  const retried = /^retried: (.*)\n$/.exec(retryFailed.stdout)?.[1]?.split(', ');
  t.deepEqual(retried?.sort(), [j2, failed].sort(), 'every failed job not running, cancelled ones too');
  for (const id of [j2!, failed]) {
    const row = (await jobRow(db, id))!;
    t.is(row.attempts, 0);
    near(t, row.run_at, Date.now(), 60_000, 'due now');
  }

  const retry = await runCli(['jobs', 'retry', j1!], env);
  t.is(retry.code, 0, retry.stderr);
  near(t, (await jobRow(db, j1!))!.run_at, Date.now(), 60_000, 'a retried job is due now');

  const run = await runCli(['jobs', 'run', 'incremental_sync'], env);
  t.is(run.code, 0, run.stderr);
  const id = /^enqueued incremental_sync as job (\d+);/.exec(run.stdout)?.[1];
  t.like(await jobRow(db, id!), { task: 'incremental_sync', attempts: 0, last_error: null });
  await assertInvariants(t, db);
});

// `--json` is declared on `jobs` and on each of its subcommands: after a subcommand it is the
// subcommand's (positional options), so each prints its own JSON.
test('jobs retry <id> --json prints what it changed', async (t) => {
  const { db, env } = await setUp(t, 'ops_retry_json');
  const { failed } = await someJobs(db);
  const { json } = await runJson(t, ['jobs', 'retry', failed, '--json'], env);
  t.deepEqual(json, { action: 'retried', changed: [failed], skipped: [] });
});

test('jobs retry --failed --json prints what it changed', async (t) => {
  const { db, env } = await setUp(t, 'ops_retryf_json');
  const { failed } = await someJobs(db);
  const { json } = await runJson(t, ['jobs', 'retry', '--failed', '--json'], env);
  t.deepEqual(json, { action: 'retried', changed: [failed], skipped: [] });
});

test('jobs cancel <id> --json prints what it changed', async (t) => {
  const { db, env } = await setUp(t, 'ops_cancel_json');
  const { scheduled: [j1] } = await someJobs(db);
  const { json } = await runJson(t, ['jobs', 'cancel', j1!, '--json'], env);
  t.deepEqual(json, { action: 'cancelled', changed: [j1], skipped: [] });
});

test('jobs reschedule <id> --at +10m --json prints what it changed', async (t) => {
  const { db, env } = await setUp(t, 'ops_resched_json');
  const { scheduled: [j1] } = await someJobs(db);
  const { json } = await runJson(t, ['jobs', 'reschedule', j1!, '--at', '+10m', '--json'], env);
  t.like(json, { changed: [j1], skipped: [] });
  t.regex(json.action, /^rescheduled to \S+Z$/);
  near(t, new Date(json.action.slice('rescheduled to '.length)), (await jobRow(db, j1!))!.run_at.getTime(), 0, 'the time it reports');
});

test('jobs run incremental_sync --json prints the job it enqueued', async (t) => {
  const { db, env } = await setUp(t, 'ops_run_json');
  const { json } = await runJson(t, ['jobs', 'run', 'incremental_sync', '--json'], env);
  t.like(json, { action: 'enqueued', task: 'incremental_sync' });
  t.like(await jobRow(db, json.id), { task: 'incremental_sync' });
});

test('jobs: an unknown or running job is one line saying why (exit 1); a bad id or task is a usage error (exit 2)', async (t) => {
  const { db, env } = await setUp(t, 'ops_job_errors');
  const { scheduled: [j1] } = await someJobs(db);
  for (const args of [['retry', '999999'], ['reschedule', '999999', '--at', 'now']]) {
    const result = await runCli(['jobs', ...args], env);
    t.is(result.code, 1, `jobs ${args.join(' ')}`);
    t.true(isOneLineError(result.stderr), result.stderr);
    t.is(result.stderr, 'stockroom: job 999999: no such job (finished jobs are deleted)\n');
  }
  // A job running right now: a worker's expiry sweep, waiting for a stock row a test transaction holds.
  const worker = await startTestWorker(db.url);
  t.teardown(() => worker.stop());
  const blocker = new pg.Client({ connectionString: db.url });
  await blocker.connect();
  t.teardown(() => blocker.end());
  await db.query(`select inventory.reserve('due', '[{"sku":"A","warehouse":"WH1","qty":1}]', '1 second')`);
  await blocker.query('begin');
  await blocker.query('select 1 from inventory.stock_levels for update');
  let running: string | undefined;
  // A sweep that found nothing due may be finishing right now: wait for the one stuck on the row.
  t.true(await waitFor(async () => (await db.query(`
    select 1 from pg_stat_activity where datname = current_database() and application_name = 'stockroom worker' and wait_event_type = 'Lock'`)).rowCount === 1
    && Boolean(running = (await db.query<{ id: string }>(
      `select id::text from graphile_worker.jobs where task_identifier = 'expire_sweep' and locked_at is not null`)).rows[0]?.id), 10_000), 'the sweep runs, waiting for the row');
  const busy = await runCli(['jobs', 'cancel', running!], env);
  t.is(busy.code, 1);
  t.is(busy.stderr, `stockroom: job ${running}: running now; try again when it finishes\n`);
  // (Its attempts may change meanwhile: the crontab re-adding the sweep gives the running job's key to a new one.)
  const after = await jobRow(db, running!);
  t.true(after !== undefined && after.last_error === null && after.locked_at !== null, 'left alone: still running, not cancelled');
  await blocker.query('rollback');
  t.is((await jobRow(db, j1!))?.attempts, 0);

  const usage: Array<[string[], RegExp]> = [
    [['retry', 'abc'], /^stockroom: job ids are whole numbers, got 'abc'\n$/],
    [['retry'], /^stockroom: name the job ids to retry, or use --failed\n$/],
    [['run', 'nosuch'], /^stockroom: unknown task 'nosuch'; the tasks are end_preorders, expire_sweep, incremental_sync, unlock_dead_workers, verify_counters\n$/],
  ];
  for (const [args, message] of usage) {
    const result = await runCli(['jobs', ...args], env);
    t.is(result.code, 2, `jobs ${args.join(' ')}: ${result.stderr}`);
    t.regex(result.stderr, message);
  }
  const { rows } = await db.query(`select id from graphile_worker.jobs where task_identifier = 'nosuch'`);
  t.deepEqual(rows, [], 'nothing was enqueued by the refused commands');
});

// A bad value for an option is reported by commander, in the same one line and exit 2 as the
// commands' own usage errors.
test('jobs reschedule --at with a time it cannot read is a usage error: one line, exit 2', async (t) => {
  const { db, env } = await setUp(t, 'ops_bad_at');
  const { scheduled: [j1] } = await someJobs(db);
  const result = await runCli(['jobs', 'reschedule', j1!, '--at', 'tomorrowish'], env);
  t.regex(result.stderr, /expected a time like 2026-11-22T10:00:00Z, now, or \+10m, got 'tomorrowish'/);
  t.true(isOneLineError(result.stderr), result.stderr);
  t.is(result.code, 2);
});

test('jobs --watch draws the dashboard in a terminal; q and Ctrl-C quit at once, restoring the cursor', async (t) => {
  const { db, env } = await setUp(t, 'ops_watch');
  await someJobs(db);
  for (const key of ['q', '\x03']) {
    const command = `'${process.execPath}' '${CLI}' jobs --watch --interval 0.5`;
    const child = spawn('script', ['-qefc', command, '/dev/null'], { env: { ...env, TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'] });
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let screen = '';
    child.stdout.on('data', (d) => (screen += d));
    child.stderr.on('data', (d) => (screen += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const drawn = await waitFor(() => (screen.match(/\(q or Ctrl-C to quit; every 0\.5 s\)/g) ?? []).length >= 2, 60_000, 50);
    t.true(drawn, `the dashboard is drawn and redrawn: ${JSON.stringify(screen.slice(-500))}`);
    t.true(screen.includes('\x1b[?25l'), 'the cursor is hidden while drawing');
    t.true(screen.includes('\x1b[H\x1b[2J'), 'each frame clears the screen');
    t.regex(screen, /jobs at \d{4}-\d\d-\d\dT/);
    t.regex(screen, /verify_counters\s+0\s+2\s+0\s+0\s+0/);
    t.regex(screen, /incremental_sync\s+0\s+0\s+0\s+1\s+0/);
    t.regex(screen, /workers: none running \(stockroom start --worker\)/);

    const asked = Date.now();
    child.stdin.write(key);
    const code = await Promise.race([exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 5_000))]);
    t.is(code, 0, `${JSON.stringify(key)} quits with status 0`);
    t.true(Date.now() - asked < 3_000, `${JSON.stringify(key)} quit within ${Date.now() - asked} ms`);
    t.true(screen.trimEnd().endsWith('\x1b[?25h'), `the cursor is shown again at the end: ${JSON.stringify(screen.slice(-80))}`);
    t.notRegex(screen, /\n\s+at .*\.ts:\d+/, 'no stack trace');
  }
});

test('jobs --watch refuses --json, and a stdout that is no terminal: one line, exit 2', async (t) => {
  const { env } = await setUp(t, 'ops_watch_refused');
  for (const args of [['jobs', '--watch', '--json'], ['jobs', '--watch']]) {
    const result = await runCli(args, env, 20_000);
    t.is(result.code, 2, args.join(' '));
    t.true(isOneLineError(result.stderr), result.stderr);
    t.is(result.stdout, '');
  }
});

// ── slot ────────────────────────────────────────────────────────────────────

test('slot: ok while the listener streams (and who it is), lagging (exit 1) past --max-lag-bytes, idle (exit 4) when nothing consumes it, missing (exit 2) with a hint', async (t) => {
  const { db, env, names } = await setUp(t, 'ops_slot');
  const listener = await startTestListener(db.url, { names });
  t.teardown(() => listener.stop());
  const redis = testRedis();
  t.teardown(() => redis.disconnect());
  await db.query(`select inventory.adjust('A', 'WH1', 1, 'wal')`);
  t.deepEqual(await waitForCache(db, redis, names.prefix), [], 'the consumer applied it');

  // A generous limit: the WAL of the whole server (other tests' too) passes through every slot.
  const ok = await runJson(t, ['slot', '--json', '--max-lag-bytes', String(2 ** 40)], env, 0);
  t.like(ok.json, { slot: names.slot, status: 'ok', active: true, walStatus: 'reserved' });
  t.is(typeof ok.json.activePid, 'number');
  t.regex(ok.json.confirmedFlushLsn, /^[0-9A-F]+\/[0-9A-F]+$/);
  t.true(ok.json.lagBytes >= 0);
  t.true(ok.json.retainedWalBytes >= 0);
  t.regex(ok.json.redisAppliedLsn, /^[0-9A-F]+\/[0-9A-F]+$/, 'the position Redis is applied to');
  t.is(ok.json.lastSlotLoss, null, 'the slot was never lost (backfill.test.ts shows a lost one)');
  const { rows: [slotRow] } = await db.query<{ active_pid: number }>('select active_pid from pg_replication_slots where slot_name = $1', [names.slot]);
  t.is(ok.json.activePid, slotRow?.active_pid);

  t.like(ok.json.consumer, { pid: slotRow?.active_pid, application: 'stockroom listener' }, 'who consumes it');

  // A consumer that streams but acknowledges nothing: behind by more than --max-lag-bytes.
  const slow = `${names.slot}_slow`;
  await db.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slow]);
  const stuck = new LogicalReplicationService({ connectionString: db.url, application_name: 'stuck consumer' }, { acknowledge: { auto: false, timeoutSeconds: 0 } });
  stuck.on('error', () => {});
  void stuck.subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: [names.publication] }), slow).catch(() => {});
  t.teardown(() => stuck.destroy().then(() => {}));
  t.true(await waitFor(async () => (await db.query(`select 1 from pg_replication_slots where slot_name = $1 and active`, [slow])).rowCount === 1, 10_000));
  await db.query(`select inventory.adjust('A', 'WH1', 1, 'wal to lag behind')`);
  const lagging = await runCli(['slot', '--max-lag-bytes', '0'], { ...env, STOCKROOM_SLOT: slow });
  t.is(lagging.code, 1, lagging.stderr);
  t.true(isOneLineError(lagging.stderr), lagging.stderr);
  t.regex(lagging.stderr, /^stockroom: the consumer is \d+(\.\d)? [kMG]?B behind \(over 0 B\): is the listener running\? see stockroom start --listener and its logs\n$/);
  t.regex(lagging.stdout, /^status\s+LAGGING$/m);
  t.regex(lagging.stdout, /^consumer\s+pid \d+, stuck consumer/m);

  // A slot nobody consumes: never ok, however small its lag.
  const idle = `${names.slot}_idle`;
  await db.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [idle]);
  await db.query(`select inventory.adjust('A', 'WH1', 1, 'more wal')`);
  const idleEnv = { ...env, STOCKROOM_SLOT: idle };
  for (const maxLag of ['0', String(2 ** 40)]) {
    const unconsumed = await runJson(t, ['slot', '--json', '--max-lag-bytes', maxLag], idleEnv, 4);
    t.like(unconsumed.json, { slot: idle, status: 'idle', active: false, activePid: null, consumer: null });
  }
  const idleText = await runCli(['slot'], idleEnv);
  t.is(idleText.code, 4);
  t.true(isOneLineError(idleText.stderr), idleText.stderr);
  t.regex(idleText.stderr, new RegExp(`^stockroom: nothing consumes replication slot ${idle}: .* start the listener \\(stockroom start --listener\\)\n$`));
  t.regex(idleText.stdout, /^status\s+IDLE: no consumer$/m);
  t.regex(idleText.stdout, /^consumer\s+none: nothing streams from this slot$/m);
  t.true(idleText.stdout.split('\n').every((line) => line.length <= 80), `fits 80 columns:\n${idleText.stdout}`);

  const missingEnv = { ...env, STOCKROOM_SLOT: `${names.slot}_none` };
  const missing = await runJson(t, ['slot', '--json'], missingEnv, 2);
  t.like(missing.json, { slot: `${names.slot}_none`, status: 'missing', active: false, lagBytes: null, confirmedFlushLsn: null });
  const missingText = await runCli(['slot'], missingEnv);
  t.is(missingText.code, 2);
  t.true(isOneLineError(missingText.stderr), missingText.stderr);
  t.is(missingText.stderr, `stockroom: no replication slot ${names.slot}_none: start the listener (stockroom start --listener), which creates it and builds the cache\n`);
});

test('an unreachable database is one line saying what to do, for every operator command', async (t) => {
  const port = await freePort();
  const env = cliEnv({ DATABASE_URL: `postgres://ops:secret@127.0.0.1:${port}/stock`, REDIS_URL: testServers().redisUrl });
  for (const args of [['jobs', '--json'], ['slot', '--json'], ['cache', 'verify', '--json'], ['stock', 'A', '--json']]) {
    const result = await runCli(args, env);
    t.is(result.code, 1, args.join(' '));
    t.true(isOneLineError(result.stderr), `${args.join(' ')}: ${result.stderr}`);
    t.is(result.stderr, `stockroom: cannot connect to PostgreSQL at postgres://ops:***@127.0.0.1:${port}/stock (ECONNREFUSED): start it, or fix DATABASE_URL\n`, args.join(' '));
    t.is(result.stdout, '', 'nothing half-printed on stdout');
  }
});

test('slot on a server without logical WAL is one line saying what to do', async (t) => {
  const server = await startOwnPostgres(t, 'replica', { wal_level: 'replica' });
  const result = await runCli(['slot', '--json'], cliEnv({ DATABASE_URL: server.url(), REDIS_URL: testServers().redisUrl }));
  t.is(result.code, 1);
  t.true(isOneLineError(result.stderr), result.stderr);
  t.regex(result.stderr, /runs with wal_level=replica; Stockroom needs wal_level=logical: run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL\n$/);
});

test('slot exits 3 with a one-line hint when PostgreSQL invalidated the slot (WAL removed)', async (t) => {
  const server = await startOwnPostgres(t, 'lost', { wal_level: 'logical', max_slot_wal_keep_size: '1MB', wal_keep_size: '0', min_wal_size: '32MB' });
  const url = server.url();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.teardown(() => client.end());
  await client.query(`select pg_create_logical_replication_slot('stockroom_cache', 'pgoutput')`);
  await client.query('create table filler (x text)');
  let status = '';
  for (let round = 0; round < 10 && status !== 'lost'; round++) {
    await client.query(`insert into filler select repeat('x', 1000) from generate_series(1, 2000)`);
    await client.query('select pg_switch_wal()');
    await client.query('checkpoint');
    status = (await client.query<{ wal_status: string }>(`select wal_status from pg_replication_slots where slot_name = 'stockroom_cache'`)).rows[0]!.wal_status;
  }
  t.is(status, 'lost', 'PostgreSQL invalidated the slot');

  const env = cliEnv({ DATABASE_URL: url, REDIS_URL: testServers().redisUrl, STOCKROOM_CACHE_PREFIX: uniqueNames('lost').prefix });
  const lost = await runJson(t, ['slot', '--json'], env, 3);
  t.like(lost.json, { slot: 'stockroom_cache', status: 'lost', walStatus: 'lost', active: false });
  const text = await runCli(['slot'], env);
  t.is(text.code, 3);
  t.true(isOneLineError(text.stderr), text.stderr);
  t.is(text.stderr, 'stockroom: replication slot stockroom_cache was invalidated by PostgreSQL: restart the listener, which recreates it, rebuilds the cache and publishes the events of the gap from the ledger\n');
});

// ── cache and stock ─────────────────────────────────────────────────────────

test('cache rebuild --json writes every key; cache verify --json finds tampering (exit 1) and --fix repairs it', async (t) => {
  const { db, env, names } = await setUp(t, 'ops_cache');
  const redis = testRedis();
  t.teardown(() => redis.disconnect());

  const rebuilt = await runJson(t, ['cache', 'rebuild', '--json'], env);
  t.like(rebuilt.json, { rows: 3, skus: 2, stale: 0 });
  t.is(typeof rebuilt.json.seconds, 'number');
  t.deepEqual(await cacheMismatches(db, redis, names.prefix), [], 'Redis equals Postgres');

  const clean = await runJson(t, ['cache', 'verify', '--json'], env, 0);
  t.like(clean.json, { skus: 2, rows: 3, mismatches: [], driftedSkus: 0, fixedSkus: 0, remaining: 0 });

  await redis.set(`${names.prefix}stock:A:warehouse:WH1`, '999');
  await redis.del(`${names.prefix}stock:B:status`);
  const drifted = await runJson(t, ['cache', 'verify', '--json'], env, 1);
  t.like(drifted.json, { skus: 2, driftedSkus: 2, fixedSkus: 0, remaining: 2 });
  t.deepEqual(drifted.json.mismatches, [
    { sku: 'A', key: `${names.prefix}stock:A:warehouse:WH1`, postgres: '10', redis: '999' },
    { sku: 'B', key: `${names.prefix}stock:B:status`, postgres: 'in_stock', redis: null },
  ]);
  const one = await runJson(t, ['cache', 'verify', '--sku', 'B', '--json'], env, 1);
  t.like(one.json, { skus: 1, rows: 1, driftedSkus: 1 });
  const text = await runCli(['cache', 'verify'], env);
  t.is(text.code, 1);
  t.regex(text.stdout, /stock:A:warehouse:WH1\s+10\s+999/);
  t.regex(text.stdout, /stock:B:status\s+in_stock\s+\(missing\)/);

  const fixed = await runJson(t, ['cache', 'verify', '--fix', '--json'], env, 0);
  t.like(fixed.json, { driftedSkus: 2, fixedSkus: 2, remaining: 0 });
  t.is(await redis.get(`${names.prefix}stock:A:warehouse:WH1`), '10');
  t.deepEqual(await cacheMismatches(db, redis, names.prefix), []);
  const after = await runJson(t, ['cache', 'verify', '--json'], env, 0);
  t.like(after.json, { driftedSkus: 0 });
});

test('stock <sku> --json shows PostgreSQL and Redis side by side; an unknown sku is one line (exit 1)', async (t) => {
  const { db, env, names } = await setUp(t, 'ops_stock');
  const redis = testRedis();
  t.teardown(() => redis.disconnect());
  await db.query(`select inventory.set_policy('A', 'WH2', 1, 4)`);
  await runJson(t, ['cache', 'rebuild', '--json'], env);

  const inStep = await runJson(t, ['stock', 'A', '--json'], env);
  const versions = Object.fromEntries((await db.query<{ warehouse: string; version: string }>(
    `select warehouse, version::text from inventory.stock(array['A'])`)).rows.map((r) => [r.warehouse, Number(r.version)]));
  t.like(inStep.json, {
    sku: 'A',
    warehouses: [
      { warehouse: 'WH1', postgres: { onHand: 10, reserved: 0, safetyStock: 0, available: 10, version: versions.WH1, lowStockThreshold: 0 },
        redis: { available: 10, version: versions.WH1 }, inStep: true },
      { warehouse: 'WH2', postgres: { onHand: 5, reserved: 0, safetyStock: 1, available: 4, version: versions.WH2, lowStockThreshold: 4 },
        redis: { available: 4, version: versions.WH2 }, inStep: true },
    ],
    totals: { postgres: { onHand: 15, available: 14 }, redis: { total: 15, available: 14, status: 'in_stock', lowStock: '0' } },
  });

  // A change the cache has not seen (no listener runs here).
  await db.query(`select inventory.reserve('o', '[{"sku":"A","warehouse":"WH1","qty":3}]')`);
  const behind = await runJson(t, ['stock', 'A', '--json'], env);
  t.like(behind.json.warehouses[0], { warehouse: 'WH1', postgres: { reserved: 3, available: 7, version: versions.WH1! + 1 }, redis: { available: 10, version: versions.WH1 }, inStep: false });
  t.like(behind.json.warehouses[1], { inStep: true });
  const table = await runCli(['stock', 'A'], env);
  t.regex(table.stdout, /WH1.*DIFFERS/);

  await redis.del(`${names.prefix}stock:A:warehouse:WH2`);
  const missing = await runJson(t, ['stock', 'A', '--json'], env);
  t.like(missing.json.warehouses[1], { warehouse: 'WH2', redis: { available: null }, inStep: false });

  // Units in a quantity state and a backorder policy: their columns, in JSON and on screen.
  await db.query(`select inventory.move_stock_state('A', 'WH2', 1, 'dropped', to_state => 'DAMAGED')`);
  await db.query(`select inventory.set_backorder_policy('A', 'WH2', 'BACKORDER', 3)`);
  const withStates = await runJson(t, ['stock', 'A', '--json'], env);
  t.like(withStates.json.warehouses[1], { postgres: { onHand: 5, unavailable: 1, available: 3, backorderPolicy: 'BACKORDER', backordered: 0, backorderLimit: 3 } });
  const screen = await runCli(['stock', 'A'], env);
  t.regex(screen.stdout, /in states/);
  t.regex(screen.stdout, /WH2 .*\b1\b.*backorder, 0\/3 waiting/);

  const unknown = await runCli(['stock', 'NOPE', '--json'], env);
  t.is(unknown.code, 1);
  t.true(isOneLineError(unknown.stderr), unknown.stderr);
  t.is(unknown.stderr, `stockroom: unknown sku 'NOPE': see inventory.products, or create it with inventory.upsert_product\n`);
  t.is(unknown.stdout, '');

  // A kit: its kit rows per warehouse, and the kit rule's totals (not the sums of its rows).
  await db.query(`select inventory.upsert_product('KIT', 'Kit')`);
  await db.query(`select inventory.set_kit('KIT', '[{"sku": "A", "qty": 2}]')`);
  await runJson(t, ['cache', 'rebuild', '--json'], env);
  const kit = await runJson(t, ['stock', 'KIT', '--json'], env);
  const { rows: [kitTotal] } = await db.query<{ on_hand: number; available: number }>(`select on_hand, available from inventory.kit_stock(array['KIT']) where warehouse is null`);
  t.like(kit.json, { totals: { postgres: { onHand: kitTotal!.on_hand, available: kitTotal!.available }, redis: { total: kitTotal!.on_hand, available: kitTotal!.available } } });
  t.true(kit.json.warehouses.length === 2 && kit.json.warehouses.every((w: { inStep: boolean }) => w.inStep), JSON.stringify(kit.json.warehouses));

  // Sales channels: what each can sell, PostgreSQL and the cache's channels hash side by side.
  await db.query(`select inventory.upsert_channel('web'), inventory.upsert_channel('stores')`);
  await db.query(`select inventory.set_channel_warehouses('web', '[{"warehouse": "WH2"}]')`);
  await runJson(t, ['cache', 'rebuild', '--json'], env);
  const channels = await runJson(t, ['stock', 'A', '--json'], env);
  t.deepEqual(channels.json.channels, [{ channel: 'stores', postgres: 0, redis: 0, inStep: true }, { channel: 'web', postgres: 3, redis: 3, inStep: true }]);
  await db.query(`select inventory.reserve('o2', '[{"sku":"A","warehouse":"WH2","qty":1}]')`);
  const channelScreen = await runCli(['stock', 'A'], env);
  t.regex(channelScreen.stdout, /web\s+2\s+3\s+DIFFERS/);
  await assertInvariants(t, db);
});
