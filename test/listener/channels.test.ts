// Availability per sales channel in the cache (README, "Sales channels"):
// `catalog:stock:<sku>:channels`, one field per channel, kept by the stream
// as stock moves and rewritten for every sku when a channel's warehouses
// change (while the consumer runs, and while it was stopped); a kit's by the
// kit rule over the channel's warehouses. waitForCache holds every hash to
// inventory.channel_stock's total row. verify reports and repairs a hash
// edited by hand. Without channels there are no hashes.
import test from 'ava';
import { cacheKeys } from '../../src/cache/keys.ts';
import { verifyCache } from '../../src/cache/verify.ts';
import { CacheWriter } from '../../src/cache/writer.ts';
import { testRedis, waitFor, waitForCache } from '../helpers/cache.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { setupCatalog } from '../helpers/inventory.ts';
import { startTestListener } from '../helpers/listener.ts';

test('each sku\'s channels hash follows the stream, a change of a channel\'s warehouses and a restart; kits by the kit rule; verify repairs it', async (t) => {
  t.timeout(90_000);
  const db = await openTestDatabase('channel_keys');
  const redis = testRedis();
  t.teardown(async () => {
    redis.disconnect();
    await db.close();
  });
  await setupCatalog(db, { LENS: { WH1: 5, WH2: 7, WH3: 11 }, CAP: { WH1: 4, WH2: 1, WH3: 20 }, MUG: { WH3: 9 } });
  await db.query(`select inventory.upsert_product('KIT')`);
  await db.query(`select inventory.set_kit('KIT', '[{"sku": "LENS", "qty": 1}, {"sku": "CAP", "qty": 2}]')`);
  let listener = await startTestListener(db.url, { label: 'channel_keys' });
  const names = listener.names;
  t.teardown(() => listener.stop());
  const keys = cacheKeys(names.prefix);
  const channelsOf = async (sku: string) => ({ ...(await redis.hgetall(keys.channels(sku))) });
  const settled = async () => t.deepEqual(await waitForCache(db, redis, names.prefix), []);

  await settled();
  t.deepEqual(await channelsOf('LENS'), {}, 'no channels yet: no hash');

  // Channels defined while the consumer streams: every sku gets its hash, though no stock row changed.
  await db.query(`select inventory.upsert_channel('web', 'Web', 'PRIORITY')`);
  await db.query(`select inventory.set_channel_warehouses('web', '[{"warehouse": "WH1"}, {"warehouse": "WH2"}]')`);
  await db.query(`select inventory.upsert_channel('retail', 'Stores', 'PRIORITY')`);
  await db.query(`select inventory.set_channel_warehouses('retail', '[{"warehouse": "WH3"}]')`);
  await settled();
  t.deepEqual(await channelsOf('LENS'), { web: '12', retail: '11' });
  t.deepEqual(await channelsOf('MUG'), { web: '0', retail: '9' });
  // KIT through web: min(LENS 12 / 1, CAP 5 / 2) = 2, though no single web warehouse holds a whole kit beyond WH1's 2.
  t.deepEqual(await channelsOf('KIT'), { web: '2', retail: '10' });

  // Stock moves: a reserve through a channel, a receipt elsewhere.
  await db.query(`select inventory.reserve('o1', '[{"sku": "LENS", "qty": 3, "channel": "web"}]'::jsonb)`);
  await db.query(`select inventory.adjust('CAP', 'WH2', 5, 'delivery')`);
  await settled();
  t.deepEqual(await channelsOf('LENS'), { web: '9', retail: '11' });
  t.deepEqual(await channelsOf('KIT'), { web: '5', retail: '10' });

  // A channel's warehouses change: skus whose rows did not move are rewritten too.
  await db.query(`select inventory.set_channel_warehouses('web', '[{"warehouse": "WH2"}, {"warehouse": "WH3"}]')`);
  await settled();
  t.deepEqual(await channelsOf('MUG'), { web: '9', retail: '9' });

  // Changed while the consumer was stopped: rewritten when it starts again.
  await listener.stop();
  await db.query(`select inventory.set_channel_warehouses('retail', '[{"warehouse": "WH1"}]')`);
  await db.query(`select inventory.upsert_channel('market', 'Marketplace', 'MOST_STOCK')`);
  listener = await startTestListener(db.url, { names });
  await settled();
  t.deepEqual(await channelsOf('MUG'), { web: '9', retail: '0', market: '0' });
  // The replayed changes' rewrite ends before their position is acknowledged, and a later batch's after it:
  // wait for one, so the edits below are not raced by the rewrite.
  await db.query(`select inventory.adjust('MUG', 'WH3', 1, 'found one')`);
  const { lsn } = (await db.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')).rows[0]!;
  t.true(await waitFor(async () => (await db.query<{ done: boolean }>(
    'select confirmed_flush_lsn >= $1::pg_lsn as done from pg_replication_slots where slot_name = $2', [lsn, names.slot])).rows[0]?.done === true, 20_000));

  // A hash edited by hand: verify names it, and --fix rewrites it.
  await redis.hset(keys.channels('LENS'), 'web', '999');
  await redis.hdel(keys.channels('KIT'), 'retail');
  const writer = new CacheWriter(redis, keys, { name: names.stream, maxLength: 1000 });
  const found = await verifyCache({ databaseUrl: db.url, redis, writer, keys, fix: false });
  t.deepEqual(found.mismatches.map((m) => m.key).sort(), [keys.channels('KIT'), keys.channels('LENS')]);
  t.like(found.mismatches.find((m) => m.sku === 'LENS'), { postgres: 'market=0 retail=2 web=18', redis: 'market=0 retail=2 web=999' });
  t.like(await verifyCache({ databaseUrl: db.url, redis, writer, keys, fix: true }), { driftedSkus: 2, fixedSkus: 2 });
  t.like(await verifyCache({ databaseUrl: db.url, redis, writer, keys, fix: false }), { driftedSkus: 0 });
  await settled();

  // Every channel deleted (by hand: there is no function for it): the hashes go with them.
  await db.query('delete from inventory.channels');
  t.true(await waitFor(async () => (await redis.exists(keys.channels('LENS'), keys.channels('MUG'), keys.channels('KIT'))) === 0, 10_000));
  t.like(await verifyCache({ databaseUrl: db.url, redis, writer, keys, fix: false }), { driftedSkus: 0 });
});
