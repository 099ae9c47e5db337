// Transfers in transit on the change stream: each TRANSIT_OUT, TRANSIT_IN and
// TRANSIT_LOST movement gives one warehouse.stock.updated and one typed event
// (warehouse.stock.transit_shipped, .transit_received, .transit_lost) carrying
// the shipment's reference and data.transit.delta; the cache follows the rows.
import test from 'ava';
import { openTestDatabase } from '../helpers/database.ts';
import { cacheMismatches, eventProblems, readStream, testRedis, waitFor, waitForCache } from '../helpers/cache.ts';
import { queryOne, setupCatalog } from '../helpers/inventory.ts';
import { startTestListener } from '../helpers/listener.ts';

test('shipping, receiving and writing off a transfer reach Redis and the events stream, one typed event per movement', async (t) => {
  const db = await openTestDatabase('listener_transit');
  const redis = testRedis();
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 1 } });
  const listener = await startTestListener(db.url, { label: 'transit' });
  t.teardown(async () => {
    await listener.stop();
    redis.disconnect();
    await db.close();
  });
  t.deepEqual(await cacheMismatches(db, redis, listener.names.prefix), [], 'the first build matches Postgres');
  const { id, reference } = await queryOne<{ id: string; reference: string }>(db,
    `select id, reference from inventory.ship_transfer('A', 'WH1', 'WH2', 6, 'rebalance')`);
  await db.query(`select inventory.receive_transfer($1, 4, 'pallet 1')`, [id]);
  await db.query(`select inventory.write_off_transfer($1, 'pallet 2 lost')`, [id]);
  t.deepEqual(await waitForCache(db, redis, listener.names.prefix), []);
  t.is(await redis.get(`${listener.names.prefix}stock:A:warehouse:WH1`), '4');
  t.is(await redis.get(`${listener.names.prefix}stock:A:warehouse:WH2`), '4');
  t.is(await redis.get(`${listener.names.prefix}stock:A:total`), '8', 'what is in transit or lost is on hand nowhere');

  const transit = (e: { event: { data: Record<string, unknown> } }) => String(e.event.data.kind).startsWith('TRANSIT_');
  t.true(await waitFor(async () => (await readStream(redis, listener.names.stream)).filter(transit).length === 6, 10_000));
  const entries = (await readStream(redis, listener.names.stream)).filter(transit);
  t.deepEqual(entries.map((e) => [e.type, e.subject, e.event.data.kind, e.event.data.reference, e.event.data.transit]), [
    ['warehouse.stock.updated', 'A/WH1', 'TRANSIT_OUT', reference, { delta: 6 }],
    ['warehouse.stock.transit_shipped', 'A/WH1', 'TRANSIT_OUT', reference, { delta: 6 }],
    ['warehouse.stock.updated', 'A/WH2', 'TRANSIT_IN', reference, { delta: -4 }],
    ['warehouse.stock.transit_received', 'A/WH2', 'TRANSIT_IN', reference, { delta: -4 }],
    ['warehouse.stock.updated', 'A/WH1', 'TRANSIT_LOST', reference, { delta: -2 }],
    ['warehouse.stock.transit_lost', 'A/WH1', 'TRANSIT_LOST', reference, { delta: -2 }],
  ]);
  const lost = entries.find((e) => e.type === 'warehouse.stock.transit_lost')!;
  t.deepEqual([lost.event.data.old, lost.event.data.new], [{ on_hand: 4, reserved: 0, available: 4 }, { on_hand: 4, reserved: 0, available: 4 }],
    'a write-off changes no on_hand: its quantity is data.transit.delta');
  t.regex(lost.id, /^\d+:transit_lost$/);
  // Exactly one updated and one typed event per movement, the receipts before the slot aside.
  const problems = await eventProblems(db, entries);
  t.deepEqual(problems.filter((p) => !/\(RECEIVE\)/.test(p)), []);
});
