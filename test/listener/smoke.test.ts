import test from 'ava';
import { openTestDatabase } from '../helpers/database.ts';
import { cacheMismatches, eventProblems, readStream, testRedis, waitForCache } from '../helpers/cache.ts';
import { setupCatalog } from '../helpers/inventory.ts';
import { startTestListener } from '../helpers/listener.ts';

test('changes made through the SQL API reach Redis keys and the events stream', async (t) => {
  const db = await openTestDatabase('listener_smoke');
  const redis = testRedis();
  await setupCatalog(db, { A: { WH1: 10, WH2: 5 } });
  const listener = await startTestListener(db.url);
  t.teardown(async () => {
    await listener.stop();
    redis.disconnect();
    await db.close();
  });
  t.deepEqual(await cacheMismatches(db, redis, listener.names.prefix), [], 'the first build matches Postgres');
  await db.query(`select inventory.reserve('o1', '[{"sku":"A","warehouse":"WH1","qty":3}]')`);
  await db.query(`select inventory.adjust('A', 'WH2', -5, 'damaged')`);
  t.deepEqual(await waitForCache(db, redis, listener.names.prefix), []);
  t.is(await redis.get(`${listener.names.prefix}stock:A:available`), '7');
  const entries = await readStream(redis, listener.names.stream);
  t.deepEqual(await eventProblems(db, entries.filter((e) => ['RESERVE', 'ADJUST'].includes(String(e.event.data.kind)))), [
    'movement 1 (RECEIVE): 0 updated events', 'movement 1 (RECEIVE): 0 typed events',
    'movement 2 (RECEIVE): 0 updated events', 'movement 2 (RECEIVE): 0 typed events',
  ], 'receipts made before the slot existed are in the snapshot, not the stream');
  t.deepEqual(entries.map((e) => e.type), [
    'warehouse.stock.updated', 'warehouse.stock.reserved', 'warehouse.stock.updated', 'warehouse.stock.adjusted',
  ]);
});
