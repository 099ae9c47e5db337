// A Redis that loses its data under the consumer: FLUSHALL in the middle of
// traffic, FLUSHALL while nothing changes, and a Redis restarted without
// persistence. The consumer must notice, rebuild the cache from Postgres
// beside the stream (no gap, no duplicate against it), survive the outage
// without acknowledging what it could not write, and end exact.
// Each test has its own throwaway redis-server, so FLUSHALL touches no other test.
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { startPrivateRedis, type RunningRedis } from '../../src/harness/redis.ts';
import { createLogger } from '../../src/log.ts';
import { eventProblems, readStream, testRedis, waitFor, waitForCache, type StreamEntry } from '../helpers/cache.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { startTestListener, type TestListener } from '../helpers/listener.ts';
import {
  createCatalog, duplicateEventIds, maxMovementId, movementIdOf, movementsAfter, receiveStock, seededRandom, slotSample,
  startTraffic, tempDir, testSeed, waitUntilDead,
} from './consumer-process.ts';

const log = createLogger('silent');
const REBUILDS = 'stockroom_cache_rebuilds_total';

async function setUp(t: ExecutionContext, label: string) {
  const seed = testSeed(t);
  const temp = tempDir(label);
  const redisDir = path.join(temp.dir, 'redis');
  const servers: RunningRedis[] = [];
  let listener: TestListener | undefined;
  let db: Awaited<ReturnType<typeof openTestDatabase>> | undefined;
  let redis: ReturnType<typeof testRedis> | undefined;
  t.teardown(async () => {
    await listener?.stop();
    redis?.disconnect();
    for (const server of servers.reverse()) await server.stop();
    await db?.close();
    temp.remove();
  });
  servers.push(await startPrivateRedis({ dir: redisDir, persistent: false, log }));
  db = await openTestDatabase(label);
  redis = testRedis(servers[0]!.url);
  const { skus, warehouses } = await createCatalog(db, 30, 4);
  listener = await startTestListener(db.url, { label, redisUrl: servers[0]!.url });
  t.true(await waitFor(() => listener!.consumer.health().streaming, 20_000), 'the consumer streams');
  await receiveStock(db, skus, warehouses, 60);
  /** Stops redis-server (no persistence: its data is gone) and starts a new one on the same port. */
  const restartRedis = async (whileDown: () => Promise<void>) => {
    const old = servers.at(-1)!;
    process.kill(old.pid, 'SIGTERM');
    t.true(await waitUntilDead(old.pid, 10_000), 'redis-server stopped');
    await whileDown();
    const next = await startPrivateRedis({ dir: redisDir, persistent: false, log });
    servers.push(next);
    t.is(next.port, old.port, 'redis-server came back on the same port');
  };
  return { db, redis, listener, skus, warehouses, restartRedis, random: seededRandom(seed) };
}

/** Events of the movements made after a point: exactly one updated and one typed event each, none twice. */
async function assertEventsAfter(t: ExecutionContext, db: Parameters<typeof movementsAfter>[0], entries: StreamEntry[], afterId: number) {
  const later = entries.filter((e) => movementIdOf(e) > afterId);
  t.deepEqual(await eventProblems(movementsAfter(db, afterId), later), [],
    `every movement after #${afterId} has its events in the stream`);
  t.deepEqual(duplicateEventIds(entries), [], 'no event twice');
}

test.serial('FLUSHALL in the middle of traffic is detected, the cache rebuilt beside the stream, and Redis ends equal to Postgres', async (t) => {
  t.timeout(90_000);
  const { db, redis, listener, skus, warehouses, random } = await setUp(t, 'flushall_busy');
  const traffic = startTraffic(db.pool, { clients: 4, skus, warehouses, random, bulkEveryMs: 2_000, maxMs: 100_000 });
  t.teardown(() => traffic.stop().then(() => {}));
  t.true(await traffic.progress(500, 30_000));

  const rebuilds = await listener.metric(REBUILDS);
  await redis.flushall();
  const flushedAt = await maxMovementId(db);
  t.true(await waitFor(async () => (await listener.metric(REBUILDS)) > rebuilds, 10_000), 'the loss was detected and a rebuild started');
  t.true(await traffic.progress(500, 30_000));
  const stats = await traffic.stop();
  t.deepEqual(stats.unexpected, []);

  t.deepEqual(await waitForCache(db, redis, listener.names.prefix, 30_000), [], 'Redis equals Postgres');
  t.true(await waitFor(() => !listener.consumer.health().rebuilding, 10_000));
  t.is(await redis.exists(`${listener.names.prefix}meta:source`), 1, 'the cache is marked whole again');
  await assertEventsAfter(t, db, await readStream(redis, listener.names.stream), flushedAt);
  t.true(listener.consumer.health().streaming, 'the stream never stopped');
});

test.serial('FLUSHALL while nothing changes is detected within seconds and the cache rebuilt', async (t) => {
  t.timeout(60_000);
  const { db, redis, listener, skus, warehouses } = await setUp(t, 'flushall_idle');
  t.deepEqual(await waitForCache(db, redis, listener.names.prefix), []);
  await new Promise((resolve) => setTimeout(resolve, 500)); // idle

  const rebuilds = await listener.metric(REBUILDS);
  const flushedAt = performance.now();
  await redis.flushall();
  t.true(await waitFor(async () => (await listener.metric(REBUILDS)) > rebuilds, 8_000, 50), 'the loss was detected');
  t.log(`rebuild started ${Math.round(performance.now() - flushedAt)} ms after FLUSHALL`);
  t.deepEqual(await waitForCache(db, redis, listener.names.prefix, 10_000), [], 'the cache was rebuilt without any change to carry it');
  t.true(await waitFor(async () => (await redis.exists(`${listener.names.prefix}meta:source`)) === 1, 10_000), 'and marked whole');

  const before = await maxMovementId(db);
  await db.query(`select inventory.reserve('after-flush', $1::jsonb)`, [JSON.stringify([{ sku: skus[0], warehouse: warehouses[0], qty: 2 }])]);
  t.deepEqual(await waitForCache(db, redis, listener.names.prefix), [], 'changes keep flowing');
  await assertEventsAfter(t, db, await readStream(redis, listener.names.stream), before);
});

test.serial('Redis restarted without its data while traffic runs: the consumer survives the outage, acknowledges nothing it could not write, and rebuilds', async (t) => {
  t.timeout(100_000);
  const { db, redis, listener, skus, warehouses, restartRedis, random } = await setUp(t, 'redis_restart');
  const traffic = startTraffic(db.pool, { clients: 4, skus, warehouses, random, bulkEveryMs: 2_000, maxMs: 100_000 });
  t.teardown(() => traffic.stop().then(() => {}));
  t.true(await traffic.progress(500, 30_000));
  const rebuilds = await listener.metric(REBUILDS);

  let stoppedAt = 0;
  let walAtStop = 0n;
  await restartRedis(async () => {
    // Everything committed from here on can only reach the new Redis.
    stoppedAt = await maxMovementId(db);
    const { rows: [wal] } = await db.query<{ lsn: string }>('select (pg_current_wal_lsn() - $1::pg_lsn)::text as lsn', ['0/0']);
    walAtStop = BigInt(wal!.lsn);
    t.true(await traffic.progress(500, 30_000), 'changes keep coming while Redis is down');
    t.true(await waitFor(() => !listener.consumer.health().streaming, 10_000), 'the consumer stopped streaming when its writes failed');
    const slot = await slotSample(db, listener.names.slot);
    t.true((slot?.confirmed ?? 0n) <= walAtStop, 'nothing committed after Redis went away was acknowledged');
  });

  t.true(await waitFor(() => listener.consumer.health().streaming, 45_000), 'the consumer streams again once Redis is back');
  t.true(await listener.metric(REBUILDS) > rebuilds, 'the empty Redis was rebuilt');
  t.true(await traffic.progress(500, 30_000));
  const stats = await traffic.stop();
  t.deepEqual(stats.unexpected, []);

  t.deepEqual(await waitForCache(db, redis, listener.names.prefix, 30_000), [], 'Redis equals Postgres');
  t.true(await waitFor(async () => (await redis.exists(`${listener.names.prefix}meta:source`)) === 1, 10_000), 'the cache is marked whole');
  let entries = await readStream(redis, listener.names.stream);
  await waitFor(async () => (await eventProblems(movementsAfter(db, stoppedAt), (entries = await readStream(redis, listener.names.stream)).filter((e) => movementIdOf(e) > stoppedAt))).length === 0, 15_000, 250);
  await assertEventsAfter(t, db, entries, stoppedAt);
});

// Only when a rebuild has written rows but not yet marked the cache whole: FLUSHALL, atomically.
const FLUSHALL_DURING_REBUILD = `
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('DBSIZE') > 1000 then
  redis.call('FLUSHALL')
  return 1
end
return 0`;

test.serial('Redis losing its data again while the cache is being rebuilt is repaired too (the rebuild must not mark a cache it lost whole)', async (t) => {
  t.timeout(90_000);
  const temp = tempDir('flushall_rebuild');
  let listener: TestListener | undefined;
  const server = await startPrivateRedis({ dir: path.join(temp.dir, 'redis'), persistent: false, log });
  const db = await openTestDatabase('flushall_rebuild');
  const redis = testRedis(server.url);
  t.teardown(async () => {
    await listener?.stop();
    redis.disconnect();
    await server.stop();
    await db.close();
    temp.remove();
  });
  // A catalog large enough that a rebuild takes a moment: 6,000 products × 10 warehouses.
  await db.query(`insert into inventory.warehouses (code, priority) select 'WH' || g, g from generate_series(1, 10) g`);
  await db.query(`insert into inventory.products (sku) select 'SKU-' || g from generate_series(1, 6000) g`);
  await db.query(`insert into inventory.stock_levels (product_id, warehouse_id, on_hand, low_stock_threshold)
    select p.id, w.id, 50, 5 from inventory.products p, inventory.warehouses w`);
  listener = await startTestListener(db.url, { label: 'flushall_rebuild', redisUrl: server.url });
  t.deepEqual(await waitForCache(db, redis, listener.names.prefix), [], 'the first build is exact');
  const source = `${listener.names.prefix}meta:source`;

  const rebuilds = await listener.metric(REBUILDS);
  await redis.flushall(); // the first loss: the watcher starts a rebuild beside the stream
  t.true(await waitFor(async () => (await redis.eval(FLUSHALL_DURING_REBUILD, 1, source)) === 1, 15_000, 2),
    'the second FLUSHALL landed while the rebuild was writing');
  t.true(await listener.metric(REBUILDS) > rebuilds);
  t.true(await waitFor(() => !listener.consumer.health().rebuilding, 20_000), 'that rebuild ended');

  // What the second loss took must come back: nothing else will ever rewrite those keys.
  t.deepEqual(await waitForCache(db, redis, listener.names.prefix, 15_000), [], 'Redis equals Postgres again');
});
