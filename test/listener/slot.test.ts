// The publication and the slot: created on first start (the cache built from
// the slot's exported snapshot), never stolen from another consumer, recreated
// when dropped, and the cache rebuilt whenever Redis cannot be trusted (it
// mirrors another database, or lost its position or its data). An idle
// consumer keeps the slot from retaining WAL.
import test, { type ExecutionContext } from 'ava';
import type { Redis } from 'ioredis';
import { parseLsn } from '../../src/cache/lsn.ts';
import { sourceMarker } from '../../src/cache/keys.ts';
import { PUBLISHED_COLUMNS, PUBLISHED_TABLES } from '../../src/listener/replication-setup.ts';
import { openTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { cacheMismatches, eventProblems, readStream, testRedis, uniqueNames, waitFor, waitForCache } from '../helpers/cache.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, setupCatalog } from '../helpers/inventory.ts';
import { startTestListener, type TestListener } from '../helpers/listener.ts';
import { metricValue } from '../helpers/metrics.ts';

// ---------------------------------------------------------------------------
// Local helpers

type Db = TestDatabase & { close(): Promise<void> };
type Names = ReturnType<typeof uniqueNames>;

interface Env {
  db: Db;
  redis: Redis;
  names: Names;
  key(suffix: string): string;
  /** Starts a listener on the shared names; stopped by teardown if the test does not. */
  start(): Promise<TestListener>;
}

async function environment(t: ExecutionContext, label: string, stock: Record<string, Record<string, number>>): Promise<Env> {
  const db = await openTestDatabase(label);
  const redis = testRedis();
  const names = uniqueNames(label);
  const listeners: TestListener[] = [];
  t.teardown(async () => {
    for (const l of listeners) await l.stop();
    const keys = await redis.keys(`${names.prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await db.close();
  });
  await setupCatalog(db, stock);
  return {
    db, redis, names,
    key: (suffix) => `${names.prefix}${suffix}`,
    start: async () => {
      const listener = await startTestListener(db.url, { names });
      listeners.push(listener);
      return listener;
    },
  };
}

interface SlotRow { slot_name: string; plugin: string; slot_type: string; temporary: boolean; database: string; active_pid: number | null; lag: string | null; confirmed_flush_lsn: string | null }

async function slotRow(db: Queryable, slot: string): Promise<SlotRow | undefined> {
  const { rows } = await db.query<SlotRow>(`
    select slot_name, plugin, slot_type, temporary, database, active_pid, confirmed_flush_lsn::text,
           (pg_current_wal_lsn() - confirmed_flush_lsn)::text as lag
    from pg_replication_slots where slot_name = $1`, [slot]);
  return rows[0];
}

async function lastMovementId(db: Queryable): Promise<number> {
  return Number((await queryOne<{ id: string }>(db, 'select coalesce(max(id), 0)::text as id from inventory.movements')).id);
}

/** eventProblems() over the movements with id above `after` only. */
function movementsAfter(db: Queryable, after: number): Queryable {
  return { query: (text, values) => db.query(text.replace('from inventory.movements', `from inventory.movements where id > ${after}`), values) };
}

/** The source marker a consumer of this database and slot writes (keys.ts, sourceMarker). */
async function sourceIdentity(db: Queryable, slot: string): Promise<string> {
  const r = await queryOne<{ id: string; db: string }>(db, 'select system_identifier::text as id, current_database() as db from pg_control_system()');
  return sourceMarker(`${r.id}/${r.db}/${slot}`);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------

test.serial('an idle consumer acknowledges keepalives: the slot retains little WAL', async (t) => {
  const env = await environment(t, 'slot_idle', { A: { WH1: 10 } });
  const listener = await env.start();
  await env.db.query(`select inventory.adjust('A', 'WH1', 1, 'receipt')`);
  t.deepEqual(await waitForCache(env.db, env.redis, env.names.prefix), []);
  // 3 MB of WAL that the publication does not carry: nothing for the consumer
  // to apply, so only the acknowledgement of idle keepalives moves the slot past it.
  await env.db.query(`select pg_logical_emit_message(false, 'stockroom-test', repeat('x', 3000000))`);
  const lag = async () => Number((await slotRow(env.db, env.names.slot))?.lag ?? Infinity);
  const small = await waitFor(async () => (await lag()) < 1_000_000, 25_000, 200); // other test files write WAL too
  t.true(small, `slot lag ${await lag()} bytes`);
  // Redis records the acknowledged position too, so a restart does not see it trailing the slot.
  const slot = await slotRow(env.db, env.names.slot);
  const position = await env.redis.get(env.key('meta:position'));
  t.truthy(position);
  t.true(parseLsn(position!) >= parseLsn(slot!.confirmed_flush_lsn!), `position ${position} ≥ confirmed ${slot!.confirmed_flush_lsn}`);
  t.true(listener.consumer.health().streaming);
  // And a restart after that needs no rebuild.
  await listener.stop();
  const again = await env.start();
  t.is(await metricValue(again.registry, 'stockroom_cache_rebuilds_total'), 0);
});

test('first start: publication of the eight tables, a pgoutput slot, and the cache built from its exported snapshot', async (t) => {
  const stock: Record<string, Record<string, number>> = {};
  for (let i = 1; i <= 12; i++) stock[`P${i}`] = { WH1: 10 + i, WH2: i % 3, WH3: 5 };
  const env = await environment(t, 'slot_first', stock);
  const { db, redis, names } = env;
  await db.query('select inventory.set_policy($1, $2, 2, 30)', ['P1', 'WH1']);
  await db.query(`select inventory.reserve('before', '[{"sku":"P2","warehouse":"WH1","qty":4}]')`);
  t.is(await slotRow(db, names.slot), undefined);

  // Traffic goes on while the listener starts: the snapshot and the stream must meet with no gap and no overlap.
  let running = true;
  const writes = (async () => {
    let n = 0;
    while (running) {
      const sku = `P${1 + (n % 12)}`;
      await db.query(`select inventory.adjust($1, $2, $3, 'during start')`, [sku, n % 2 ? 'WH1' : 'WH3', n % 5 === 0 ? -1 : 2]);
      n++;
    }
    return n;
  })();
  await sleep(100);
  const listener = await env.start();
  const startedAfter = await lastMovementId(db);
  await sleep(300);
  running = false;
  const written = await writes;
  t.true(written > 10, `${written} adjustments during the start`);

  const publication = await db.query<{ table: string }>(
    `select schemaname || '.' || tablename as table from pg_publication_tables where pubname = $1 order by 1`, [names.publication]);
  t.deepEqual(publication.rows.map((r) => r.table), [...PUBLISHED_TABLES].sort());
  t.deepEqual(publication.rows.map((r) => r.table), ['inventory.channel_warehouses', 'inventory.channels', 'inventory.kit_components', 'inventory.kits',
    'inventory.movements', 'inventory.products', 'inventory.stock_levels', 'inventory.warehouses']);
  t.like(await queryOne(db, 'select pubinsert, pubupdate from pg_publication where pubname = $1', [names.publication]), { pubinsert: true, pubupdate: true });
  t.like(await slotRow(db, names.slot), { plugin: 'pgoutput', slot_type: 'logical', temporary: false, database: db.name });
  t.is(await metricValue(listener.registry, 'stockroom_cache_rebuilds_total', { reason: 'new slot' }), 1);
  t.is(await metricValue(listener.registry, 'stockroom_cache_rebuilds_total'), 1);
  t.is(await redis.get(env.key('meta:source')), await sourceIdentity(db, names.slot));
  t.truthy(await redis.get(env.key('meta:position')));
  t.is(await redis.get(env.key('stock:P5:warehouse:WH3')) !== null, true, 'rows made before the start are in Redis');

  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  const entries = await readStream(redis, names.stream);
  // Every movement is either in the snapshot (no events) or in the stream (exactly one of each):
  // per stock row, the streamed ones are exactly the latest ones, and everything after start() is streamed.
  const { rows } = await db.query<{ id: string; row: string }>(
    `select m.id::text, m.product_id::text || '/' || m.warehouse_id::text as row from inventory.movements m order by m.id`);
  const streamed = new Set(entries.filter((e) => e.type === 'warehouse.stock.updated').map((e) => String(e.event.data.movement_id)));
  const problems: string[] = [];
  const seenStreamed = new Set<string>();
  for (const m of rows) {
    if (streamed.has(m.id)) seenStreamed.add(m.row);
    else if (seenStreamed.has(m.row)) problems.push(`movement ${m.id} missing from the stream after a streamed one of its row`);
    else if (Number(m.id) > startedAfter) problems.push(`movement ${m.id}, made after the start, is not in the stream`);
  }
  t.deepEqual(problems, []);
  const firstStreamed = Math.min(...[...streamed].map(Number));
  t.deepEqual(await eventProblems(movementsAfter(db, firstStreamed - 1), entries.filter((e) => Number(e.event.data.movement_id) >= firstStreamed)), []);
  t.is(entries.filter((e) => e.type === 'warehouse.stock.updated').length, streamed.size, 'no movement twice');
});

test('a second listener on the same slot does not steal it: it stands by until the first stops, then takes over', async (t) => {
  const env = await environment(t, 'slot_two', { A: { WH1: 50 }, B: { WH1: 50 } });
  const { db, redis, names } = env;
  const first = await env.start();
  t.true(await waitFor(() => first.consumer.health().streaming, 10_000));
  const holder = (await slotRow(db, names.slot))?.active_pid;
  t.truthy(holder);
  const before = await lastMovementId(db);

  const second = await env.start();
  t.true(await waitFor(() => second.consumer.health().standby, 15_000), 'the second stands by');
  t.is(await metricValue(second.registry, 'stockroom_listener_standby'), 1);
  t.false(second.consumer.health().streaming);
  t.true(first.consumer.health().streaming, 'the first keeps streaming');
  t.is((await slotRow(db, names.slot))?.active_pid, holder, 'the slot is still held by the first');
  t.is(await metricValue(first.registry, 'stockroom_replication_reconnects_total'), 0, 'the first was never disturbed');
  await db.query(`select inventory.adjust('A', 'WH1', -1, 'while both run')`);
  t.true(await waitFor(async () => (await redis.get(env.key('stock:A:total'))) === '49', 10_000));
  const appliedByFirst = await metricValue(first.registry, 'stockroom_cache_changes_applied_total');
  t.true(appliedByFirst >= 1);
  t.is(await metricValue(second.registry, 'stockroom_cache_changes_applied_total'), 0);

  await first.stop();
  // Changes made while nobody streams wait in the slot.
  await db.query(`select inventory.adjust('B', 'WH1', -2, 'handover')`);
  // A standby looks at the slot about once a second.
  const stopped = performance.now();
  t.true(await waitFor(() => second.consumer.health().streaming, 10_000), 'the second takes over once the slot is free');
  t.log(`taken over ${Math.round(performance.now() - stopped)} ms after the first stopped (crash.test.ts holds kill -9 takeovers to 5 s)`);
  t.false(second.consumer.health().standby);
  t.is(await metricValue(second.registry, 'stockroom_listener_standby'), 0);
  await db.query(`select inventory.reserve('after', '[{"sku":"A","warehouse":"WH1","qty":5}]')`);
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  t.true(await waitFor(async () => (await readStream(redis, names.stream)).length === 6, 10_000));
  t.is(await redis.get(env.key('stock:B:total')), '48');
  t.is(await redis.get(env.key('stock:A:available')), '44');
  t.true(await metricValue(second.registry, 'stockroom_cache_changes_applied_total') >= 2);
  t.deepEqual(await eventProblems(movementsAfter(db, before), await readStream(redis, names.stream)), [], 'exactly once across the handover');
});

test('the publication lists only the columns the consumer reads; one made by an earlier version (every column) is brought to them at start', async (t) => {
  const env = await environment(t, 'slot_columns', { A: { WH1: 5 } });
  const { db, redis, names } = env;
  // As earlier versions made it: every column of every table.
  await db.query(`create publication ${names.publication} for table ${PUBLISHED_TABLES.join(', ')}`);
  await env.start();
  const { rows } = await db.query<{ table: string; columns: string[] }>(
    `select schemaname || '.' || tablename as table, attnames::text[] as columns from pg_publication_tables where pubname = $1 order by 1`, [names.publication]);
  t.deepEqual(Object.fromEntries(rows.map((r) => [r.table, [...r.columns].sort()])),
    Object.fromEntries(Object.entries(PUBLISHED_COLUMNS).map(([table, columns]) => [table, [...columns].sort()])));
  t.false(rows.some((r) => r.columns.includes('last_movement_at') || r.columns.includes('idempotency_key')));
  // And the stream still carries everything the cache and the events need.
  await db.query(`select inventory.upsert_product('B', 'Product B')`);
  await db.query(`select inventory.adjust('B', 'WH1', 4, 'receipt')`);
  await db.query(`select inventory.reserve('o-1', '[{"sku":"A","warehouse":"WH1","qty":2}]')`);
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  let problems: string[] = [];
  await waitFor(async () => (problems = await eventProblems(movementsAfter(db, 1), await readStream(redis, names.stream))).length === 0, 10_000);
  t.deepEqual(problems, []);
  const reserved = (await readStream(redis, names.stream)).find((e) => e.type === 'warehouse.stock.reserved');
  t.like(reserved?.event.data, { sku: 'A', warehouse: 'WH1', kind: 'RESERVE', reference: 'o-1', actor: 'postgres' });
});

test('a slot dropped while no listener runs is recreated at the next start, the cache rebuilt from its snapshot and the events of the gap published', async (t) => {
  const env = await environment(t, 'slot_dropped', { A: { WH1: 10, WH2: 10 }, B: { WH1: 7 } });
  const { db, redis, names } = env;
  const first = await env.start();
  const streamedFrom = await lastMovementId(db); // the catalog's receipts are in the first snapshot: no events
  await db.query(`select inventory.adjust('A', 'WH1', 5, 'receipt')`);
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  await first.stop();
  // The walsender of the stopped session may need a moment to let go of the slot.
  t.true(await waitFor(async () => {
    try {
      await db.query('select pg_drop_replication_slot($1)', [names.slot]);
      return true;
    } catch {
      return false;
    }
  }, 10_000), 'slot dropped');
  t.is(await slotRow(db, names.slot), undefined);

  // Changes while no slot exists: nothing records them for the cache.
  await db.query(`select inventory.adjust('A', 'WH2', -4, 'damaged')`);
  await db.query(`select inventory.reserve('down', '[{"sku":"B","warehouse":"WH1","qty":3}]')`);
  await db.query('select inventory.set_policy($1, $2, null, 5)', ['B', 'WH1']);
  t.not((await cacheMismatches(db, redis, names.prefix)).length, 0, 'the cache is behind');

  const second = await env.start();
  t.deepEqual(await cacheMismatches(db, redis, names.prefix), [], 'rebuilt before start() returns');
  t.like(await slotRow(db, names.slot), { plugin: 'pgoutput', temporary: false });
  t.is(await metricValue(second.registry, 'stockroom_cache_rebuilds_total', { reason: 'slot dropped' }), 1, 'labelled as a loss');
  t.is(await metricValue(second.registry, 'stockroom_cache_rebuilds_total', { reason: 'new slot' }), 0, 'not as a first start');
  t.is(await metricValue(second.registry, 'stockroom_slot_losses_total', { reason: 'dropped' }), 1);
  t.is(await metricValue(second.registry, 'stockroom_backfilled_events_total', { type: 'warehouse.stock.updated' }), 2, 'the adjustment and the reservation made without a slot');
  t.deepEqual(await redis.mget(env.key('stock:A:total'), env.key('stock:B:available'), env.key('stock:B:status')), ['21', '4', 'low_stock']);
  t.deepEqual(await eventProblems(movementsAfter(db, streamedFrom), await readStream(redis, names.stream)), [], 'exactly once across the loss');

  // And the new slot streams.
  const before = await lastMovementId(db);
  await db.query(`select inventory.adjust('B', 'WH1', 10, 'receipt')`);
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  t.is(await redis.get(env.key('stock:B:status')), 'in_stock');
  const since = async () => (await readStream(redis, names.stream)).filter((e) => Number(e.event.data.movement_id) > before);
  t.true(await waitFor(async () => (await since()).length === 2, 5_000), 'events of the new slot');
  t.deepEqual(await eventProblems(movementsAfter(db, before), await since()), []);
});

test('a cache that mirrors another database is cleared and rebuilt', async (t) => {
  const env = await environment(t, 'slot_foreign', { A: { WH1: 10 }, B: { WH1: 3 } });
  const { db, redis, names, key } = env;
  const first = await env.start();
  await db.query(`select inventory.adjust('A', 'WH1', 1, 'receipt')`);
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  await first.stop();
  const eventsBefore = await redis.xlen(names.stream);
  t.is(eventsBefore, 2);

  // Control: a key the database does not know survives a restart of a cache that is its own.
  await redis.mset(key('stock:GHOST:total'), '5', key('stock:GHOST:warehouse:WH9'), '5');
  const control = await env.start();
  t.is(await metricValue(control.registry, 'stockroom_cache_rebuilds_total'), 0);
  t.is(await redis.get(key('stock:GHOST:total')), '5');
  await control.stop();

  await redis.set(key('meta:source'), '7000000000000000000/some_other_db/stockroom_cache');
  await redis.set(key('stock:A:warehouse:WH1'), '999');
  const listener = await env.start();
  t.is(await metricValue(listener.registry, 'stockroom_cache_rebuilds_total', { reason: 'redis mirrors another database' }), 1);
  t.is(await redis.exists(key('stock:GHOST:total'), key('stock:GHOST:warehouse:WH9')), 0, 'cleared: keys of the other database are gone');
  t.deepEqual(await cacheMismatches(db, redis, names.prefix), [], 'and rebuilt');
  t.is(await redis.get(key('meta:source')), await sourceIdentity(db, names.slot));
  t.is(await redis.xlen(names.stream), eventsBefore, 'the events stream is not part of the cache');
  await db.query(`select inventory.adjust('B', 'WH1', 1, 'receipt')`);
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  t.true(await waitFor(async () => (await redis.xlen(names.stream)) === eventsBefore + 2, 5_000));
});

test('a cache whose position key was lost is rebuilt at start', async (t) => {
  const env = await environment(t, 'slot_position', { A: { WH1: 10, WH2: 2 } });
  const { db, redis, names, key } = env;
  const first = await env.start();
  await db.query(`select inventory.adjust('A', 'WH1', -1, 'damaged')`);
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  await first.stop();

  // Control: with the position intact, a restart trusts the cache (a hand-edited key stays as it is).
  await redis.set(key('stock:A:warehouse:WH2'), '77');
  const control = await env.start();
  t.is(await metricValue(control.registry, 'stockroom_cache_rebuilds_total'), 0);
  t.is(await redis.get(key('stock:A:warehouse:WH2')), '77');
  await control.stop();

  await redis.del(key('meta:position'));
  const listener = await env.start();
  t.is(await metricValue(listener.registry, 'stockroom_cache_rebuilds_total', { reason: 'redis has no position' }), 1);
  t.deepEqual(await cacheMismatches(db, redis, names.prefix), [], 'rebuilt before start() returns');
  t.is(await redis.get(key('stock:A:warehouse:WH2')), '2');
  t.truthy(await redis.get(key('meta:position')));
  await db.query(`select inventory.adjust('A', 'WH2', 3, 'receipt')`);
  t.true(await waitFor(async () => (await redis.get(key('stock:A:total'))) === '14', 10_000));
});

test('a Redis that loses its data while the listener runs is rebuilt beside the stream', async (t) => {
  const env = await environment(t, 'slot_flushed', { A: { WH1: 10 }, B: { WH1: 4, WH2: 4 } });
  const { db, redis, names, key } = env;
  const listener = await env.start();
  t.true(await waitFor(() => listener.consumer.health().streaming, 10_000));
  // Like FLUSHALL, limited to this cache's keys (the Redis is shared by the test run).
  const keys = await redis.keys(`${names.prefix}*`);
  await redis.del(...keys);
  t.true(await waitFor(async () => (await cacheMismatches(db, redis, names.prefix)).length === 0, 15_000), 'rebuilt');
  t.true(await metricValue(listener.registry, 'stockroom_cache_rebuilds_total', { reason: 'redis lost its data' }) >= 1);
  t.true(await waitFor(async () => (await redis.get(key('meta:source'))) === await sourceIdentity(db, names.slot), 10_000));
  const before = await lastMovementId(db);
  await db.query(`select inventory.adjust('B', 'WH2', -1, 'damaged')`);
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  const since = async () => (await readStream(redis, names.stream)).filter((e) => Number(e.event.data.movement_id) > before);
  t.true(await waitFor(async () => (await since()).length === 2, 5_000), 'events flow into the new stream');
  t.deepEqual(await eventProblems(movementsAfter(db, before), await since()), []);
});

test('a replay of transactions Redis already has (acknowledged late) changes nothing: rows stale, events duplicates', async (t) => {
  const env = await environment(t, 'slot_replay', { A: { WH1: 20, WH2: 20 }, B: { WH1: 20 } });
  const { db, redis, names } = env;
  const first = await env.start();
  t.true(await waitFor(() => first.consumer.health().streaming, 10_000));
  // A copy of the slot at its current position: what the slot would look like
  // had the consumer crashed after writing to Redis but before acknowledging.
  const copy = `${names.slot}_copy`;
  await db.query('select pg_copy_logical_replication_slot($1, $2)', [names.slot, copy]);
  const before = await lastMovementId(db);
  await db.query(`select inventory.set_policy('A', 'WH1', null, 15)`);
  const r = await queryOne<{ id: string }>(db, `select id from inventory.reserve('r1', '[{"sku":"A","warehouse":"WH1","qty":6}]')`);
  await db.query('select inventory.confirm($1)', [r.id]);
  await db.query(`select * from inventory.transfer('A', 'WH2', 'WH1', 3, 'rebalance')`);
  await db.query(`select inventory.adjust('B', 'WH1', -5, 'damaged')`);
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  t.true(await waitFor(async () => (await redis.xlen(names.stream)) === 11, 10_000), '5 movements, 10 events and one low_stock');
  const streamBefore = await redis.xrange(names.stream, '-', '+');
  await first.stop();

  // Put the copy in the slot's place: the next consumer streams all of it again.
  t.true(await waitFor(async () => {
    try {
      await db.query('select pg_drop_replication_slot($1)', [names.slot]);
      return true;
    } catch {
      return false;
    }
  }, 10_000));
  await db.query('select pg_copy_logical_replication_slot($1, $2)', [copy, names.slot]);
  await db.query('select pg_drop_replication_slot($1)', [copy]);
  const rewound = await slotRow(db, names.slot);
  t.true(parseLsn(rewound!.confirmed_flush_lsn!) < parseLsn((await redis.get(env.key('meta:position')))!), 'the slot is behind Redis');

  const second = await env.start();
  t.is(await metricValue(second.registry, 'stockroom_cache_rebuilds_total'), 0, 'Redis is ahead of the slot, not behind: no rebuild');
  t.true(await waitFor(async () => (await metricValue(second.registry, 'stockroom_events_duplicates_total')) >= 11, 15_000),
    'every event of the replay was recognised as a duplicate');
  t.true(await metricValue(second.registry, 'stockroom_cache_stale_writes_total') >= 1, 'older row states were refused');
  t.deepEqual(await redis.xrange(names.stream, '-', '+'), streamBefore, 'nothing appended twice');
  t.deepEqual(await cacheMismatches(db, redis, names.prefix), [], 'no key moved backwards');
  t.deepEqual(await eventProblems(movementsAfter(db, before), await readStream(redis, names.stream)), []);
  // And new changes after the replay still get their events.
  await db.query(`select inventory.adjust('B', 'WH1', 1, 'receipt')`);
  t.true(await waitFor(async () => (await redis.xlen(names.stream)) === 13, 10_000));
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
});

/**
 * A product created in a transaction that is still open while the listener
 * creates its slot: the slot's start waits for it, so it commits after the
 * consumer loaded its sku catalog yet before the slot's starting point (it is
 * in the snapshot, not in the stream). Then a first receipt of that product.
 */
async function productDuringSlotCreation(t: ExecutionContext, label: string): Promise<{ env: Env; listener: TestListener; before: number }> {
  const env = await environment(t, label, { A: { WH1: 5 } });
  const { db } = env;
  const client = await db.pool.connect();
  client.on('error', () => {}); // terminated by db.close() if the test ends early
  let released = false;
  t.teardown(() => {
    if (!released) client.release();
  });
  await client.query('begin');
  await client.query(`select inventory.upsert_product('NEW', 'New product')`);
  const starting = env.start();
  const waiting = await waitFor(async () => (await db.query(`
    select 1 from pg_stat_activity
    where application_name = 'stockroom slot setup' and datname = current_database() and state = 'active'
      and query like 'CREATE_REPLICATION_SLOT%'`)).rowCount === 1, 10_000);
  if (!waiting) throw new Error('slot creation never started');
  await client.query('commit');
  client.release();
  released = true;
  const listener = await starting;
  const before = await lastMovementId(db);
  await db.query(`select inventory.adjust('NEW', 'WH1', 4, 'first receipt')`);
  return { env, listener, before };
}

test('a product committed while the slot is being created reaches the cache and the stream', async (t) => {
  const { env: { db, redis, names, key }, before } = await productDuringSlotCreation(t, 'slot_catalog_race');
  t.deepEqual(await waitForCache(db, redis, names.prefix, 20_000), []);
  t.is(await redis.get(key('stock:NEW:total')), '4');
  t.true(await waitFor(async () => (await redis.xlen(names.stream)) === 2, 10_000));
  t.deepEqual(await eventProblems(movementsAfter(db, before), await readStream(redis, names.stream)), []);
});

test('a product committed while the slot is being created does not break the replication session', async (t) => {
  // The id → sku catalog is loaded after the slot exists: a product committed
  // while the slot is being created is in the catalog or in the stream, so its
  // first stock change does not fail the session.
  const { env: { db, redis, names }, listener } = await productDuringSlotCreation(t, 'slot_catalog_race2');
  t.deepEqual(await waitForCache(db, redis, names.prefix, 20_000), []);
  t.is(await metricValue(listener.registry, 'stockroom_replication_reconnects_total'), 0, 'the session did not fail on a sku it did not know');
});

test('a cache cleared because it mirrored another database still gets the events of this one', async (t) => {
  // clear() keeps the events stream, whose top id came from the other
  // database's commit LSNs; the takeover lifts this database's ids above it
  // (meta:stream_offset), so new events are not taken for replays.
  const env = await environment(t, 'slot_foreign_stream', { A: { WH1: 10 } });
  const { db, redis, names, key } = env;
  // The Redis last mirrored another database (another cluster, further along in its WAL).
  const otherLsn = parseLsn('FFFF/0');
  await redis.set(key('meta:source'), '7000000000000000000/other_db/stockroom_cache');
  await redis.set(key('meta:position'), 'FFFF/0');
  await redis.xadd(names.stream, `${otherLsn}-0`, 'type', 'warehouse.stock.updated', 'id', '1:updated', 'subject', 'X/WH1', 'event', '{"data":{"movement_id":1}}');
  const listener = await env.start();
  t.is(await redis.get(key('meta:source')), await sourceIdentity(db, names.slot), 'the cache was taken over');
  t.deepEqual(await cacheMismatches(db, redis, names.prefix), []);

  const before = await lastMovementId(db);
  await db.query(`select inventory.adjust('A', 'WH1', -1, 'damaged')`);
  t.deepEqual(await waitForCache(db, redis, names.prefix), [], 'the keys follow');
  const appended = await waitFor(async () => (await readStream(redis, names.stream)).some((e) => e.id === `${before + 1}:updated`), 5_000);
  t.true(appended, 'the events of the movement are in the stream');
  t.is(await metricValue(listener.registry, 'stockroom_events_duplicates_total'), 0, 'nothing of this database was ever appended before');
});
