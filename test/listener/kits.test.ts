// Kits in the catalog cache: a kit's keys (per warehouse, total, available,
// status, low_stock) stay equal to inventory.kit_stock() through the change
// stream while its components (and the kit itself, through reservations of
// it) change concurrently and while it is redefined; rebuild, verify and its
// repair, resync and cachedStock see kits the same way.
import test from 'ava';
import { Registry } from 'prom-client';
import { cacheKeys } from '../../src/cache/keys.ts';
import { rebuildCache } from '../../src/cache/rebuild.ts';
import { verifyCache } from '../../src/cache/verify.ts';
import { CacheWriter } from '../../src/cache/writer.ts';
import { CachedStockReader, createCacheMetrics } from '../../src/graphql/cached-stock.ts';
import { resyncSku } from '../../src/listener/resync.ts';
import { cacheMismatches, testRedis, uniqueNames, waitForCache } from '../helpers/cache.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { setupCatalog } from '../helpers/inventory.ts';
import { startTestListener } from '../helpers/listener.ts';
import { seededRandom } from './consumer-process.ts';

const COMPONENTS = ['CA', 'CB', 'CC'];
const WAREHOUSES = ['WH1', 'WH2'];

/** Two kits sharing CB, one with a threshold; CC only in WH2 at first (a warehouse where a component has no row). */
async function kitCatalog(db: { query(text: string, values?: unknown[]): Promise<unknown> }): Promise<void> {
  await setupCatalog(db as never, { CA: { WH1: 30, WH2: 12 }, CB: { WH1: 40, WH2: 25 }, CC: { WH2: 20 }, K1: {}, K2: {} });
  await db.query(`select inventory.set_kit('K1', '[{"sku": "CA", "qty": 1}, {"sku": "CB", "qty": 2}]', 3)`);
  await db.query(`select inventory.set_kit('K2', '[{"sku": "CB", "qty": 1}, {"sku": "CC", "qty": 3}]')`);
}

const EXPECTED = new Set(['IV001', 'IV002', 'IV003']);

test('kit keys follow kit_stock() through random concurrent component and kit changes and a redefinition', async (t) => {
  t.timeout(90_000);
  const db = await openTestDatabase('kits_stream');
  const redis = testRedis();
  t.teardown(async () => {
    redis.disconnect();
    await db.close();
  });
  await kitCatalog(db);
  const listener = await startTestListener(db.url, { label: 'kits_stream' });
  t.teardown(() => listener.stop());
  const { prefix } = listener.names;
  t.deepEqual(await cacheMismatches(db, redis, prefix), [], 'the first build writes the kits');
  t.is(await redis.get(`${prefix}stock:K1:warehouse:WH1`), '20', 'K1 in WH1: min(CA 30/1, CB 40/2)');

  const tally = new Map<string, number>();
  const traffic = async (seed: number, ops: number) => {
    const rand = seededRandom(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const held: string[] = [];
    const client = await db.pool.connect();
    try {
      for (let i = 0; i < ops; i++) {
        const r = rand();
        let op = '';
        try {
          if (r < 0.25) {
            op = 'reserve kit';
            const { rows } = await client.query<{ id: string }>('select id from inventory.reserve($1, $2::jsonb)',
              [`k-${seed}-${i}`, JSON.stringify([{ sku: pick(['K1', 'K2']), ...(rand() < 0.5 ? { warehouse: pick(WAREHOUSES) } : {}), qty: 1 + Math.floor(rand() * 2) }])]);
            held.push(rows[0]!.id);
          } else if (r < 0.4) {
            op = 'reserve component';
            const { rows } = await client.query<{ id: string }>('select id from inventory.reserve($1, $2::jsonb)',
              [`c-${seed}-${i}`, JSON.stringify([{ sku: pick(COMPONENTS), warehouse: pick(WAREHOUSES), qty: 1 + Math.floor(rand() * 3) }])]);
            held.push(rows[0]!.id);
          } else if (r < 0.5) {
            op = 'confirm';
            const id = held.shift();
            if (id) await client.query('select inventory.confirm($1)', [id]);
          } else if (r < 0.6) {
            op = 'release';
            const id = held.pop();
            if (id) await client.query('select inventory.release($1)', [id]);
          } else if (r < 0.78) {
            op = 'adjust';
            await client.query(`select inventory.adjust($1, $2, $3, 'bench')`, [pick(COMPONENTS), pick(WAREHOUSES), (Math.floor(rand() * 8) - 3) || 5]);
          } else if (r < 0.86) {
            op = 'transfer';
            const from = pick(WAREHOUSES);
            await client.query(`select inventory.transfer($1, $2, $3, $4, 'rebalance')`, [pick(COMPONENTS), from, from === 'WH1' ? 'WH2' : 'WH1', 1 + Math.floor(rand() * 3)]);
          } else if (r < 0.94) {
            op = 'set_count';
            const sku = pick(COMPONENTS);
            const warehouse = pick(WAREHOUSES);
            const { rows } = await client.query<{ on_hand: number; reserved: number }>('select on_hand, reserved from inventory.stock(array[$1]) where warehouse = $2', [sku, warehouse]);
            if (rows[0]) await client.query(`select inventory.set_count($1, $2, $3, 'count')`, [sku, warehouse, Math.max(rows[0].reserved, rows[0].on_hand + Math.floor(rand() * 7) - 3)]);
          } else {
            op = 'set_policy';
            await client.query('select inventory.set_policy($1, $2, $3, null)', [pick(COMPONENTS), pick(WAREHOUSES), Math.floor(rand() * 4)]);
          }
          tally.set(op, (tally.get(op) ?? 0) + 1);
        } catch (error) {
          const code = (error as { code?: string }).code ?? '';
          if (!EXPECTED.has(code)) throw error;
          tally.set(`${op}:${code}`, (tally.get(`${op}:${code}`) ?? 0) + 1);
        }
      }
    } finally {
      client.release();
    }
  };
  // A redefinition in the middle of the traffic: K2 gains CA, its CC qty changes, K1's threshold moves.
  const redefine = async () => {
    await new Promise((resolve) => setTimeout(resolve, 300));
    await db.query(`select inventory.set_kit('K2', '[{"sku": "CB", "qty": 1}, {"sku": "CC", "qty": 2}, {"sku": "CA", "qty": 1}]')`);
    await db.query(`select inventory.set_kit('K1', '[{"sku": "CA", "qty": 1}, {"sku": "CB", "qty": 2}]', 10)`);
  };
  await Promise.all([traffic(1, 150), traffic(2, 150), traffic(3, 150), redefine()]);
  t.log([...tally].map(([k, v]) => `${k} ${v}`).join(', '));
  t.deepEqual(await waitForCache(db, redis, prefix, 20_000), [], 'every key, kits too, equals PostgreSQL at quiescence');

  // A component removed: K2 loses CC (nothing holds K2 now), so its WH2-only figures change and no warehouse is left behind.
  await db.query(`select inventory.release(id) from inventory.reservations where status = 'HELD'`);
  await db.query(`select inventory.set_kit('K2', '[{"sku": "CB", "qty": 1}]', 2)`);
  t.deepEqual(await waitForCache(db, redis, prefix, 20_000), [], 'after a component is removed');
  // A stock row of a component in a new warehouse: the kit gets a warehouse key there.
  await db.query(`select inventory.upsert_warehouse('WH3', 'Third', null, 30)`);
  await db.query(`select inventory.adjust('CB', 'WH3', 7, 'receipt')`);
  t.deepEqual(await waitForCache(db, redis, prefix, 20_000), [], 'after a component row in a new warehouse');
  t.is(await redis.get(`${prefix}stock:K2:warehouse:WH3`), '7');
  t.is(await redis.exists(`${prefix}product:K2`), 0);

  // Stopped, then redefined and changed: the next listener loads today's definitions and replays the slot over them.
  await listener.stop();
  await db.query(`select inventory.set_kit('K1', '[{"sku": "CB", "qty": 3}, {"sku": "CC", "qty": 1}]', 1)`);
  await db.query(`select inventory.adjust('CC', 'WH2', 4, 'receipt')`);
  await db.query(`select inventory.set_kit('K1', '[{"sku": "CA", "qty": 2}, {"sku": "CC", "qty": 1}]', 1)`);
  await db.query(`select inventory.adjust('CA', 'WH1', 2, 'receipt')`);
  const again = await startTestListener(db.url, { names: listener.names });
  t.teardown(() => again.stop());
  t.deepEqual(await waitForCache(db, redis, prefix, 20_000), [], 'after a restart that replays redefinitions');

  // cachedStock: from the cache, and after the kit's keys are gone, from PostgreSQL and written back.
  const metrics = createCacheMetrics(new Registry());
  const writer = new CacheWriter(redis, cacheKeys(prefix), { name: listener.names.stream, maxLength: 10_000 });
  const reader = new CachedStockReader({ redis, pool: db.pool, writer, metrics, readTimeoutMs: 1_000 });
  const { rows: kitStock } = await db.query<{ warehouse: string | null; on_hand: number; available: number; status: string | null }>(
    `select * from inventory.kit_stock(array['K2'])`);
  const total = kitStock.find((r) => r.warehouse === null)!;
  const [cached] = await reader.getMany(['K2']);
  t.like(cached, { total: total.on_hand, available: total.available, status: total.status, source: 'cache' });
  t.deepEqual((await reader.warehousesOf([cached!]))[0]!.map((w) => [w.warehouse, w.available]),
    kitStock.filter((r) => r.warehouse !== null).map((r) => [r.warehouse, r.available]));
  await redis.del(`${prefix}stock:K2:total`, `${prefix}stock:K2:rows`, `${prefix}stock:K2:kit`);
  const [missed] = await reader.getMany(['K2']);
  t.like(missed, { total: total.on_hand, available: total.available, status: total.status, source: 'database' });
  t.deepEqual(missed!.warehouses!.map((w) => [w.warehouse, w.available]), kitStock.filter((r) => r.warehouse !== null).map((r) => [r.warehouse, r.available]));
  t.deepEqual(await cacheMismatches(db, redis, prefix), [], 'written back');
});

test('rebuild writes kits; verify reports a hand-edited kit key and --fix repairs it; resync rewrites a kit', async (t) => {
  const db = await openTestDatabase('kits_rebuild');
  const redis = testRedis();
  t.teardown(async () => {
    redis.disconnect();
    await db.close();
  });
  await kitCatalog(db);
  await db.query(`select inventory.reserve('o1', '[{"sku": "K1", "warehouse": "WH2", "qty": 2}]')`);
  const names = uniqueNames('kits_rebuild');
  const keys = cacheKeys(names.prefix);
  const writer = new CacheWriter(redis, keys, { name: names.stream, maxLength: 1000 });
  const rebuilt = await rebuildCache({ databaseUrl: db.url, writer });
  t.like(rebuilt, { kits: 2 });
  t.deepEqual(await cacheMismatches(db, redis, names.prefix), []);
  const clean = await verifyCache({ databaseUrl: db.url, redis, writer, keys, fix: false });
  t.deepEqual(clean.mismatches, []);

  await redis.set(keys.available('K1'), '999');
  await redis.set(keys.warehouse('K2', 'WH1'), '5');
  await redis.hset(keys.rows('K2'), 'WH9', '1:1:0:1:0');
  const found = await verifyCache({ databaseUrl: db.url, redis, writer, keys, fix: false });
  t.deepEqual(found.mismatches.map((m) => m.key).sort(), [keys.available('K1'), `${keys.rows('K2')} WH9`, keys.warehouse('K2', 'WH1')].sort());
  t.is(found.driftedSkus, 2);
  const fixed = await verifyCache({ databaseUrl: db.url, redis, writer, keys, fix: true });
  t.is(fixed.fixedSkus, 2);
  t.deepEqual((await verifyCache({ databaseUrl: db.url, redis, writer, keys, fix: false })).mismatches, [], 'repaired');

  // resync of a kit rewrites it (and its components); of a component, its kits too.
  await redis.set(keys.status('K1'), 'in_stock');
  await redis.del(keys.rows('CB'));
  t.is(await resyncSku(db.pool, writer, 'K1'), 'rewritten');
  t.deepEqual(await cacheMismatches(db, redis, names.prefix), []);
  await redis.set(keys.total('K2'), '0');
  t.is(await resyncSku(db.pool, writer, 'CC'), 'rewritten');
  t.deepEqual(await cacheMismatches(db, redis, names.prefix), []);
});
