// incremental_sync and verify_counters: the cache's and the counters' second
// line of defence. Drift injected into Redis behind the listener's back (no
// listener runs here) is found among the rows changed since the watermark,
// repaired and counted; rows older than the watermark are not read again;
// rows changed within the grace period are left to the stream. verify_counters
// reports reserved drift, and repairs it only when configured to.
import anyTest, { type TestFn } from 'ava';
import { rebuildCache } from '../../src/cache/rebuild.ts';
import { cacheKeys } from '../../src/cache/keys.ts';
import { CacheWriter } from '../../src/cache/writer.ts';
import { DEFAULT_SYNC, incrementalSync, type SyncOptions } from '../../src/jobs/incremental_sync.ts';
import { cliEnv, removeCliDataDirs, runCli } from '../cli/run-cli.ts';
import { cacheMismatches, testRedis, uniqueNames, waitFor } from '../helpers/cache.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import { queryOne, setupCatalog, stockOf } from '../helpers/inventory.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { startTestWorker, waitForMetric, type TestWorker } from './worker-harness.ts';
import { killAllWorkers, spawnWorker } from './worker-process.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);
test.after.always(async () => {
  await killAllWorkers();
  removeCliDataDirs();
});

const EXACT: SyncOptions = { overlapSeconds: 0, graceSeconds: 0, pageSize: 2 };
const CATALOG = { A: { WH1: 10, WH2: 5 }, B: { WH1: 7 }, C: { WH1: 3 } };

/** A cache writer of its own names on the test Redis, and the cache built from Postgres. */
async function cacheFor(t: { teardown(fn: () => void): void }, db: Queryable & { url: string }) {
  const names = uniqueNames('sync');
  const redis = testRedis();
  t.teardown(() => redis.disconnect());
  const writer = new CacheWriter(redis, cacheKeys(names.prefix), { name: names.stream, maxLength: 10_000 });
  await rebuildCache({ databaseUrl: db.url, writer });
  return { names, redis, writer, keys: writer.keys };
}

/** Moves every stock row's last change into the past (a version bump, as a real change would). */
async function ageRows(db: Queryable, seconds: number): Promise<void> {
  await db.query(`update inventory.stock_levels set version = version + 1, last_movement_at = clock_timestamp() - make_interval(secs => $1)`, [seconds]);
}

async function rowEntry(db: Queryable, sku: string, code: string): Promise<string> {
  const r = await queryOne<{ e: string }>(db, `
    select concat_ws(':', version, on_hand, reserved, available, (select low_stock_threshold from inventory.stock_levels s
      join inventory.products p on p.id = s.product_id join inventory.warehouses w on w.id = s.warehouse_id
      where p.sku = $1 and w.code = $2), 0, 0, 0) as e
    from inventory.stock(array[$1]) where warehouse = $2`, [sku, code]);
  return r.e;
}

async function watermark(db: Queryable): Promise<Date | undefined> {
  const { rows } = await db.query<{ watermark: Date }>(`select watermark from stockroom_meta.sync_state where name = 'incremental_sync'`);
  return rows[0]?.watermark;
}

type Cache = Awaited<ReturnType<typeof cacheFor>>;

/** Three kinds of drift: a wrong warehouse key, a wrong rows-hash entry (same version), a deleted key. */
async function injectDrift(db: Queryable, { redis, keys }: Cache): Promise<void> {
  await redis.set(keys.warehouse('A', 'WH1'), '999');
  const b = (await rowEntry(db, 'B', 'WH1')).split(':');
  await redis.hset(keys.rows('B'), 'WH1', [b[0], 70, 0, 70, 0].join(':'));
  await redis.del(keys.warehouse('C', 'WH1'));
}

test('drift in Redis on rows changed since the watermark is repaired and counted', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, CATALOG);
  const cache = await cacheFor(t, db);
  t.deepEqual(await cacheMismatches(db, cache.redis, cache.names.prefix), [], 'the cache starts exact');
  await injectDrift(db, cache);
  t.is((await cacheMismatches(db, cache.redis, cache.names.prefix)).length, 2, 'the plain keys show two of the three');

  const result = await incrementalSync(db.pool, cache.writer, EXACT);
  t.like(result, { checked: 4, drifted: 3 });
  t.deepEqual(await cacheMismatches(db, cache.redis, cache.names.prefix), [], 'Redis equals Postgres again');
  t.is(await cache.redis.hget(cache.keys.rows('B'), 'WH1'), await rowEntry(db, 'B', 'WH1'), 'the rows hash is repaired too');
  t.is(await cache.redis.get(cache.keys.total('B')), '7', 'and the totals computed from it');
  t.is((await watermark(db))?.toISOString(), result.watermark, 'the watermark is recorded');

  const again = await incrementalSync(db.pool, cache.writer, { ...EXACT, overlapSeconds: 3600 });
  t.like(again, { checked: 4, drifted: 0 }, 'nothing left to repair');
});

test('rows not changed since the watermark are not read again; the watermark advances every run', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, CATALOG);
  const cache = await cacheFor(t, db);
  const first = await incrementalSync(db.pool, cache.writer, EXACT);
  t.like(first, { checked: 4, drifted: 0 });
  const w1 = await watermark(db);

  await cache.redis.set(cache.keys.warehouse('A', 'WH1'), '999'); // drift on a row unchanged since the watermark
  await db.query(`select inventory.adjust('B', 'WH1', 1, 'found one')`); // a change the cache did not see (no listener)
  const second = await incrementalSync(db.pool, cache.writer, EXACT);
  t.like(second, { checked: 1, drifted: 1 }, 'only the row changed since the watermark is read');
  t.is(await cache.redis.get(cache.keys.warehouse('B', 'WH1')), '8', 'and repaired');
  t.is(await cache.redis.get(cache.keys.warehouse('A', 'WH1')), '999', 'the unchanged row is not rescanned');
  const w2 = await watermark(db);
  t.true(w1 !== undefined && w2 !== undefined && w2 > w1, 'the watermark advanced');

  const idle = await incrementalSync(db.pool, cache.writer, EXACT);
  t.like(idle, { checked: 0, drifted: 0 });
  t.true((await watermark(db))! > w2!, 'it advances even when nothing changed');

  // The overlap reads again what changed shortly before the watermark (commits that came late).
  const overlapped = await incrementalSync(db.pool, cache.writer, { ...EXACT, overlapSeconds: 3600 });
  t.like(overlapped, { checked: 4, drifted: 1 });
  t.is(await cache.redis.get(cache.keys.warehouse('A', 'WH1')), '10');
});

test('rows changed within the grace period are left to the stream', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, CATALOG);
  await ageRows(db, 30);
  const cache = await cacheFor(t, db);
  await db.query(`select inventory.adjust('A', 'WH1', 5, 'just now')`); // the stream's business for a few seconds
  await cache.redis.set(cache.keys.warehouse('B', 'WH1'), '0'); // old row, real drift

  const result = await incrementalSync(db.pool, cache.writer, DEFAULT_SYNC);
  t.like(result, { checked: 3, drifted: 1 }, 'the row changed just now is not compared');
  t.is(await cache.redis.get(cache.keys.warehouse('B', 'WH1')), '7');
  t.is(await cache.redis.get(cache.keys.warehouse('A', 'WH1')), '10', 'the fresh change is left as the cache has it');

  const later = await incrementalSync(db.pool, cache.writer, { ...DEFAULT_SYNC, graceSeconds: 0 });
  t.like(later, { checked: 4, drifted: 1 }, 'once out of the grace period it is compared');
  t.deepEqual(await cacheMismatches(db, cache.redis, cache.names.prefix), []);
});

test('a rows-hash entry whose version is ahead of Postgres is repaired, not only counted', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, CATALOG);
  const cache = await cacheFor(t, db);
  const c = (await rowEntry(db, 'C', 'WH1')).split(':');
  await cache.redis.hset(cache.keys.rows('C'), 'WH1', [Number(c[0]) + 100, 300, 0, 300, 0].join(':'));
  await cache.redis.set(cache.keys.warehouse('C', 'WH1'), '300');

  const first = await incrementalSync(db.pool, cache.writer, { ...EXACT, overlapSeconds: 3600 });
  t.like(first, { checked: 4, drifted: 1 });
  const second = await incrementalSync(db.pool, cache.writer, { ...EXACT, overlapSeconds: 3600 });
  t.like(second, { drifted: 0 }, 'repaired by the first run, so not counted again');
  t.is(await cache.redis.get(cache.keys.warehouse('C', 'WH1')), '3');
});

// The per-sku keys are checked against the sku's rows hash, so drift in them alone is repaired too.
test('drift in the per-sku keys (available, status) of changed rows is repaired and counted', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, CATALOG);
  const cache = await cacheFor(t, db);
  await cache.redis.del(cache.keys.available('A'));
  await cache.redis.set(cache.keys.status('B'), 'out_of_stock');
  t.is((await cacheMismatches(db, cache.redis, cache.names.prefix)).length, 2);

  const result = await incrementalSync(db.pool, cache.writer, EXACT);
  t.deepEqual(await cacheMismatches(db, cache.redis, cache.names.prefix), [], 'Redis equals Postgres again');
  t.true(result.drifted >= 2, `counted ${result.drifted}`);
});

test('a sums key that disagrees with its rows hash (edited by hand) is repaired, so the stream does not move the keys from it', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, CATALOG);
  const cache = await cacheFor(t, db);
  await cache.redis.set(cache.keys.sums('A'), '1:1:0');
  t.is((await cacheMismatches(db, cache.redis, cache.names.prefix)).length, 1);

  const result = await incrementalSync(db.pool, cache.writer, EXACT);
  t.deepEqual(await cacheMismatches(db, cache.redis, cache.names.prefix), [], 'Redis equals Postgres again');
  t.true(result.drifted >= 1, `counted ${result.drifted}`);
});

test('the incremental_sync task, run by the worker and by `stockroom jobs run`, repairs drift and counts it in stockroom_sync_drift_total', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, CATALOG);
  await ageRows(db, 30); // out of the grace period, within the overlap
  const worker: TestWorker = await startTestWorker(db.url);
  t.teardown(() => worker.stop());
  const cache: Cache = { names: worker.names, redis: worker.redis, writer: worker.writer, keys: worker.writer.keys };
  await rebuildCache({ databaseUrl: db.url, writer: worker.writer });
  await injectDrift(db, cache);

  await db.query(`select graphile_worker.add_job('incremental_sync')`);
  t.is(await waitForMetric(worker, 'stockroom_sync_drift_total', 3), 3);
  t.true(await waitForMetric(worker, 'stockroom_sync_rows_checked_total', 4) >= 4); // more if the */5 cron ran too
  t.deepEqual(await cacheMismatches(db, worker.redis, worker.names.prefix), []);
  t.is(await worker.redis.hget(worker.writer.keys.rows('B'), 'WH1'), await rowEntry(db, 'B', 'WH1'));
  t.truthy(worker.logs.find((l) => l.task === 'incremental_sync' && l.msg === 'incremental sync checked 4 changed row(s), repaired 3'));

  await worker.redis.set(worker.writer.keys.warehouse('A', 'WH2'), '42');
  // (Its --json output is asserted in test/cli/operator.test.ts.)
  const run = await runCli(['jobs', 'run', 'incremental_sync'], cliEnv({ DATABASE_URL: db.url }));
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /^enqueued incremental_sync as job \d+/);
  t.is(await waitForMetric(worker, 'stockroom_sync_drift_total', 4), 4, 'the second run found the new drift (rows within the overlap)');
  t.is(await worker.redis.get(worker.writer.keys.warehouse('A', 'WH2')), '5');
  t.true(await waitFor(async () => (await queryOne<{ n: number }>(db,
    `select count(*)::int as n from graphile_worker.jobs where task_identifier = 'incremental_sync'`)).n === 0, 5_000), 'the jobs completed');
});

test('verify_counters reports reserved drift, and repairs it only when STOCKROOM_VERIFY_FIX is true', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH1: 10 } });
  await db.query(`select inventory.reserve('o1', '[{"sku":"A","warehouse":"WH1","qty":3}]', '1 hour')`);
  await db.query(`update inventory.stock_levels s set reserved = reserved + 2 from inventory.products p
                  where p.id = s.product_id and p.sku = 'A'`); // behind the API's back
  const drift = [{ sku: 'A', warehouse: 'WH1', reserved: 5, expected: 3 }];

  const reporting = await startTestWorker(db.url, { verifyFix: false });
  t.teardown(() => reporting.stop());
  await db.query(`select graphile_worker.add_job('verify_counters')`);
  t.is(await waitForMetric(reporting, 'stockroom_reserved_drift_total', 1), 1);
  const report = reporting.logs.find((l) => l.task === 'verify_counters' && l.level === 50);
  t.is(report?.msg, 'verify_counters found 1 row(s) whose reserved differs from their HELD lines (set STOCKROOM_VERIFY_FIX=true to repair)');
  t.deepEqual(report?.drift, drift);
  t.true(await waitFor(async () => (await queryOne<{ n: number }>(db,
    `select count(*)::int as n from graphile_worker.jobs where task_identifier = 'verify_counters'`)).n === 0, 5_000));
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 5 }, 'reported, not repaired');
  await reporting.stop();

  // The worker as deployed, configured through the environment.
  const fixing = await spawnWorker(db.url, { STOCKROOM_VERIFY_FIX: 'true' });
  t.teardown(() => fixing.stop().then(() => {}));
  const run = await runCli(['jobs', 'run', 'verify_counters'], cliEnv({ DATABASE_URL: db.url }));
  t.is(run.code, 0, run.stderr);
  t.true(await waitFor(async () => (await stockOf(db, 'A', 'WH1'))?.reserved === 3, 10_000), 'repaired');
  t.is(await fixing.metric('stockroom_reserved_drift_total'), 1);
  const fixed = fixing.logs.find((l) => l.task === 'verify_counters' && l.level === 50);
  t.is(fixed?.msg, 'verify_counters found 1 row(s) whose reserved differs from their HELD lines; repaired');
  t.deepEqual(fixed?.drift, drift);
  t.like(await queryOne(db, `select kind, reason, reserved_after from inventory.movements order by id desc limit 1`),
    { kind: 'ADJUST', reason: 'VERIFY_COUNTERS', reserved_after: 3 });
  t.like(await stockOf(db, 'B', 'WH1'), { reserved: 0 }, 'rows without drift are left alone');

  await runCli(['jobs', 'run', 'verify_counters'], cliEnv({ DATABASE_URL: db.url }));
  t.true(await waitFor(() => fixing.logs.some((l) => l.msg === 'verify_counters: every reserved matches its HELD lines'), 10_000));
  t.is(await fixing.metric('stockroom_reserved_drift_total'), 1, 'nothing more to count');
  t.is(await fixing.stop(), 0, 'the worker stops cleanly on SIGTERM');
});
