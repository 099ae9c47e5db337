// Partitioned consumers (`stockroom start --listener --partition i/N`): each
// streams only its share of the skus, through a slot, publications and an
// events stream of its own; in parallel they give exactly what one consumer
// gives (every key equal to PostgreSQL, every movement's events once), and a
// transaction touching skus of both partitions is split between them. Kits
// whose components span both partitions stay exact too (each consumer
// recomputes the kits of its components; definitions reach both).
import test from 'ava';
import { inPartitionSql } from '../../src/partition.ts';
import { eventProblems, readStream, testRedis, uniqueNames, waitFor, waitForCache, type StreamEntry } from '../helpers/cache.ts';
import { openTestDatabase } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { setupCatalog } from '../helpers/inventory.ts';
import { startTestListener } from '../helpers/listener.ts';
import { testServers } from '../helpers/environment.ts';
import { cliEnv, runCli } from '../cli/run-cli.ts';

const SKUS = Array.from({ length: 40 }, (_, i) => `PART-${String(i).padStart(2, '0')}`);

/** Movement ids of products in partition `index` of 2, by the same SQL the publications filter with. */
async function movementsOf(db: Queryable, index: number): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>(`select id::text from inventory.movements m where ${inPartitionSql('m.product_id', { index, count: 2 })}`);
  return new Set(rows.map((r) => r.id));
}

test('two partitions stream their own skus in parallel: together exactly what one consumer gives', async (t) => {
  t.timeout(90_000);
  const db = await openTestDatabase('partitions');
  const redis = testRedis();
  const names = uniqueNames('partitions');
  t.teardown(async () => {
    redis.disconnect();
    await db.close();
  });
  await setupCatalog(db, Object.fromEntries(SKUS.map((sku) => [sku, { WH1: 100, WH2: 50 }])));
  const kitOf = (skus: string[], qty: number) => JSON.stringify(skus.map((sku) => ({ sku, qty })));
  for (const kit of ['KIT-A', 'KIT-B']) await db.query(`select inventory.upsert_product($1, $1)`, [kit]);
  // KIT-A's components: two skus of each partition (product ids are random, so the first four may share one).
  const { rows: byPartition } = await db.query<{ sku: string; first: boolean }>(`
    select p.sku, ${inPartitionSql('p.id', { index: 1, count: 2 })} as first from inventory.products p where p.sku = any($1) order by p.sku`, [SKUS]);
  const kitA = [...byPartition.filter((r) => r.first).slice(0, 2), ...byPartition.filter((r) => !r.first).slice(0, 2)].map((r) => r.sku);
  t.is(kitA.length, 4, 'KIT-A has components in both partitions');
  await db.query(`select inventory.set_kit('KIT-A', $1::jsonb, 40)`, [kitOf(kitA, 2)]);

  const first = await startTestListener(db.url, { names, partition: '1/2' });
  t.teardown(() => first.stop());
  const second = await startTestListener(db.url, { names, partition: '2/2' });
  t.teardown(() => second.stop());
  t.true(await waitFor(() => first.consumer.health().streaming && second.consumer.health().streaming, 20_000), 'both partitions stream');

  // Each partition has its own slot and publications, with row filters.
  const { rows: slots } = await db.query<{ slot_name: string; active: boolean }>(
    `select slot_name, active from pg_replication_slots where slot_name like $1 order by slot_name`, [`${names.slot}%`]);
  t.deepEqual(slots, [{ slot_name: `${names.slot}_p1of2`, active: true }, { slot_name: `${names.slot}_p2of2`, active: true }]);
  const { rows: filters } = await db.query<{ pubname: string; tablename: string; filtered: boolean }>(`
    select pubname, tablename, rowfilter is not null as filtered from pg_publication_tables
    where pubname like $1 order by pubname, tablename`, [`${names.publication}_p1of2%`]);
  t.deepEqual(filters.map((f) => `${f.pubname.slice(names.publication.length)} ${f.tablename} ${f.filtered ? 'filtered' : 'all'}`), [
    '_p1of2 channel_warehouses all', '_p1of2 channels all',
    '_p1of2 kit_components all', '_p1of2 kits all', '_p1of2 products all', '_p1of2 stock_levels filtered', '_p1of2 warehouses all',
    '_p1of2_ledger movements filtered',
  ]);

  // Traffic: single-sku changes, and baskets and transfers across both partitions in one transaction.
  for (let i = 0; i < 60; i++) {
    const a = SKUS[i % SKUS.length]!;
    const b = SKUS[(i * 7 + 3) % SKUS.length]!;
    await db.query(`select inventory.adjust($1, 'WH1', $2, 'count')`, [a, (i % 4) - 2 || 3]);
    await db.query(`select inventory.reserve($1, $2::jsonb)`, [`order-${i}`, JSON.stringify([{ sku: a, warehouse: 'WH2', qty: 1 }, { sku: b, warehouse: 'WH1', qty: 2 }])]);
    if (i % 6 === 0) await db.query(`select inventory.transfer($1, 'WH1', 'WH2', 3, 'rebalance')`, [b]);
    if (i % 5 === 0) await db.query(`select inventory.reserve($1, $2::jsonb)`, [`kit-${i}`, JSON.stringify([{ sku: 'KIT-A', qty: 1 }])]);
    // KIT-B defined mid-traffic, then redefined onto other components (both partitions see the definitions).
    if (i === 20) await db.query(`select inventory.set_kit('KIT-B', $1::jsonb)`, [kitOf(SKUS.slice(4, 8), 1)]);
    if (i === 40) await db.query(`select inventory.set_kit('KIT-B', $1::jsonb, 5)`, [kitOf([SKUS[0]!, ...SKUS.slice(6, 10)], 3)]);
    // A channel, then its warehouses changed: each partition rewrites the channels hashes of its own skus.
    if (i === 10) {
      await db.query(`select inventory.upsert_channel('web')`);
      await db.query(`select inventory.set_channel_warehouses('web', '[{"warehouse": "WH2"}]')`);
    }
    if (i === 30) await db.query(`select inventory.set_channel_warehouses('web', '[{"warehouse": "WH1"}, {"warehouse": "WH2"}]')`);
  }

  t.deepEqual(await waitForCache(db, redis, names.prefix, 20_000), [], 'every key equals PostgreSQL, the kits\' and the channels hashes too');
  t.not(await redis.get(`${names.prefix}stock:KIT-B:available`), null);
  const streams = [await readStream(redis, `${names.stream}:p1of2`), await readStream(redis, `${names.stream}:p2of2`)];
  let problems: string[] = [];
  await waitFor(async () => {
    streams[0] = await readStream(redis, `${names.stream}:p1of2`);
    streams[1] = await readStream(redis, `${names.stream}:p2of2`);
    // Every movement made after the listeners started (the receipts were in their snapshots).
    problems = await eventProblems({ query: (text, values) => db.query(text.replace('from inventory.movements', "from inventory.movements where reason is distinct from 'receipt'"), values) },
      [...streams[0], ...streams[1]]);
    return problems.length === 0;
  }, 15_000, 200);
  t.deepEqual(problems, [], 'one warehouse.stock.updated and one typed event per movement, across the two streams');

  // Each stream holds only its own partition's movements, and both have a fair share.
  for (const [i, entries] of streams.entries()) {
    const own = await movementsOf(db, i + 1);
    const foreign = entries.filter((e: StreamEntry) => !own.has(String(e.event.data.movement_id)));
    t.deepEqual(foreign.map((e) => e.id), [], `partition ${i + 1}'s stream has only its movements`);
    t.true(entries.length > 50, `partition ${i + 1} streamed ${entries.length} events`);
  }
  t.true(await first.metric('stockroom_cache_changes_applied_total') > 0 && await second.metric('stockroom_cache_changes_applied_total') > 0);
  t.is(await redis.exists(`${names.prefix}meta:p1of2:position`, `${names.prefix}meta:p2of2:position`), 2, 'each partition records its own position');

  // `stockroom slot` shows every partition's slot, consumer and lag; it exits 4 once one has no consumer.
  const env = cliEnv({
    DATABASE_URL: db.url, REDIS_URL: testServers().redisUrl, STOCKROOM_CACHE_PREFIX: names.prefix,
    STOCKROOM_SLOT: names.slot, STOCKROOM_PUBLICATION: names.publication, STOCKROOM_STREAM: names.stream,
  });
  const shown = await runCli(['slot', '--json', '--max-lag-bytes', String(2 ** 40)], env);
  t.is(shown.code, 0, shown.stderr);
  const report = JSON.parse(shown.stdout) as { status: string; slots: Array<{ partition: string; slot: string; status: string; consumer: unknown; redisAppliedLsn: string }> };
  t.is(report.status, 'ok');
  t.deepEqual(report.slots.map((s) => [s.partition, s.slot, s.status]), [['1/2', `${names.slot}_p1of2`, 'ok'], ['2/2', `${names.slot}_p2of2`, 'ok']]);
  t.true(report.slots.every((s) => s.consumer !== null && /^[0-9A-F]+\/[0-9A-F]+$/.test(s.redisAppliedLsn)));
  await second.stop();
  const table = await runCli(['slot'], env);
  t.is(table.code, 4, table.stderr);
  t.regex(table.stdout, /^partition\s+slot\s+status/m);
  t.regex(table.stdout, new RegExp(`^2/2\\s+${names.slot}_p2of2\\s+IDLE`, 'm'));
  t.regex(table.stderr, /start the listener \(stockroom start --listener --partition 2\/2\)/);
});
