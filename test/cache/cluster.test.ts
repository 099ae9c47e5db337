// The cache on a real Redis Cluster (three masters from the system
// redis-server, src/harness/redis-cluster.ts), with the cluster key layout:
// every key of a sku in its slot, the skus spread over all masters, the
// consumer streaming into it (keys equal PostgreSQL, exactly one
// warehouse.stock.updated per movement), the version guard, rebuild and
// verify, incremental sync, cachedStock, and a master restarted without its
// data in the middle of traffic. One cluster for the whole file.
import anyTest, { type TestFn } from 'ava';
import { Registry } from 'prom-client';
import { cacheKeys, type CacheKeys } from '../../src/cache/keys.ts';
import { loadKitDefinitions } from '../../src/cache/loader.ts';
import { rebuildCache, RebuildInterruptedError } from '../../src/cache/rebuild.ts';
import { createRedis, type Redis } from '../../src/cache/redis.ts';
import { DENY_BACKORDERS, rowState } from '../../src/cache/row.ts';
import { slotOf } from '../../src/cache/slots.ts';
import { verifyCache } from '../../src/cache/verify.ts';
import { CacheWriter } from '../../src/cache/writer.ts';
import { CachedStockReader, createCacheMetrics } from '../../src/graphql/cached-stock.ts';
import { startRedisCluster, type RunningRedisCluster } from '../../src/harness/redis-cluster.ts';
import { incrementalSync } from '../../src/jobs/incremental_sync.ts';
import { createLogger } from '../../src/log.ts';
import { cacheMismatches, eventProblems, readStream, testCluster, uniqueNames, waitFor, waitForCache } from '../helpers/cache.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import { setupCatalog } from '../helpers/inventory.ts';
import { startTestListener } from '../helpers/listener.ts';
import { spawnConsumer, tempDir, terminate, waitForStreaming } from '../listener/consumer-process.ts';

type Context = DatabaseContext & { cluster: RunningRedisCluster };
const test = anyTest as TestFn<Context>;
useDatabase(test as unknown as TestFn<DatabaseContext>);

let cluster: RunningRedisCluster;
test.before(async () => {
  cluster = await startRedisCluster({ masters: 3 });
});
test.after.always(async () => {
  await cluster?.stop();
});

// Two skus holding braces, which the cluster layout tags by their hex (keys.ts).
const SKUS = [...Array.from({ length: 10 }, (_, i) => `SKU-${i + 1}`), 'A}B', '{X}'];
const CATALOG = Object.fromEntries(SKUS.map((sku, i) => [sku, { WH1: 10 + i, WH2: 3 }]));

/** The port of the master serving a slot, from CLUSTER SLOTS. */
function masterOfSlot(slots: unknown[], slot: number): number {
  for (const range of slots as Array<[number, number, [string, number]]>) {
    if (slot >= range[0] && slot <= range[1]) return range[2][1];
  }
  throw new Error(`slot ${slot} is served by no master`);
}

function writerOn(t: { teardown(fn: () => void): void }, label: string): { redis: Redis; writer: CacheWriter; keys: CacheKeys; stream: string } {
  const names = uniqueNames(label);
  const redis = createRedis(cluster.url, createLogger('silent', 'test'), 'test');
  t.teardown(() => redis.disconnect());
  const keys = cacheKeys(names.prefix, { cluster: { stream: names.stream } });
  return { redis, keys, stream: names.stream, writer: new CacheWriter(redis, keys, { name: names.stream, maxLength: 100_000 }) };
}

test.serial('cluster layout: all keys of a sku share its slot (braces in a sku too), the meta keys share the stream\'s; one Redis keeps plain names', async (t) => {
  const redis = testCluster(cluster.url);
  t.teardown(() => redis.disconnect());
  const keys = cacheKeys('catalog:', { cluster: { stream: 'stock-events' } });
  t.is(keys.total('SKU-1'), 'catalog:stock:{SKU-1}:total');
  t.is(keys.product('SKU-1'), 'catalog:product:{SKU-1}');
  t.is(keys.position, 'catalog:meta:{stock-events}:position');
  t.is(cacheKeys('catalog:').total('SKU-1'), 'catalog:stock:SKU-1:total', 'the single-Redis layout is unchanged');
  t.is(cacheKeys('catalog:').position, 'catalog:meta:position');
  // The slot as the cluster itself computes it (CLUSTER KEYSLOT), not as Stockroom does.
  const slotOf = async (key: string) => Number(await redis.cluster('KEYSLOT', key));
  const names = new Set<string>();
  for (const sku of ['SKU-1', 'A}B', '{X}', '}X', 'X{', '{}', 'a b ü']) {
    const all = [...keys.skuKeys(sku), keys.warehouse(sku, 'WH1'), keys.warehouse(sku, 'WH-2')];
    const slots = new Set(await Promise.all(all.map(slotOf)));
    t.is(slots.size, 1, `every key of ${JSON.stringify(sku)} in one slot: ${all.join(' ')}`);
    for (const key of all) names.add(key);
  }
  t.is(names.size, 7 * (keys.skuKeys('SKU-1').length + 2), 'no two skus share a key name');
  const meta = [keys.position, keys.source, keys.applyChain, keys.rebuilds, keys.streamOffset, keys.slotLoss, 'stock-events'];
  t.is(new Set(await Promise.all(meta.map(slotOf))).size, 1, 'stream and meta keys in one slot');
  for (const slot of [0, 1, 777, 16383]) t.is(await slotOf(keys.slotState(slot)), slot, `slot ${slot}'s state key is in slot ${slot}`);
});

test.serial('harness: three masters share all 16384 slots; a node restarted keeps its data, or loses it', async (t) => {
  const redis = testCluster(cluster.url);
  t.teardown(() => redis.disconnect());
  const slots = (await redis.cluster('SLOTS')) as Array<[number, number]>;
  t.is(new Set(slots.map((range) => masterOfSlot(slots, range[0]))).size, 3);
  t.is(slots.reduce((n, [from, to]) => n + to - from + 1, 0), 16384);
  const key = 'harness:{kept}';
  const node = cluster.ports.indexOf(masterOfSlot(slots, Number(await redis.cluster('KEYSLOT', key))));
  await redis.set(key, '1');
  // Read on the node itself: a client's connection to a restarted node fails a command or two while it reconnects.
  await cluster.restartNode(node, { loseData: false });
  t.is(cluster.cli(node, 'GET', key).trim(), '1', 'kept across a clean restart');
  await cluster.restartNode(node, { loseData: true });
  t.is(cluster.cli(node, 'GET', key).trim(), '', 'gone after a restart that loses the data');
  t.regex(cluster.cli(node, 'cluster', 'info'), /cluster_state:ok/);
});

test.serial('the consumer streams into the cluster: keys equal PostgreSQL on all three masters, one event per movement; verify, version guard, incremental sync, cachedStock', async (t) => {
  const { db } = t.context;
  const listener = await startTestListener(db.url, { label: 'cluster', redisUrl: cluster.url });
  t.teardown(() => listener.stop());
  await setupCatalog(db, CATALOG);
  const redis = testCluster(cluster.url);
  t.teardown(() => redis.disconnect());
  const keys = cacheKeys(listener.names.prefix, { cluster: { stream: listener.names.stream } });
  for (const [i, sku] of SKUS.entries()) {
    await db.query(`select inventory.adjust($1, 'WH1', $2, 'correction')`, [sku, -(i % 5) - 1]);
  }
  await db.query(`select inventory.adjust('SKU-1', 'WH2', -2, 'correction')`);
  t.deepEqual(await waitForCache(db, redis, keys), [], 'every key equals PostgreSQL');
  // A kit whose components are in other slots: computed here from reads of them after each batch.
  await db.query(`select inventory.upsert_product('KIT-1', 'Kit')`);
  await db.query(`select inventory.set_kit('KIT-1', '[{"sku": "SKU-1", "qty": 2}, {"sku": "A}B", "qty": 1}, {"sku": "SKU-9", "qty": 3}]', 4)`);
  for (let i = 0; i < 6; i++) {
    await db.query(`select inventory.adjust($1, 'WH1', $2, 'correction')`, [['SKU-1', 'A}B', 'SKU-9'][i % 3], i % 2 ? 2 : -1]);
    if (i % 2 === 0) await db.query(`select inventory.reserve($1, '[{"sku": "KIT-1", "qty": 1}]')`, [`kit-${i}`]);
  }
  t.deepEqual(await waitForCache(db, redis, keys), [], 'the kit\'s keys equal kit_stock()');
  // Channels: every sku's channels hash rewritten slot by slot, the kit's computed here; then kept by the stream.
  await db.query(`select inventory.upsert_channel('web', 'Web', 'PRIORITY')`);
  await db.query(`select inventory.set_channel_warehouses('web', '[{"warehouse": "WH2"}]')`);
  await db.query(`select inventory.upsert_channel('all', 'Everywhere', 'MOST_STOCK')`);
  await db.query(`select inventory.set_channel_warehouses('all', '[{"warehouse": "WH1"}, {"warehouse": "WH2"}]')`);
  await db.query(`select inventory.adjust('SKU-1', 'WH2', 5, 'delivery')`);
  await db.query(`select inventory.reserve('kit-web', '[{"sku": "KIT-1", "qty": 1, "channel": "all"}]')`);
  t.deepEqual(await waitForCache(db, redis, keys), [], 'every channels hash equals channel_stock()');
  t.not(await redis.hget(keys.channels('KIT-1'), 'web'), null);
  t.not(await redis.get(keys.available('KIT-1')), null);
  t.deepEqual(await eventProblems(db, await readStream(redis, listener.names.stream)), [], 'exactly one updated and one typed event per movement');

  const slots = (await redis.cluster('SLOTS')) as unknown[];
  const masters = new Set(SKUS.map((sku) => masterOfSlot(slots, slotOfKey(sku, keys))));
  t.is(masters.size, 3, 'the skus are spread over all three masters');

  const client = createRedis(cluster.url, createLogger('silent', 'test'), 'test');
  t.teardown(() => client.disconnect());
  const writer = new CacheWriter(client, keys, { name: listener.names.stream, maxLength: 100_000 });
  const verify = () => verifyCache({ databaseUrl: db.url, redis: client, writer, keys, fix: false });
  // The kit's guard here: a recompute from component reads older than the last one's (a smaller Σ of versions) is refused.
  const [kitDefinition] = await loadKitDefinitions(db.pool, { kits: ['KIT-1'] });
  const mark = (await redis.get(keys.kit('KIT-1')))!;
  await redis.set(keys.kit('KIT-1'), `${kitDefinition!.version}:999999`);
  t.deepEqual(await writer.recomputeKits([kitDefinition!]), ['KIT-1']);
  t.deepEqual(await writer.recomputeKits([kitDefinition!], { force: true }), [], 'a repair forces it');
  t.is(await redis.get(keys.kit('KIT-1')), mark);
  t.like(await verify(), { skus: 13, rows: 24, driftedSkus: 0 });

  // The version guard: a state older than the one cached is refused.
  const stale = await writer.apply([rowState({ sku: 'SKU-2', warehouse: 'WH1', version: '1', onHand: 999, reserved: 0, safetyStock: 0, lowStockThreshold: 0, ...DENY_BACKORDERS })], []);
  t.like(stale, { applied: 0, stale: 1 });
  t.not(await redis.get(keys.total('SKU-2')), '1002');

  // Drift behind the consumer's back, on several masters: incremental sync repairs it.
  await redis.set(keys.warehouse('SKU-3', 'WH1'), '999');
  await redis.del(keys.total('SKU-7'));
  await redis.set(keys.status('{X}'), 'out_of_stock');
  await redis.hset(keys.channels('SKU-5'), 'web', '999');
  t.is((await verify()).driftedSkus, 4);
  const synced = await incrementalSync(db.pool, writer, { overlapSeconds: 0, graceSeconds: 0, pageSize: 5 });
  t.true(synced.drifted >= 4, `repaired ${synced.drifted}`);
  t.deepEqual(await cacheMismatches(db, redis, keys), []);

  // The resync listener rewrites one sku on request.
  await redis.set(keys.available('SKU-4'), '0');
  await db.query(`notify stockroom_resync, 'SKU-4'`);
  t.deepEqual(await waitForCache(db, redis, keys, 10_000), [], 'NOTIFY stockroom_resync repaired the sku');

  // cachedStock reads the cluster: totals per slot, warehouses per slot.
  const reader = new CachedStockReader({ redis: client, pool: db.pool, writer, metrics: createCacheMetrics(new Registry()), readTimeoutMs: 2_000 });
  const answers = await reader.getMany(SKUS);
  const { rows } = await db.query<{ sku: string; total: number; available: number }>(`
    select sku, sum(on_hand)::int as total, sum(available)::int as available from inventory.stock($1) group by sku`, [SKUS]);
  for (const row of rows) {
    const answer = answers[SKUS.indexOf(row.sku)];
    t.like(answer, { sku: row.sku, total: row.total, available: row.available, source: 'cache' });
  }
  const warehouses = await reader.warehousesOf(answers.filter((a) => a !== null));
  t.deepEqual(warehouses.map((w) => w.map((x) => x.warehouse)), SKUS.map(() => ['WH1', 'WH2']));
});

test.serial('rebuild fills every slot and verify finds no drift; a master that lost its data during the rebuild fails it', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, CATALOG);
  const { redis, writer, keys } = writerOn(t, 'cluster_rebuild');
  const result = await rebuildCache({ databaseUrl: db.url, writer, complete: { source: 'db-1', position: () => 16n } });
  t.like(result, { rows: 24, skus: 12 });
  t.like(await verifyCache({ databaseUrl: db.url, redis, writer, keys, fix: false }), { driftedSkus: 0, rows: 24 });
  t.is(await redis.hexists(keys.slotState(0), 'whole'), 1, 'every slot is marked whole');
  t.is(await redis.hexists(keys.slotState(16383), 'whole'), 1);

  // The data of one slot lost mid-rebuild (as a master restarted empty would lose it): the rebuild is refused.
  const slot = 4242;
  await t.throwsAsync(rebuildCache({ databaseUrl: db.url, writer, beforeComplete: async () => {
    await redis.del(keys.slotState(slot));
  } }), { instanceOf: RebuildInterruptedError });
  // And a row written into a slot that lost its marker reports the loss.
  await redis.del(keys.slotState(slotOfKey('SKU-5', keys)));
  const applied = await writer.apply([rowState({ sku: 'SKU-5', warehouse: 'WH1', version: '999', onHand: 1, reserved: 0, safetyStock: 0, lowStockThreshold: 0, ...DENY_BACKORDERS })], []);
  t.like(applied, { applied: 1, lost: true });

  t.true((await writer.clear()) > 16_384, 'clear scans every master');
  t.deepEqual((await verifyCache({ databaseUrl: db.url, redis, writer, keys, fix: true })).driftedSkus, 12);
  t.deepEqual(await cacheMismatches(db, redis, keys), [], 'verify --fix rewrote every sku');
});

test.serial('a batch whose row script fails writes no events and stops the batch sent behind it; its replay appends each event once', async (t) => {
  const { redis, writer, keys, stream } = writerOn(t, 'cluster_fail');
  const row = (sku: string, version: string, onHand: number) => rowState({ sku, warehouse: 'WH1', version, onHand, reserved: 0, safetyStock: 0, lowStockThreshold: 0, ...DENY_BACKORDERS });
  const event = (n: number) => ({ streamId: `${1000 + n}-0`, type: 'warehouse.stock.updated', id: `${n}:updated`, subject: `SKU-1/WH1`, body: '{}' });
  // One slot's script fails (its rows key is not a hash); the other slot's succeeds.
  await redis.set(keys.rows('SKU-BAD'), 'not a hash');
  t.not(slotOfKey('SKU-BAD', keys), slotOfKey('SKU-1', keys));
  const first = writer.apply([row('SKU-1', '1', 5), row('SKU-BAD', '1', 5)], [event(1)], 100n, { after: '', token: 'a' });
  const second = writer.apply([row('SKU-1', '2', 6)], [event(2)], 200n, { after: 'a', token: 'b' }); // sent before the first answered
  await t.throwsAsync(first, { message: /WRONGTYPE/ });
  t.like(await second, { skipped: true, appended: 0 });
  t.is(await redis.exists(stream), 0, 'no event of either batch');
  t.is(await redis.get(keys.position), null, 'nor their position');
  // The replay, once the slot answers again: every event once, whatever was applied before.
  await redis.del(keys.rows('SKU-BAD'));
  t.like(await writer.apply([row('SKU-1', '1', 5), row('SKU-BAD', '1', 5)], [event(1)], 100n, { after: '', token: 'c' }), { appended: 1, stale: 1 });
  t.like(await writer.apply([row('SKU-1', '2', 6)], [event(2)], 200n, { after: 'c', token: 'd' }), { appended: 1, applied: 1 });
  t.like(await writer.apply([row('SKU-1', '2', 6)], [event(1), event(2)], 200n, { after: 'd', token: 'e' }), { appended: 0, duplicates: 2 });
  t.deepEqual((await redis.xrange(stream, '-', '+')).map(([id]) => id), ['1001-0', '1002-0']);
  t.is(await redis.get(keys.position), '0/C8');
  t.is(await redis.get(keys.total('SKU-1')), '6');
});

test.serial('a master restarted without its data during traffic: the cache is rebuilt and equals PostgreSQL, no event lost or duplicated', async (t) => {
  const { db } = t.context;
  // The listener as it runs in service: `stockroom start --listener` with REDIS_URL=redis+cluster://…
  const names = uniqueNames('cluster_restart');
  const dataDir = tempDir('cluster-restart');
  const consumer = spawnConsumer({ databaseUrl: db.url, redisUrl: cluster.url, names, dataDir: dataDir.dir });
  t.teardown(async () => {
    await terminate(consumer, 10_000);
    dataDir.remove();
  });
  t.true(await waitForStreaming(consumer, 30_000), consumer.tail());
  const listener = { names, metric: async (name: string) => (await consumer.metric(name)) ?? 0 };
  await setupCatalog(db, CATALOG);
  // A client for the checks, made anew after each restart (its connection to the restarted node would fail a command while it reconnects).
  const freshClient = () => {
    const client = testCluster(cluster.url);
    t.teardown(() => client.disconnect());
    return client;
  };
  let redis = freshClient();
  const keys = cacheKeys(listener.names.prefix, { cluster: { stream: listener.names.stream } });
  t.deepEqual(await waitForCache(db, redis, keys), []);

  // A master holding skus but not the stream (the stream and its position are one slot's: losing that node loses the stream itself).
  const slots = (await redis.cluster('SLOTS')) as unknown[];
  const streamPort = masterOfSlot(slots, Number(await redis.cluster('KEYSLOT', listener.names.stream)));
  const victim = cluster.ports.findIndex((port) => port !== streamPort);

  let running = true;
  let movements = 0;
  const traffic = (async () => {
    while (running) {
      const sku = SKUS[movements % SKUS.length]!;
      await db.query(`select inventory.adjust($1, 'WH1', 1, 'receipt')`, [sku]);
      movements++;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  await waitFor(() => movements >= 30, 10_000, 10);
  const rebuildsBefore = await listener.metric('stockroom_cache_rebuilds_total');
  await cluster.restartNode(victim, { loseData: true });
  const after = movements;
  await waitFor(() => movements >= after + 60, 15_000, 20);
  running = false;
  await traffic;

  redis = freshClient();
  t.deepEqual(await waitForCache(db, redis, keys, 45_000), [], 'the cache converges to PostgreSQL');
  t.true(await waitFor(async () => (await listener.metric('stockroom_cache_rebuilds_total')) > rebuildsBefore, 20_000),
    `the loss of the master's data was seen and the cache rebuilt: ${consumer.tail()}`);
  // (In a cluster a batch's rows reach their slots a moment before its events reach the stream's:
  // the cache may equal PostgreSQL just before the last events are appended.)
  let problems: string[] = [];
  await waitFor(async () => (problems = await eventProblems(db, await readStream(redis, listener.names.stream))).length === 0, 15_000, 200);
  t.deepEqual(problems, [], 'every movement, including those committed while the node was down, has exactly one updated and one typed event');
  t.true(movements >= 90, `${movements} movements`);

  // The same loss while nothing is written: the listener's periodic check sees it and rebuilds.
  const rebuilds = await listener.metric('stockroom_cache_rebuilds_total');
  await cluster.restartNode(victim, { loseData: true });
  t.true(await waitFor(async () => (await listener.metric('stockroom_cache_rebuilds_total')) > rebuilds, 20_000), 'an idle loss is seen too');
  redis = freshClient();
  t.deepEqual(await waitForCache(db, redis, keys, 30_000), [], 'and the cache is whole again');
});

/** The slot of a sku's keys, as the cluster layout places them. */
function slotOfKey(sku: string, keys: CacheKeys): number {
  return slotOf(keys.rows(sku));
}
