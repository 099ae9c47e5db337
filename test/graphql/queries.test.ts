// Every query of the GraphQL API over real HTTP: as the anonymous public
// caller, products with per-warehouse stock, warehouses, recentlyUpdated, stock,
// cachedStock; with a reader's token, reservations (by id, by order ref) with
// lines, movements (filtered, paginated); and
// cachedStock (cache, fallback, unknown sku, one fallback query per sku).
import test from 'ava';
import { Registry } from 'prom-client';
import { cacheKeys } from '../../src/cache/keys.ts';
import { CacheWriter } from '../../src/cache/writer.ts';
import { CachedStockReader, createCacheMetrics } from '../../src/graphql/cached-stock.ts';
import { startTestApi, token, type TestApi } from '../helpers/api.ts';
import { testRedis, uniqueNames } from '../helpers/cache.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { assertInvariants } from '../helpers/invariants.ts';
import { queryOne, setupCatalog } from '../helpers/inventory.ts';

let db: Awaited<ReturnType<typeof openTestDatabase>>;
let api: TestApi;
let reservationId: string;
let readerToken: string;
/** A request with a reader's token: reservations and the ledger are not public. */
const asReader: TestApi['graphql'] = (query, variables) => api.graphql(query, variables, { token: readerToken });

test.before(async () => {
  db = await openTestDatabase('gql_queries');
  await setupCatalog(db, { 'SKU-A': { WH1: 10, WH2: 5 }, 'SKU-B': { WH1: 3 }, 'SKU-C': { WH2: 7 } });
  ({ id: reservationId } = await queryOne<{ id: string }>(db,
    `select id from inventory.reserve('order-1', '[{"sku":"SKU-A","warehouse":"WH1","qty":4},{"sku":"SKU-B","warehouse":"WH1","qty":1}]', interval '15 minutes')`));
  api = await startTestApi(db.url, { label: 'gql_queries' });
  readerToken = await token('stockroom_reader');
});

test.after.always(async (t) => {
  await api?.stop();
  if (db) await assertInvariants(t, db);
  await db?.close();
});

test('products with their stock per warehouse', async (t) => {
  const { status, data, errors } = await api.graphql<{ allProducts: { nodes: Array<{ sku: string; stockLevels: { nodes: Array<Record<string, unknown>> } }> } }>(`{
    allProducts(orderBy: SKU_ASC, first: 50) { nodes { sku name stockLevels(first: 20) { nodes { onHand reserved available version warehouse { code } } } } }
  }`);
  t.is(status, 200);
  t.is(errors, undefined);
  const bySku = Object.fromEntries(data!.allProducts.nodes.map((p) => [p.sku, p.stockLevels.nodes.map((s) => ({
    ...s, warehouse: (s.warehouse as { code: string }).code,
  })).sort((a, b) => a.warehouse.localeCompare(b.warehouse))]));
  t.deepEqual(Object.keys(bySku), ['SKU-A', 'SKU-B', 'SKU-C']);
  t.like(bySku['SKU-A']![0], { warehouse: 'WH1', onHand: 10, reserved: 4, available: 6 });
  t.like(bySku['SKU-A']![1], { warehouse: 'WH2', onHand: 5, reserved: 0, available: 5 });
  t.like(bySku['SKU-B']![0], { warehouse: 'WH1', onHand: 3, reserved: 1, available: 2 });
});

test('one product by sku; warehouses in priority order', async (t) => {
  const { data, errors } = await api.graphql<{ productBySku: { sku: string; name: string } | null; missing: null; allWarehouses: { nodes: Array<{ code: string; priority: number }> } }>(`{
    productBySku(sku: "SKU-C") { sku name }
    missing: productBySku(sku: "NOPE") { sku }
    allWarehouses { nodes { code priority } }
  }`);
  t.is(errors, undefined);
  t.deepEqual(data!.productBySku, { sku: 'SKU-C', name: 'Product SKU-C' });
  t.is(data!.missing, null);
  t.deepEqual(data!.allWarehouses.nodes.sort((a, b) => a.priority - b.priority), [{ code: 'WH1', priority: 10 }, { code: 'WH2', priority: 20 }]);
});

test('a reservation by id and by order ref, with its lines', async (t) => {
  const { data, errors } = await asReader<{
    byId: { orderRef: string; status: string; lines: { nodes: Array<{ qty: number; stockLevel: { product: { sku: string }; warehouse: { code: string } } }> } };
    byRef: { nodes: Array<{ rowId: string }> };
  }>(`query ($id: UUID!) {
    byId: reservationByRowId(rowId: $id) { orderRef status expiresAt lines { nodes { qty stockLevel { product { sku } warehouse { code } } } } }
    byRef: allReservations(condition: { orderRef: "order-1" }) { nodes { rowId } }
  }`, { id: reservationId });
  t.is(errors, undefined);
  t.like(data!.byId, { orderRef: 'order-1', status: 'HELD' });
  t.deepEqual(data!.byId.lines.nodes.map((l) => `${l.stockLevel.product.sku}@${l.stockLevel.warehouse.code}×${l.qty}`).sort(), ['SKU-A@WH1×4', 'SKU-B@WH1×1']);
  t.deepEqual(data!.byRef.nodes, [{ rowId: reservationId }]);
});

test('movements by sku and kind, newest first, page by page', async (t) => {
  const query = `query ($after: Cursor) {
    movementHistory(sku: "SKU-A", first: 2, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { kind onHandDelta reservedDelta stockLevel { warehouse { code } } } }
  }`;
  type Page = { movementHistory: { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string }; nodes: Array<{ kind: string; onHandDelta: number; reservedDelta: number; stockLevel: { warehouse: { code: string } } }> } };
  const first = await asReader<Page>(query);
  t.is(first.errors, undefined);
  t.is(first.data!.movementHistory.totalCount, 3);
  t.true(first.data!.movementHistory.pageInfo.hasNextPage);
  t.like(first.data!.movementHistory.nodes[0], { kind: 'RESERVE', onHandDelta: 0, reservedDelta: 4 });
  const second = await asReader<Page>(query, { after: first.data!.movementHistory.pageInfo.endCursor });
  t.is(second.errors, undefined);
  t.false(second.data!.movementHistory.pageInfo.hasNextPage);
  const all = [...first.data!.movementHistory.nodes, ...second.data!.movementHistory.nodes];
  t.deepEqual(all.map((m) => `${m.kind}@${m.stockLevel.warehouse.code}`), ['RESERVE@WH1', 'RECEIVE@WH2', 'RECEIVE@WH1']);

  const receipts = await asReader<{ movementHistory: { nodes: Array<{ kind: string }> } }>(`{ movementHistory(kind: "RECEIVE", warehouse: "WH1") { nodes { kind onHandDelta } } }`);
  t.is(receipts.errors, undefined);
  t.deepEqual(receipts.data!.movementHistory.nodes.map((m) => m.kind), ['RECEIVE', 'RECEIVE']);
});

test('movements in a time range: nothing before the first, everything until now', async (t) => {
  const { since } = await queryOne<{ since: string }>(db, `select (min(occurred_at) - interval '1 second')::text as since from inventory.movements`);
  const { data, errors } = await asReader<{ before: { totalCount: number }; range: { totalCount: number } }>(`query ($since: Datetime!) {
    before: movementHistory(until: $since) { totalCount }
    range: movementHistory(since: $since, until: "2999-01-01T00:00:00Z") { totalCount }
  }`, { since: new Date(since).toISOString() });
  t.is(errors, undefined);
  t.is(data!.before.totalCount, 0);
  t.is(data!.range.totalCount, 6);
});

test('a movement kind that does not exist is INVALID_ARGUMENT naming the kinds', async (t) => {
  const { errors } = await asReader(`{ movementHistory(kind: "STOLEN") { nodes { kind } } }`);
  t.is(errors?.[0]?.extensions?.code, 'INVALID_ARGUMENT');
  t.regex(errors![0]!.message, /STOLEN/);
});

test('stock(skus) from PostgreSQL, and recentlyUpdated with its cursor', async (t) => {
  const { data, errors } = await api.graphql<{ stock: Array<{ sku: string; warehouse: string; onHand: number; available: number }>; recentlyUpdated: Array<{ sku: string; cursor: string }> }>(`{
    stock(skus: ["SKU-B", "SKU-C", "NOPE"]) { sku warehouse onHand reserved available version }
    recentlyUpdated(since: "2000-01-01T00:00:00Z", max: 10) { sku warehouse version cursor }
  }`);
  t.is(errors, undefined);
  t.deepEqual(data!.stock.map((r) => [r.sku, r.warehouse, r.onHand, r.available]), [['SKU-B', 'WH1', 3, 2], ['SKU-C', 'WH2', 7, 7]]);
  t.is(data!.recentlyUpdated.length, 4);
  t.true(data!.recentlyUpdated.every((r) => typeof r.cursor === 'string' && r.cursor.length > 0));
});

test.serial('cachedStock: a miss is answered from PostgreSQL and written to the cache; the next read is a hit; an unknown sku is null', async (t) => {
  const query = `{ cachedStock(skus: ["SKU-A", "NOPE"]) { sku total available status lowStock source warehouses { warehouse available version } } }`;
  type Result = { cachedStock: Array<{ sku: string; total: number; available: number; source: string; warehouses: Array<{ warehouse: string; available: number }> } | null> };
  const missesBefore = await api.metric('stockroom_cache_misses_total');
  const first = await api.graphql<Result>(query);
  t.is(first.errors, undefined);
  t.like(first.data!.cachedStock[0], { sku: 'SKU-A', total: 15, available: 11, source: 'database' });
  t.deepEqual(first.data!.cachedStock[0]!.warehouses.map((w) => [w.warehouse, w.available]), [['WH1', 6], ['WH2', 5]]);
  t.is(first.data!.cachedStock[1], null);
  t.is(await api.metric('stockroom_cache_misses_total'), missesBefore + 2);

  const hitsBefore = await api.metric('stockroom_cache_hits_total');
  const second = await api.graphql<Result>(query);
  t.like(second.data!.cachedStock[0], { sku: 'SKU-A', total: 15, available: 11, source: 'cache' });
  t.deepEqual(second.data!.cachedStock[0]!.warehouses.map((w) => [w.warehouse, w.available]), [['WH1', 6], ['WH2', 5]], 'warehouses read from the cache');
  t.is(await api.metric('stockroom_cache_hits_total'), hitsBefore + 1);
});

test('cachedStock fallback: the missing skus in one PostgreSQL query, and each sku loaded once however many requests ask at once', async (t) => {
  const redis = testRedis();
  const names = uniqueNames('single_flight');
  let fallbackQueries = 0;
  // Counts the reader's queries on a real pool (nothing is faked: the queries run).
  const pool = new Proxy(db.pool, {
    get(target, property, receiver) {
      if (property === 'query') return (...args: Parameters<typeof target.query>) => {
        fallbackQueries++;
        return (target.query as (...a: unknown[]) => unknown).apply(target, args);
      };
      return Reflect.get(target, property, receiver);
    },
  });
  const keys = cacheKeys(names.prefix);
  const reader = new CachedStockReader({
    redis, pool, metrics: createCacheMetrics(new Registry()), writer: new CacheWriter(redis, keys, { name: names.stream, maxLength: 1000 }), readTimeoutMs: 1000,
  });
  try {
    const answers = await Promise.all([
      ...Array.from({ length: 25 }, () => reader.getMany(['SKU-B', 'SKU-C'])),
      ...Array.from({ length: 25 }, () => reader.getMany(['SKU-C', 'NOPE'])),
    ]);
    // Beside them, the write-back of SKU-B and SKU-C reads the sales channels it writes their channels hashes with (one query).
    t.is(fallbackQueries, 3, 'one query for SKU-B and SKU-C (the first request), one for NOPE; SKU-C is not loaded twice');
    t.true(answers.slice(0, 25).every((a) => a[0]?.available === 2 && a[1]?.available === 7));
    t.true(answers.slice(25).every((a) => a[0]?.available === 7 && a[1] === null));
    await reader.getMany(['SKU-B', 'SKU-C']);
    t.is(fallbackQueries, 3, 'then both are in the cache');
    // The rows hash gone between the totals and the warehouses (evicted): the warehouses come from Postgres.
    await redis.del(keys.rows('SKU-B'));
    const [b] = await reader.getMany(['SKU-B']);
    t.is(b!.source, 'cache');
    const [warehouses] = await reader.warehousesOf([b!]);
    t.deepEqual(warehouses!.map((w) => [w.warehouse, w.available]), [['WH1', 2]]);
    t.is(fallbackQueries, 5, 'the rows, and the channels of their write-back');
  } finally {
    redis.disconnect();
  }
});

test('GraphiQL is served outside production', async (t) => {
  const response = await fetch(`${api.url}/graphiql`, { headers: { accept: 'text/html' } });
  t.is(response.status, 200);
  t.regex(await response.text(), /graphiql/i);
});

test('cachedStock reads at most 1000 skus per call: more is INVALID_ARGUMENT', async (t) => {
  const skus = Array.from({ length: 1001 }, (_, i) => `S-${i}`);
  const { errors } = await api.graphql(`query ($skus: [String!]!) { cachedStock(skus: $skus) { sku } }`, { skus });
  t.is(errors?.[0]?.extensions?.code, 'INVALID_ARGUMENT');
  t.regex(errors![0]!.message, /at most 1000 skus/);
  const fine = await api.graphql<{ cachedStock: unknown[] }>(`query ($skus: [String!]!) { cachedStock(skus: $skus) { sku } }`, { skus: skus.slice(0, 1000) });
  t.is(fine.errors, undefined);
  t.is(fine.data!.cachedStock.length, 1000);
});
