// A lost slot (dropped with pg_drop_replication_slot, or invalidated by
// PostgreSQL) leaves a gap: movements committed after the cache's position and
// before the new slot's consistent point never come through the stream. The
// consumer rebuilds the cache from the new slot's snapshot and publishes the
// events of the gap from the ledger, so every movement still gets exactly one
// warehouse.stock.updated and one typed event; it counts and records the loss,
// and `stockroom slot` shows it. A recovery cut short is resumed without
// publishing anything twice.
import test, { type ExecutionContext } from 'ava';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { migrate } from '../../src/db/migrate.ts';
import { createDatabaseIfMissing } from '../../src/harness/postgres.ts';
import { createLogger } from '../../src/log.ts';
import { cacheMismatches, eventProblems, readStream, testRedis, uniqueNames, waitFor, waitForCache, type StreamEntry } from '../helpers/cache.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { testServers } from '../helpers/environment.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { startTestListener, type TestListener } from '../helpers/listener.ts';
import { metricValue } from '../helpers/metrics.ts';
import { cliEnv, removeCliDataDirs, runCli, startOwnPostgres } from '../cli/run-cli.ts';
import {
  createCatalog, duplicateEventIds, killAllConsumers, maxMovementId, receiveStock, seededRandom, spawnConsumer, startTraffic,
  tempDir, terminate, testSeed, waitForStreaming,
} from './consumer-process.ts';

test.after.always(removeCliDataDirs);

type Names = ReturnType<typeof uniqueNames>;

interface Env {
  db: Queryable & { url: string; pool: pg.Pool };
  redis: Redis;
  names: Names;
  skus: string[];
  warehouses: string[];
  random: () => number;
  start(): Promise<TestListener>;
}

/** A database with a catalog but no movement yet (so every movement made from here on owes its events), Redis, names. */
async function environment(t: ExecutionContext, label: string, databaseUrl?: string): Promise<Env> {
  let db: Env['db'];
  if (databaseUrl) {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 20 });
    pool.on('error', () => {});
    db = { url: databaseUrl, pool, query: (text, values) => pool.query(text, values) };
    t.teardown(() => pool.end());
  } else {
    const opened = await openTestDatabase(label);
    db = opened;
    t.teardown(() => opened.close());
  }
  const redis = testRedis();
  const names = uniqueNames(label);
  const listeners: TestListener[] = [];
  // Registered after the database's teardown, so it runs first (ava runs teardowns last in, first out).
  t.teardown(async () => {
    for (const l of listeners) await l.stop();
    const keys = await redis.keys(`${names.prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });
  const { skus, warehouses } = await createCatalog(db, 20, 3);
  return {
    db, redis, names, skus, warehouses, random: seededRandom(testSeed(t)),
    start: async () => {
      const listener = await startTestListener(db.url, { names });
      listeners.push(listener);
      return listener;
    },
  };
}

/** Ends the walsender holding the slot (if any) and drops the slot, as an operator or a failover would. */
async function dropSlot(t: ExecutionContext, db: Queryable, slot: string): Promise<void> {
  const dropped = await waitFor(async () => {
    await db.query('select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active_pid is not null', [slot]);
    try {
      await db.query('select pg_drop_replication_slot($1)', [slot]);
      return true;
    } catch {
      return false; // the walsender had not let go yet, or the consumer took the slot again
    }
  }, 20_000, 20);
  t.true(dropped, `slot ${slot} dropped`);
}

/** Every movement's warehouse.stock.updated says what the ledger says (kind, on_hand and reserved after). */
async function contentProblems(db: Queryable, entries: StreamEntry[]): Promise<string[]> {
  const { rows } = await db.query<{ id: string; kind: string; on_hand_after: number; reserved_after: number }>(
    'select id::text, kind, on_hand_after, reserved_after from inventory.movements');
  const ledger = new Map(rows.map((r) => [r.id, r]));
  const problems: string[] = [];
  for (const e of entries) {
    if (e.type !== 'warehouse.stock.updated') continue;
    const m = ledger.get(String(e.event.data.movement_id));
    const after = e.event.data.new as { on_hand: number; reserved: number };
    if (!m || m.kind !== e.event.data.kind || m.on_hand_after !== after.on_hand || m.reserved_after !== after.reserved) {
      problems.push(`${e.id}: ${JSON.stringify(e.event.data)} vs ${JSON.stringify(m)}`);
    }
    if (problems.length >= 10) break;
  }
  return problems;
}

/** Waits until every movement of the ledger has its events, then checks them once more for duplicates and content. */
async function assertExactlyOnce(t: ExecutionContext, env: Env, what: string): Promise<StreamEntry[]> {
  let problems: string[] = [];
  await waitFor(async () => (problems = await eventProblems(env.db, await readStream(env.redis, env.names.stream))).length === 0, 20_000, 200);
  t.deepEqual(problems, [], `${what}: exactly one warehouse.stock.updated and one typed event per movement`);
  const entries = await readStream(env.redis, env.names.stream);
  t.deepEqual(duplicateEventIds(entries), [], `${what}: no event id twice`);
  t.deepEqual(await contentProblems(env.db, entries), [], `${what}: events say what the ledger says`);
  return entries;
}

async function slotJson(env: Env): Promise<any> {
  const result = await runCli(['slot', '--json', '--max-lag-bytes', String(2 ** 40)], cliEnv({
    DATABASE_URL: env.db.url, REDIS_URL: testServers().redisUrl, STOCKROOM_CACHE_PREFIX: env.names.prefix,
    STOCKROOM_SLOT: env.names.slot, STOCKROOM_PUBLICATION: env.names.publication, STOCKROOM_STREAM: env.names.stream,
  }));
  return { ...result, json: JSON.parse(result.stdout) };
}

// ---------------------------------------------------------------------------

test('a slot dropped under traffic, while the consumer streams and while it is stopped: every movement still gets exactly one event', async (t) => {
  const env = await environment(t, 'backfill_drop');
  const { db, redis, names } = env;
  const first = await env.start();
  await receiveStock(db, env.skus, env.warehouses, 40);
  const traffic = startTraffic(db.pool, { clients: 4, skus: env.skus, warehouses: env.warehouses, random: env.random, maxMs: 90_000 });
  t.teardown(() => traffic.stop().then(() => {}));
  t.true(await traffic.progress(150, 20_000), 'traffic runs');

  // 1. Dropped while the consumer streams: it finds the slot gone, recovers by itself and streams again.
  await dropSlot(t, db, names.slot);
  t.true(await traffic.progress(100, 20_000), 'traffic goes on without a slot');
  t.true(await waitFor(async () => (await metricValue(first.registry, 'stockroom_slot_losses_total', { reason: 'dropped' })) === 1
    && first.consumer.health().streaming, 30_000), 'the running consumer recovered from the loss and streams again');
  t.is(await metricValue(first.registry, 'stockroom_cache_rebuilds_total', { reason: 'slot dropped' }), 1);
  t.is(await metricValue(first.registry, 'stockroom_cache_rebuilds_total', { reason: 'new slot' }), 1, 'only the first start reads as a first start');
  t.true(await traffic.progress(100, 20_000));

  // 2. Dropped while no consumer runs: a real gap, as long as the traffic makes it.
  await first.stop();
  await dropSlot(t, db, names.slot);
  const gapFrom = await maxMovementId(db);
  t.true(await traffic.progress(200, 20_000), 'traffic while there is neither consumer nor slot');
  const second = await env.start();
  t.true(await traffic.progress(100, 20_000), 'and after the restart');
  const stats = await traffic.stop();
  t.deepEqual(stats.unexpected, []);

  t.deepEqual(await waitForCache(db, redis, names.prefix, 20_000), [], 'the cache equals PostgreSQL');
  const entries = await assertExactlyOnce(t, env, 'after two slot losses');
  t.is(await metricValue(second.registry, 'stockroom_slot_losses_total', { reason: 'dropped' }), 1);
  t.is(await metricValue(second.registry, 'stockroom_cache_rebuilds_total', { reason: 'slot dropped' }), 1);
  t.is(await metricValue(second.registry, 'stockroom_cache_rebuilds_total', { reason: 'new slot' }), 0, 'a lost slot is not a first start');
  const backfilled = entries.filter((e) => e.event.backfilled === true);
  t.true(await metricValue(second.registry, 'stockroom_backfilled_events_total') >= 300, 'the gap of 200+ calls was backfilled');
  t.true(backfilled.some((e) => Number(e.event.data.movement_id) > gapFrom), 'movements of the gap came from the ledger');
  t.is(await metricValue(first.registry, 'stockroom_backfilled_events_total') + await metricValue(second.registry, 'stockroom_backfilled_events_total'),
    backfilled.length, 'every backfilled event is counted');

  const loss = await redis.get(`${names.prefix}meta:slot_loss`);
  t.like(JSON.parse(loss!), { slot: names.slot, reason: 'dropped', state: 'done' });
  const shown = await slotJson(env);
  t.is(shown.code, 0, shown.stderr);
  t.like(shown.json, { slot: names.slot, status: 'ok', lastSlotLoss: { reason: 'dropped', state: 'done' } });
  t.true(shown.json.lastSlotLoss.backfilledMovements > 0, JSON.stringify(shown.json.lastSlotLoss));
  t.is(shown.json.lastSlotLoss.backfilledEvents, await metricValue(second.registry, 'stockroom_backfilled_events_total'));
  t.regex(shown.json.lastSlotLoss.resumedAt, /^[0-9A-F]+\/[0-9A-F]+$/);
  const text = await runCli(['slot', '--max-lag-bytes', String(2 ** 40)], cliEnv({
    DATABASE_URL: db.url, REDIS_URL: testServers().redisUrl, STOCKROOM_CACHE_PREFIX: names.prefix,
    STOCKROOM_SLOT: names.slot, STOCKROOM_PUBLICATION: names.publication, STOCKROOM_STREAM: names.stream,
  }));
  t.regex(text.stdout, /last slot loss: dropped \(found [^)]+\): recovered .*; \d+ movements of the gap got their events from the ledger \(\d+ events\)/);
});

test('a recovery cut short is resumed without publishing an event twice; a restart after it changes nothing', async (t) => {
  const env = await environment(t, 'backfill_resume');
  const { db, redis, names } = env;
  const key = (suffix: string) => `${names.prefix}${suffix}`;
  const first = await env.start();
  await receiveStock(db, env.skus, env.warehouses, 40);
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  await first.stop();
  await dropSlot(t, db, names.slot);
  // The gap: 150 separate transactions while there is no slot.
  for (let i = 0; i < 150; i++) {
    await db.query(`select inventory.adjust($1, $2, $3, 'gap')`, [env.skus[i % env.skus.length], env.warehouses[i % 3], 1 + (i % 4)]);
  }

  const second = await env.start();
  await assertExactlyOnce(t, env, 'after the first recovery');
  const done = JSON.parse((await redis.get(key('meta:slot_loss')))!);
  t.like(done, { reason: 'dropped', state: 'done', backfilledMovements: 150, backfilledEvents: await metricValue(second.registry, 'stockroom_backfilled_events_total') });
  await second.stop();

  // As if the recovery had crashed before its last batches and before marking itself done: the record
  // still says recovering, the stream lacks the events of the last 20 movements, and the slot it made
  // (at the recorded consistent point) holds changes made since.
  const last = await maxMovementId(db);
  const entries = await readStream(redis, names.stream);
  const cut = entries.filter((e) => Number(e.event.data.movement_id) > last - 20);
  t.is(new Set(cut.map((e) => e.event.data.movement_id)).size, 20);
  await redis.xdel(names.stream, ...cut.map((e) => e.streamId));
  await redis.set(key('meta:slot_loss'), JSON.stringify({ ...done, state: 'recovering', finishedAt: null, backfilledMovements: 130 }));
  await db.query(`select inventory.adjust($1, 'WH1', 5, 'after the crash')`, [env.skus[0]]);
  t.not((await eventProblems(db, await readStream(redis, names.stream))).length, 0, 'events are missing now');

  const third = await env.start();
  t.deepEqual(await cacheMismatches(db, redis, names.prefix), [], 'rebuilt before start() returns');
  await assertExactlyOnce(t, env, 'after the resumed recovery');
  t.is(await metricValue(third.registry, 'stockroom_slot_losses_total'), 1, 'the resumed loss is counted (once) by the process that finished it');
  t.is(await metricValue(third.registry, 'stockroom_backfilled_events_total'), cut.length + 2, 'only the missing events were published');
  t.like(JSON.parse((await redis.get(key('meta:slot_loss')))!), { state: 'done', backfilledMovements: 151, detectedAt: done.detectedAt });
  await third.stop();

  // And a plain restart now: nothing to recover, nothing to rebuild, nothing published twice.
  const fourth = await env.start();
  t.is(await metricValue(fourth.registry, 'stockroom_slot_losses_total'), 0);
  t.is(await metricValue(fourth.registry, 'stockroom_cache_rebuilds_total'), 0);
  await db.query(`select inventory.adjust($1, 'WH2', 1, 'after the recovery')`, [env.skus[1]]);
  await assertExactlyOnce(t, env, 'after a plain restart');
  t.is(await metricValue(fourth.registry, 'stockroom_backfilled_events_total'), 0);
});

test('a consumer killed -9 in the middle of a recovery: the next one takes over once its lease expires, and nothing is published twice', async (t) => {
  t.timeout(120_000);
  const env = await environment(t, 'backfill_kill9');
  const { db, redis, names } = env;
  const data = tempDir('backfill_kill9');
  t.teardown(async () => {
    await killAllConsumers();
    data.remove();
  });
  const processEnv = { databaseUrl: db.url, redisUrl: testServers().redisUrl, names, dataDir: data.dir };
  const first = spawnConsumer(processEnv);
  t.true(await waitForStreaming(first, 30_000), first.tail());
  await receiveStock(db, env.skus, env.warehouses, 40);
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  t.like(await terminate(first, 15_000), { timedOut: false });
  await dropSlot(t, db, names.slot);
  // A gap of 12,000 movements in 24 transactions: the backfill takes many batches.
  for (let i = 0; i < 24; i++) {
    await db.query(`select count(inventory.adjust(s, w, 1, 'gap')) from generate_series(1, 9) g, unnest($1::text[]) s, unnest($2::text[]) w`,
      [env.skus, env.warehouses]);
  }
  const gap = 24 * 9 * env.skus.length * env.warehouses.length;

  const second = spawnConsumer(processEnv);
  let record: { state?: string; backfilledMovements?: number } = {};
  const midway = await waitFor(async () => {
    record = JSON.parse((await redis.get(`${names.prefix}meta:slot_loss`)) ?? '{}');
    return record.state === 'done' || (record.state === 'recovering' && (record.backfilledMovements ?? 0) > 0);
  }, 60_000, 2);
  t.true(midway, `the recovery started: ${second.tail()}`);
  await second.kill9();
  t.log(record.state === 'recovering'
    ? `killed after ${record.backfilledMovements} of ${gap} movements were backfilled`
    : 'the recovery finished before the kill landed (the resumption below is then a plain restart)');

  // Its lease outlives it by up to 15 s; start() returns at once and the consumer waits for it in the background.
  const third = await env.start();
  t.true(await waitFor(async () => JSON.parse((await redis.get(`${names.prefix}meta:slot_loss`)) ?? '{}').state === 'done'
    && third.consumer.health().streaming, 60_000, 100), 'the third consumer finished the recovery');
  await db.query(`select inventory.adjust($1, 'WH1', 1, 'after')`, [env.skus[0]]);
  t.deepEqual(await waitForCache(db, redis, names.prefix, 20_000), []);
  const entries = await assertExactlyOnce(t, env, 'after a kill in the middle of the recovery');
  t.is(entries.filter((e) => e.type === 'warehouse.stock.updated' && e.event.backfilled === true).length, gap, 'each movement of the gap backfilled once');
  if (record.state === 'recovering') {
    t.is(await metricValue(third.registry, 'stockroom_slot_losses_total', { reason: 'dropped' }), 1, 'the resumed loss counted');
    t.true(await metricValue(third.registry, 'stockroom_backfilled_events_total', { type: 'warehouse.stock.updated' }) < gap, 'only what was left was published');
  }
});

test('two consumers starting on a lost slot: one recovers, the other waits for it; nothing is published twice', async (t) => {
  const env = await environment(t, 'backfill_two');
  const { db, redis, names } = env;
  const first = await env.start();
  await receiveStock(db, env.skus, env.warehouses, 40);
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  await first.stop();
  await dropSlot(t, db, names.slot);
  for (let i = 0; i < 60; i++) await db.query(`select inventory.adjust($1, $2, 2, 'gap')`, [env.skus[i % env.skus.length], env.warehouses[i % 3]]);

  const [a, b] = await Promise.all([env.start(), env.start()]);
  await db.query(`select inventory.adjust($1, 'WH1', 1, 'after')`, [env.skus[0]]);
  t.deepEqual(await waitForCache(db, redis, names.prefix, 20_000), []);
  await assertExactlyOnce(t, env, 'two consumers');
  const losses = await metricValue(a.registry, 'stockroom_slot_losses_total') + await metricValue(b.registry, 'stockroom_slot_losses_total');
  t.is(losses, 1, 'one of them recovered');
  const backfilled = await metricValue(a.registry, 'stockroom_backfilled_events_total') + await metricValue(b.registry, 'stockroom_backfilled_events_total');
  t.is(backfilled, 120);
});

test('a slot PostgreSQL invalidated (WAL removed) is recovered the same way, with the reason recorded', async (t) => {
  const server = await startOwnPostgres(t, 'backfill_invalid', {
    wal_level: 'logical', max_slot_wal_keep_size: '1MB', wal_keep_size: '0', min_wal_size: '32MB',
  });
  await createDatabaseIfMissing(server.url('postgres'), 'stockroom');
  const url = server.url('stockroom');
  await migrate(url, createLogger('silent'));
  const env = await environment(t, 'backfill_invalid', url);
  const { db, redis, names } = env;
  const first = await env.start();
  await receiveStock(db, env.skus, env.warehouses, 40);
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  await first.stop();

  // Changes the slot should carry, then enough WAL that PostgreSQL gives the slot up.
  for (let i = 0; i < 40; i++) await db.query(`select inventory.adjust($1, $2, 3, 'while down')`, [env.skus[i % env.skus.length], env.warehouses[i % 3]]);
  await db.query('create table filler (x text)');
  let status = '';
  for (let round = 0; round < 10 && status !== 'lost'; round++) {
    await db.query(`insert into filler select repeat('x', 1000) from generate_series(1, 2000)`);
    await db.query('select pg_switch_wal()');
    await db.query('checkpoint');
    status = (await db.query<{ wal_status: string }>('select wal_status from pg_replication_slots where slot_name = $1', [names.slot])).rows[0]!.wal_status;
  }
  t.is(status, 'lost', 'PostgreSQL invalidated the slot');
  for (let i = 0; i < 10; i++) await db.query(`select inventory.adjust($1, 'WH2', -1, 'still down')`, [env.skus[i]]);

  const second = await env.start();
  t.deepEqual(await cacheMismatches(db, redis, names.prefix), []);
  await db.query(`select inventory.adjust($1, 'WH3', 1, 'after')`, [env.skus[2]]);
  await assertExactlyOnce(t, env, 'after the invalidation');
  t.is(await metricValue(second.registry, 'stockroom_slot_losses_total', { reason: 'invalidated' }), 1);
  t.is(await metricValue(second.registry, 'stockroom_cache_rebuilds_total', { reason: 'slot invalidated' }), 1);
  t.is(await metricValue(second.registry, 'stockroom_backfilled_events_total', { type: 'warehouse.stock.updated' }), 50);
  t.like(JSON.parse((await redis.get(`${names.prefix}meta:slot_loss`))!), { reason: 'invalidated', state: 'done', backfilledMovements: 50 });
});
