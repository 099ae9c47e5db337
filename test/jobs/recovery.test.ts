// A worker killed with -9 in the middle of an expiry sweep. graphile-worker
// would leave the sweep's job locked for 4 hours; Stockroom's heartbeats tell
// a dead pool from a busy one, and a worker that starts (or the
// unlock_dead_workers task of one that runs) unlocks the dead pool's jobs.
// Whatever happens to the dead worker's sessions, every due reservation ends
// EXPIRED exactly once, and no job is left behind locked or failed.
//
// To catch the worker mid-sweep, a test transaction holds a stock row that
// expire_due must lock: the sweep starts, then waits. Workers here beat every
// 300 ms, so a silent pool counts as dead after 1.8 s.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import pg from 'pg';
import { removeCliDataDirs } from '../cli/run-cli.ts';
import { waitFor } from '../helpers/cache.ts';
import { useDatabase, type DatabaseContext, type TestDatabase } from '../helpers/database.ts';
import { queryOne, setupCatalog, stockOf } from '../helpers/inventory.ts';
import { invariantViolations, type Queryable } from '../helpers/invariants.ts';
import { jobsOf, startTestWorker, statusOf, waitForMetric, waitForStatus } from './worker-harness.ts';
import { killAllWorkers, spawnWorker, type WorkerProcess } from './worker-process.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);
test.after.always(async () => {
  await killAllWorkers();
  removeCliDataDirs();
});

const HEARTBEAT_MS = 300;
const DEAD_AFTER_MS = 6 * HEARTBEAT_MS;
const fastBeats = { STOCKROOM_WORKER_HEARTBEAT_MS: String(HEARTBEAT_MS) };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const RESERVATIONS = 3;

/** Stock, and reservations of two lines each, due together in 2 s. */
async function dueSoon(db: Queryable): Promise<string[]> {
  await setupCatalog(db, { A: { WH1: 20 }, B: { WH1: 20, WH2: 20 } });
  const { rows } = await db.query<{ id: string }>(`
    select r.id from generate_series(1, $1::int) i,
      inventory.reserve('crash-' || i, '[{"sku":"A","warehouse":"WH1","qty":2},{"sku":"B","qty":3}]'::jsonb, '2 seconds') r`,
  [RESERVATIONS]);
  return rows.map((r) => r.id);
}

/** A transaction holding A/WH1, which expire_due has to lock: the sweep waits behind it. */
async function holdStockRow(t: ExecutionContext, db: TestDatabase): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: db.url, application_name: 'test blocker' });
  client.on('error', () => {});
  await client.connect();
  t.teardown(() => client.end().catch(() => {}));
  await client.query('begin');
  await client.query(`select 1 from inventory.stock_levels s join inventory.products p on p.id = s.product_id where p.sku = 'A' for update of s`);
  return { release: () => client.query('rollback').then(() => {}) };
}

async function poolOfPid(db: Queryable, pid: number): Promise<string | undefined> {
  let pool: string | undefined;
  await waitFor(async () => {
    const { rows } = await db.query<{ pool_id: string }>('select pool_id from stockroom_meta.worker_heartbeats where pid = $1', [pid]);
    return Boolean(pool = rows[0]?.pool_id);
  }, 10_000, 50);
  return pool;
}

/** How many jobs a pool holds locked. */
async function lockedBy(db: Queryable, pool: string): Promise<number> {
  return (await jobsOf(db)).filter((j) => j.locked_by === pool).length;
}

/** Jobs that would need a person: locked by a pool that is gone, or out of attempts. */
async function strandedJobs(db: Queryable, deadPool: string) {
  return (await jobsOf(db)).filter((j) => j.locked_by === deadPool || j.attempts >= j.max_attempts);
}

/** Sessions of worker pools stuck waiting for a lock. */
async function waitingWorkerSessions(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`
    select count(*)::int as n from pg_stat_activity
    where datname = current_database() and application_name = 'stockroom worker' and wait_event_type = 'Lock'`);
  return rows[0]!.n;
}

/** Waits until a pool has been silent long enough to count as dead. */
async function waitUntilDead(db: Queryable, pool: string): Promise<void> {
  await waitFor(async () => (await db.query(
    `select 1 from stockroom_meta.worker_heartbeats where pool_id = $1 and last_seen > now() - make_interval(secs => $2)`,
    [pool, (DEAD_AFTER_MS + 200) / 1000])).rowCount === 0, 10_000, 50);
}

/** The pools a worker process said it unlocked as it started. */
async function unlockedAtStart(worker: WorkerProcess): Promise<unknown> {
  const line = () => worker.logs.find((l) => l.msg === 'unlocked the jobs of dead worker pools');
  await waitFor(() => line() !== undefined || worker.logs.some((l) => l.msg === 'worker running'), 5_000, 20);
  return line()?.pools;
}

/** Starts a worker process, lets its sweep start and block, then kills it with -9; returns its pool id. */
async function killWorkerMidSweep(t: ExecutionContext, db: TestDatabase): Promise<{ pool: string; worker: WorkerProcess }> {
  const worker = await spawnWorker(db.url, fastBeats);
  const pool = await poolOfPid(db, worker.pid);
  if (!pool) throw new Error('the worker process never recorded a heartbeat');
  t.true(await waitFor(async () => (await lockedBy(db, pool)) === 1 && (await waitingWorkerSessions(db)) === 1, 15_000),
    `the worker's sweep is running and blocked (locked ${await lockedBy(db, pool)}, waiting ${await waitingWorkerSessions(db)})`);
  await worker.kill9();
  t.true(worker.exited());
  return { pool, worker };
}

/** PostgreSQL ends the dead client's sessions (here by hand; their statements roll back). Only dead workers' sessions may exist. */
async function terminateWorkerSessions(t: ExecutionContext, db: Queryable): Promise<void> {
  const sessions = `from pg_stat_activity where datname = current_database() and application_name = 'stockroom worker'`;
  await db.query(`select pg_terminate_backend(pid) ${sessions}`);
  t.true(await waitFor(async () => (await queryOne<{ n: number }>(db, `select count(*)::int as n ${sessions}`)).n === 0, 10_000),
    'the dead worker\'s sessions ended');
}

async function assertExpiredOnce(t: ExecutionContext, db: Queryable, ids: string[]): Promise<void> {
  t.true(await waitForStatus(db, ids, 'EXPIRED', 15_000), 'every due reservation expired');
  const counts = await queryOne<{ lines: number; expire: number; distinct_lines: number; other: number }>(db, `
    select (select count(*)::int from inventory.reservation_lines where reservation_id = any($1::uuid[])) as lines,
           (select count(*)::int from inventory.movements where kind = 'EXPIRE') as expire,
           (select count(distinct (reservation_id, product_id, warehouse_id))::int from inventory.movements where kind = 'EXPIRE') as distinct_lines,
           (select count(*)::int from inventory.movements where kind in ('RELEASE', 'CONFIRM')) as other`, [ids]);
  t.deepEqual(counts, { lines: ids.length * 2, expire: ids.length * 2, distinct_lines: ids.length * 2, other: 0 }, 'one EXPIRE movement per line');
  const released = await queryOne<{ reasons: string[] }>(db,
    'select array_agg(distinct release_reason) as reasons from inventory.reservations where id = any($1::uuid[])', [ids]);
  t.deepEqual(released.reasons, ['TTL_EXPIRED']);
  for (const [sku, code] of [['A', 'WH1'], ['B', 'WH1'], ['B', 'WH2']] as const) t.like(await stockOf(db, sku, code), { reserved: 0 });
  t.deepEqual(await invariantViolations(db), [], 'ledger invariants hold');
}

test('kill -9 mid-sweep, then restart: the new worker unlocks the dead pool\'s sweep at once and expires everything exactly once', async (t) => {
  const { db } = t.context;
  const ids = await dueSoon(db);
  const blocker = await holdStockRow(t, db);
  const { pool } = await killWorkerMidSweep(t, db);

  await terminateWorkerSessions(t, db);
  await blocker.release();
  for (const id of ids) t.is(await statusOf(db, id), 'HELD', 'the killed worker expired nothing');
  t.is(await lockedBy(db, pool), 1, 'its sweep stays locked by the dead pool');

  await waitUntilDead(db, pool);
  const restarted = await spawnWorker(db.url, fastBeats);
  t.teardown(() => restarted.stop().then(() => {}));
  t.deepEqual(await unlockedAtStart(restarted), [pool], 'the new worker unlocked the dead pool as it started');
  await assertExpiredOnce(t, db, ids);
  t.true(await waitFor(async () => (await strandedJobs(db, pool)).length === 0, 5_000), 'no job is left locked by the dead pool, none out of attempts');
  t.deepEqual((await db.query('select pool_id from stockroom_meta.worker_heartbeats where pool_id = $1', [pool])).rows, [], 'the dead pool\'s heartbeat is forgotten');
  t.is(await restarted.metric('stockroom_dead_workers_unlocked_total'), 1);
  t.true(await waitFor(async () => (await restarted.metric('inventory_ttl_expired_total')) === ids.length, 5_000), 'the new worker expired them');
  t.true((await jobsOf(db, 'expire_sweep')).some((j) => j.key === 'expire_sweep'), 'the sweep chain goes on');
  t.is(await restarted.stop(), 0);
});

test('kill -9 mid-sweep while the dead worker\'s session still waits: whichever finishes first, nothing is released twice', async (t) => {
  const { db } = t.context;
  const ids = await dueSoon(db);
  const blocker = await holdStockRow(t, db);
  const { pool } = await killWorkerMidSweep(t, db);
  t.is(await waitingWorkerSessions(db), 1, 'the dead worker\'s statement still waits for the row');

  await waitUntilDead(db, pool);
  const restarted = await spawnWorker(db.url, fastBeats);
  t.teardown(() => restarted.stop().then(() => {}));
  t.deepEqual(await unlockedAtStart(restarted), [pool], 'the new worker unlocked the dead pool as it started');
  const newPool = await poolOfPid(db, restarted.pid);
  t.true(await waitFor(async () => (await lockedBy(db, newPool!)) > 0 && (await waitingWorkerSessions(db)) > 1, 10_000),
    'the new worker sweeps, and waits behind the dead worker\'s session');
  await blocker.release();

  await assertExpiredOnce(t, db, ids);
  t.true(await waitFor(async () => (await strandedJobs(db, pool)).length === 0, 10_000), 'no job is left stranded');
  t.is(await restarted.stop(), 0);
});

test('a running worker\'s unlock_dead_workers task unlocks the sweep of a pool that died since it started', async (t) => {
  const { db } = t.context;
  const ids = await dueSoon(db);
  const blocker = await holdStockRow(t, db);
  const { pool } = await killWorkerMidSweep(t, db);
  await terminateWorkerSessions(t, db);
  await blocker.release();

  const survivor = await startTestWorker(db.url, { heartbeatMs: HEARTBEAT_MS }); // too early to call the victim dead
  t.teardown(() => survivor.stop());
  t.is(await survivor.metric('stockroom_dead_workers_unlocked_total'), 0);
  // The survivor's own sweep chain (its start re-adds the job key the dead sweep held) expires everything meanwhile.
  await assertExpiredOnce(t, db, ids);
  t.is(await lockedBy(db, pool), 1, 'the dead pool still holds its (superseded) sweep');

  await waitUntilDead(db, pool);
  await db.query(`select graphile_worker.add_job('unlock_dead_workers')`);
  // At least the victim's pool (once in a full run another pool of this test's database was found dead beside it).
  t.true(await waitForMetric(survivor, 'stockroom_dead_workers_unlocked_total', 1) >= 1);
  t.truthy(survivor.logs.find((l) => l.task === 'unlock_dead_workers' && typeof l.msg === 'string'
    && l.msg.startsWith('unlocked the jobs of dead worker pools') && l.msg.includes(pool)));
  t.true(await waitFor(async () => (await strandedJobs(db, pool)).length === 0, 5_000), 'the superseded sweep is completed, not left failed');
  t.deepEqual(await invariantViolations(db), []);
});

test('a live pool\'s long-running sweep is not taken away by a worker that starts', async (t) => {
  const { db } = t.context;
  const busy = await startTestWorker(db.url, { heartbeatMs: HEARTBEAT_MS });
  t.teardown(() => busy.stop());
  const ids = await dueSoon(db);
  const blocker = await holdStockRow(t, db);
  let sweep: { id: string; locked_by: string | null } | undefined;
  t.true(await waitFor(async () => {
    sweep = (await jobsOf(db, 'expire_sweep')).find((j) => j.locked_by);
    return sweep !== undefined && (await waitingWorkerSessions(db)) === 1;
  }, 15_000), 'the busy worker sweeps, waiting for the row');
  const pool = sweep!.locked_by!;
  await sleep(DEAD_AFTER_MS + 500); // locked longer than a dead pool's silence, but the pool still beats: busy, not dead

  const other = await startTestWorker(db.url, { heartbeatMs: HEARTBEAT_MS }); // looks for dead pools as it starts
  t.teardown(() => other.stop());
  t.truthy(other.logs.find((l) => l.msg === 'worker running'));
  t.falsy(other.logs.find((l) => /unlocked the jobs of dead worker pools/.test(l.msg)), 'nothing was unlocked');
  t.is(await other.metric('stockroom_dead_workers_unlocked_total'), 0);
  t.is((await jobsOf(db)).find((j) => j.id === sweep!.id)?.locked_by, pool, 'the busy pool keeps its sweep');

  await blocker.release();
  await assertExpiredOnce(t, db, ids);
});
