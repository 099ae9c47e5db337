// The whole product as an operator runs it: `stockroom start` (API, listener
// and worker) as a subprocess against a test database and its own
// redis-server. A stockChanged subscription sees a committed change within
// 1 s; /ready is 503 while Redis is down and 200 when it is back; /metrics
// carries the names dashboards use; SIGTERM with a subscription open and a
// request in flight stops every role within 10 s, the request answered.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import test from 'ava';
import { startPrivateRedis, type RunningRedis } from '../../src/harness/redis.ts';
import { createLogger } from '../../src/log.ts';
import { JWT_SECRET, subscribe, token } from '../helpers/api.ts';
import { uniqueNames, waitFor } from '../helpers/cache.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { assertInvariants } from '../helpers/invariants.ts';
import { setupCatalog } from '../helpers/inventory.ts';
import { CLI, cliEnv, removeCliDataDirs } from '../cli/run-cli.ts';
import { tempDir, waitUntilDead } from '../listener/consumer-process.ts';

const log = createLogger('silent');
const temp = tempDir('gql_live');
const redisDir = path.join(temp.dir, 'redis');
let db: Awaited<ReturnType<typeof openTestDatabase>>;
let redis: RunningRedis;
let app: ChildProcess;
let url: string;
let stderr = '';

test.before(async () => {
  db = await openTestDatabase('gql_live');
  await setupCatalog(db, { LIVE: { WH1: 10, WH2: 5, WH3: 1 }, OTHER: { WH1: 3 } });
  redis = await startPrivateRedis({ dir: redisDir, persistent: false, log });
  const names = uniqueNames('gql_live');
  app = spawn(process.execPath, [CLI, 'start'], {
    env: cliEnv({
      DATABASE_URL: db.url, REDIS_URL: redis.url, PORT: '0', JWT_SECRET, LOG_LEVEL: 'warn',
      STOCKROOM_CACHE_PREFIX: names.prefix, STOCKROOM_STREAM: names.stream, STOCKROOM_SLOT: names.slot, STOCKROOM_PUBLICATION: names.publication,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  app.stderr!.on('data', (d) => (stderr += d));
  url = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    app.stdout!.on('data', (d) => {
      stdout += d;
      const match = /HTTP\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
      if (match) resolve(match[1]!);
    });
    app.once('exit', (code) => reject(new Error(`stockroom start exited (${code}): ${stderr}`)));
  });
});

test.after.always(async (t) => {
  if (app && app.exitCode === null && app.signalCode === null) app.kill('SIGKILL');
  await redis?.stop();
  if (db) await assertInvariants(t, db);
  await db?.close();
  removeCliDataDirs();
  temp.remove();
});

async function ready(): Promise<{ status: number; body: { status: string; checks: Record<string, { ok: boolean }> } }> {
  const response = await fetch(`${url}/ready`);
  return { status: response.status, body: (await response.json()) as never };
}

test.serial('/health answers; /ready turns 200 once PostgreSQL, Redis and the slot consumer are healthy', async (t) => {
  t.is((await fetch(`${url}/health`)).status, 200);
  t.true(await waitFor(async () => (await ready()).status === 200, 30_000), stderr);
  const { body } = await ready();
  t.deepEqual(Object.keys(body.checks).sort(), ['listener', 'postgres', 'redis']);
});

test.serial('a stockChanged subscription receives a committed change within 1 s', async (t) => {
  const subscription = await subscribe(url, `subscription ($sku: String!) { stockChanged(sku: $sku) { sku warehouse onHand reserved available version } }`, { sku: 'LIVE' });
  try {
    // The server LISTENs once the first subscription arrives, in the background: changes on WH3
    // until one comes through, then the measured change on WH2.
    let warm = false;
    for (let attempt = 0; attempt < 50 && !warm; attempt++) {
      await db.query(`select inventory.adjust('LIVE', 'WH3', 1, 'warm-up')`);
      warm = await subscription.next(200).then(() => true, () => false);
    }
    t.true(warm, 'the subscription is live');
    while (await subscription.next(300).then(() => true, () => false)); // the rest of the warm-up's changes
    await db.query(`select inventory.adjust('OTHER', 'WH1', 1, 'another sku: not for this subscriber')`);
    const started = performance.now();
    await db.query(`select inventory.adjust('LIVE', 'WH2', 4, 'receipt')`);
    const payload = await subscription.next(1000);
    const elapsed = performance.now() - started;
    t.like(payload.data?.stockChanged, { sku: 'LIVE', warehouse: 'WH2', onHand: 9, reserved: 0, available: 9 });
    t.true(elapsed < 1000, `${elapsed} ms`);
    t.log(`commit → subscriber: ${elapsed.toFixed(1)} ms`);
  } finally {
    subscription.close();
  }
});

test.serial('/ready is 503 naming Redis while Redis is down, and 200 when it is back', async (t) => {
  process.kill(redis.pid, 'SIGTERM');
  t.true(await waitUntilDead(redis.pid, 10_000));
  t.true(await waitFor(async () => (await ready()).status === 503, 15_000));
  const down = await ready();
  t.is(down.body.status, 'not ready');
  t.false(down.body.checks.redis!.ok);
  t.true(down.body.checks.postgres!.ok);
  const port = redis.port;
  redis = await startPrivateRedis({ dir: redisDir, persistent: false, log });
  t.is(redis.port, port, 'back on the same port');
  t.true(await waitFor(async () => (await ready()).status === 200, 30_000), JSON.stringify((await ready()).body));
});

test.serial('/metrics carries the stream, API, job and cache metrics', async (t) => {
  const writer = await token('stockroom_writer');
  const reserve = await fetch(`${url}/graphql`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${writer}` },
    body: JSON.stringify({ query: `mutation { reserve(orderRef: "metrics", lines: [{ sku: "LIVE", qty: 1 }], ttlSeconds: 60) { status } }` }),
  });
  t.deepEqual(await reserve.json(), { data: { reserve: { status: 'HELD' } } });
  await fetch(`${url}/graphql`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: `{ cachedStock(skus: ["LIVE"]) { available } }` }),
  });
  const metrics = await (await fetch(`${url}/metrics`)).text();
  for (const name of [
    'stock_sync_latency_seconds_bucket', 'stock_events_processed_total', 'inventory_reserve_latency_seconds_count',
    'inventory_ttl_expired_total', 'inventory_adjustment_total', 'stockroom_cache_hits_total', 'stockroom_cache_misses_total',
    'stockroom_slot_lag_bytes', 'stockroom_cache_changes_applied_total', 'process_cpu_seconds_total',
  ]) t.regex(metrics, new RegExp(`^${name}`, 'm'), name);
  t.regex(metrics, /^inventory_reserve_latency_seconds_count\{outcome="reserved"\} 1$/m);
});

test.serial('SIGTERM with a subscription open and a request in flight: the request is answered and every role stops within 10 s', async (t) => {
  const subscription = await subscribe(url, `subscription { stockChanged(sku: "LIVE") { version } }`, {});
  const locker = await db.pool.connect();
  try {
    // Hold the row so the in-flight mutation waits inside PostgreSQL when SIGTERM arrives.
    await locker.query('begin');
    await locker.query(`select 1 from inventory.stock_levels s join inventory.products p on p.id = s.product_id where p.sku = 'LIVE' for update of s`);
    const writer = await token('stockroom_writer');
    const inFlight = fetch(`${url}/graphql`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${writer}` },
      body: JSON.stringify({ query: `mutation { adjust(sku: "LIVE", warehouse: "WH1", delta: 2, reason: "in flight") { onHand } }` }),
    }).then((r) => r.json());
    await new Promise((resolve) => setTimeout(resolve, 300));
    const exited = new Promise<number | null>((resolve) => app.once('exit', (code) => resolve(code)));
    const started = performance.now();
    app.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 300));
    await locker.query('commit');
    t.deepEqual(await inFlight, { data: { adjust: { onHand: 12 } } });
    const code = await exited;
    const ms = performance.now() - started;
    t.is(code, 0, stderr);
    t.true(ms < 10_000, `stopped in ${ms} ms`);
    t.log(`stopped in ${ms.toFixed(0)} ms`);
  } finally {
    subscription.close();
    locker.release();
  }
  const { rows } = await db.query<{ n: number }>(`select count(*)::int as n from graphile_worker.jobs where locked_by is not null`);
  t.is(rows[0]!.n, 0, 'the worker released its jobs');
  const { rows: slots } = await db.query(`select active from pg_replication_slots where database = current_database()`);
  t.true(slots.every((s) => s.active === false), 'the consumer let go of its slot');
});
