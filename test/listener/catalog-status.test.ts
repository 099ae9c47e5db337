// What the catalog shows beyond plain stock, through the change stream:
// - the status a storefront shows for a sku that sells beyond what it has
//   (README, "Catalog status"): `backorder` and `preorder` with its date, as
//   policies, reserves, receipts and the end of a preorder change the rows;
//   cachedStock answers the same from the cache and from PostgreSQL;
// - units in quantity states: out of available, in `:unavailable`, with
//   events that say which state moved;
// - the upgrade of a cache written by the earlier layout.
import test from 'ava';
import { Registry } from 'prom-client';
import { CACHE_LAYOUT, cacheKeys } from '../../src/cache/keys.ts';
import { CacheWriter } from '../../src/cache/writer.ts';
import { CachedStockReader, createCacheMetrics } from '../../src/graphql/cached-stock.ts';
import { readStream, testRedis, uniqueNames, waitForCache } from '../helpers/cache.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { setupCatalog } from '../helpers/inventory.ts';
import { startTestListener } from '../helpers/listener.ts';

test('status shows backorder and preorder (with the earliest preorder date) through the stream, and cachedStock agrees', async (t) => {
  t.timeout(60_000);
  const db = await openTestDatabase('backorder_status');
  const redis = testRedis();
  t.teardown(async () => {
    redis.disconnect();
    await db.close();
  });
  await setupCatalog(db, { GAME: { WH1: 2 }, BOOK: { WH1: 0, WH2: 0 } });
  const listener = await startTestListener(db.url, { label: 'backorder_status' });
  t.teardown(() => listener.stop());
  const keys = cacheKeys(listener.names.prefix);
  const reader = new CachedStockReader({
    redis, pool: db.pool, writer: new CacheWriter(redis, keys, { name: listener.names.stream, maxLength: 1000 }),
    metrics: createCacheMetrics(new Registry()), readTimeoutMs: 1_000,
  });
  /** Waits for the cache to equal PostgreSQL (every key, by the SQL statement of the rule), then reads the sku's status and date. */
  const shown = async (sku: string) => {
    t.deepEqual(await waitForCache(db, redis, listener.names.prefix), []);
    const [status, until] = await redis.mget(keys.status(sku), keys.preorderUntil(sku));
    return { status, until };
  };
  const reserve = (ref: string, sku: string, warehouse: string, qty: number) =>
    db.query('select inventory.reserve($1, $2::jsonb)', [ref, JSON.stringify([{ sku, warehouse, qty }])]);

  await db.query(`select inventory.set_backorder_policy('GAME', 'WH1', 'BACKORDER', 3)`);
  t.deepEqual(await shown('GAME'), { status: 'in_stock', until: null }, 'available first');
  await reserve('o1', 'GAME', 'WH1', 2);
  t.deepEqual(await shown('GAME'), { status: 'backorder', until: null }, 'nothing available, room to backorder');
  await reserve('o2', 'GAME', 'WH1', 3);
  t.deepEqual(await shown('GAME'), { status: 'out_of_stock', until: null }, 'the limit reached');
  await db.query(`select inventory.adjust('GAME', 'WH1', 10, 'delivery')`);
  t.deepEqual(await shown('GAME'), { status: 'in_stock', until: null }, 'the delivery fills the queue and the rest is available');

  // Two preorder rows: the key says when the earliest with room ends.
  await db.query(`select inventory.set_backorder_policy('BOOK', 'WH1', 'PREORDER', 2, '2031-05-01 10:00:00.75+00')`);
  await db.query(`select inventory.set_backorder_policy('BOOK', 'WH2', 'PREORDER', 1, '2030-03-01 08:00:00+00')`);
  t.deepEqual(await shown('BOOK'), { status: 'preorder', until: '2030-03-01T08:00:00Z' });
  const [fromCache] = await reader.getMany(['BOOK']);
  t.like(fromCache, { status: 'preorder', preorderUntil: '2030-03-01T08:00:00Z', source: 'cache' });
  await reserve('p1', 'BOOK', 'WH2', 1);
  t.deepEqual(await shown('BOOK'), { status: 'preorder', until: '2031-05-01T10:00:00Z' }, 'WH2 has no room left: WH1\'s date');
  await db.query(`select inventory.adjust('BOOK', 'WH2', 4, 'first copies')`);
  t.deepEqual(await shown('BOOK'), { status: 'in_stock', until: '2030-03-01T08:00:00Z' }, 'available again; the fill gave WH2 its room back');

  // The preorder ends: the job's change reaches the cache.
  await db.query(`update inventory.stock_levels s set preorder_until = now() - interval '1 second'
                  from inventory.products p where p.id = s.product_id and p.sku = 'BOOK'`);
  await db.query(`select inventory.end_preorders()`);
  t.deepEqual(await shown('BOOK'), { status: 'in_stock', until: null });

  // Answered from PostgreSQL when the cache lost the sku: the same figures.
  await reserve('p2', 'BOOK', 'WH2', 3);
  await db.query(`select inventory.set_backorder_policy('BOOK', 'WH1', 'PREORDER', 2, '2031-05-01 10:00:00+00')`);
  t.deepEqual(await shown('BOOK'), { status: 'preorder', until: '2031-05-01T10:00:00Z' });
  await redis.del(keys.total('BOOK'));
  const [fromDatabase] = await reader.getMany(['BOOK']);
  t.like(fromDatabase, { status: 'preorder', preorderUntil: '2031-05-01T10:00:00Z', source: 'database' });
});

test('a cache written by the layout before backorders is rebuilt in place on start: every entry rewritten, the stream kept', async (t) => {
  t.timeout(60_000);
  const db = await openTestDatabase('layout_upgrade');
  const redis = testRedis();
  t.teardown(async () => {
    redis.disconnect();
    await db.close();
  });
  await setupCatalog(db, { A: { WH1: 5, WH2: 3 }, B: { WH1: 1 } });
  const names = uniqueNames('layout_upgrade');
  const first = await startTestListener(db.url, { names });
  await db.query(`select inventory.adjust('A', 'WH1', 2, 'before the upgrade')`);
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  await first.stop();
  const keys = cacheKeys(names.prefix);
  const streamLength = await redis.xlen(names.stream);
  const firstId = (await redis.xrange(names.stream, '-', '+', 'COUNT', 1))[0]?.[0];
  t.true(streamLength > 0);

  // What the earlier layout wrote: five-field entries, three-field sums, no preorder key, a marker without a layout.
  for (const sku of ['A', 'B']) {
    for (const [code, entry] of Object.entries(await redis.hgetall(keys.rows(sku)))) {
      await redis.hset(keys.rows(sku), code, entry.split(':').slice(0, 5).join(':'));
    }
    const sums = await redis.get(keys.sums(sku));
    await redis.set(keys.sums(sku), sums!.split(':').slice(0, 3).join(':'));
  }
  const marker = await redis.get(keys.source);
  t.true(marker!.endsWith(`#layout${CACHE_LAYOUT}`));
  await redis.set(keys.source, marker!.replace(/#layout\d+$/, ''));
  await db.query(`select inventory.set_backorder_policy('B', 'WH1', 'BACKORDER', 4)`); // while the consumer is down
  await db.query(`select inventory.reserve('b1', '[{"sku": "B", "warehouse": "WH1", "qty": 1}]')`);

  const second = await startTestListener(db.url, { names });
  t.teardown(() => second.stop());
  t.deepEqual(await waitForCache(db, redis, names.prefix), []);
  t.is(await redis.get(keys.source), marker, 'marked with today\'s layout');
  t.is(await redis.get(keys.status('B')), 'backorder');
  for (const entry of Object.values(await redis.hgetall(keys.rows('A')))) t.is(entry.split(':').length, 8, `entry ${entry} rewritten`);
  // The rebuild reads PostgreSQL as it is now; the events of the reserve made while the consumer was down follow from the slot.
  const deadline = Date.now() + 10_000;
  while (await redis.xlen(names.stream) <= streamLength && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  t.true(await redis.xlen(names.stream) > streamLength, 'the stream kept its events and goes on');
  t.is((await redis.xrange(names.stream, '-', '+', 'COUNT', 1))[0]?.[0], firstId, 'the events from before the upgrade are still there');
});

test('units moved into a quantity state leave the cached available and show in :unavailable; their events say which state moved', async (t) => {
  t.timeout(60_000);
  const db = await openTestDatabase('states_stream');
  const redis = testRedis();
  t.teardown(async () => {
    redis.disconnect();
    await db.close();
  });
  await setupCatalog(db, { TV: { WH1: 5, WH2: 2 } });
  const listener = await startTestListener(db.url, { label: 'states_stream' });
  t.teardown(() => listener.stop());
  const keys = cacheKeys(listener.names.prefix);
  await db.query(`select inventory.move_stock_state('TV', 'WH1', 2, 'dropped', to_state => 'DAMAGED')`);
  await db.query(`select inventory.adjust_state('TV', 'WH2', 'QUALITY_CONTROL', 1, 'return RMA-3')`);
  t.deepEqual(await waitForCache(db, redis, listener.names.prefix), [], 'every key as the SQL rule says, :unavailable included');
  t.deepEqual(await redis.mget(keys.total('TV'), keys.available('TV'), keys.unavailable('TV'), keys.warehouse('TV', 'WH1')), ['8', '5', '3', '3']);
  await db.query(`select inventory.move_stock_state('TV', 'WH1', 2, 'repaired', from_state => 'DAMAGED')`);
  await db.query(`select inventory.reserve('o1', '[{"sku": "TV", "warehouse": "WH1", "qty": 5}]')`);
  t.deepEqual(await waitForCache(db, redis, listener.names.prefix), []);
  t.deepEqual(await redis.mget(keys.available('TV'), keys.unavailable('TV'), keys.status('TV')), ['2', '1', 'in_stock']);

  const deadline = Date.now() + 10_000;
  let events = await readStream(redis, listener.names.stream);
  while (events.filter((e) => e.type === 'warehouse.stock.state_changed').length < 2 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    events = await readStream(redis, listener.names.stream);
  }
  const moves = events.filter((e) => e.type === 'warehouse.stock.state_changed').map((e) => e.event.data);
  t.like(moves[0], { kind: 'STATE_MOVE', state: { name: 'DAMAGED', delta: 2 }, old: { on_hand: 5, available: 5 }, new: { on_hand: 5, available: 3 } });
  t.like(moves[1], { state: { name: 'DAMAGED', delta: -2 }, old: { available: 3 }, new: { available: 5 } });
  const receipt = events.find((e) => e.type === 'warehouse.stock.adjusted' && (e.event.data as { state?: unknown }).state !== undefined)?.event.data;
  t.like(receipt, { kind: 'RECEIVE', warehouse: 'WH2', state: { name: 'QUALITY_CONTROL', delta: 1 }, old: { on_hand: 2, available: 2 }, new: { on_hand: 3, available: 2 } });
});
