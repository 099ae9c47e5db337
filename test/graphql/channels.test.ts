// Sales channels over GraphQL, with real HTTP and tokens: upsertChannel and
// setChannelWarehouses (admin), channels and channelStock (anyone, like the
// catalog), and reserve lines taking a channel (and region): allocated among
// the channel's warehouses only, through the combiner; a warehouse outside
// the channel is INVALID_ARGUMENT naming the line, an unknown channel
// NOT_FOUND marking the lines naming it.
import test, { type ExecutionContext } from 'ava';
import { startTestApi, token, type GraphQLResponse, type TestApi } from '../helpers/api.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { assertInvariants } from '../helpers/invariants.ts';
import { queryOne, setupCatalog, stockOf } from '../helpers/inventory.ts';

let db: Awaited<ReturnType<typeof openTestDatabase>>;
let api: TestApi;
let writer: string;
let admin: string;

test.before(async () => {
  db = await openTestDatabase('gql_channels');
  await setupCatalog(db, { A: { WH1: 10, WH2: 3, WH3: 4 }, B: { WH1: 5, WH2: 5 }, C: { WH1: 5, WH2: 5, WH3: 5 }, D: { WH2: 4, WH3: 6 } });
  api = await startTestApi(db.url, { label: 'gql_channels' });
  writer = await token('stockroom_writer', { sub: 'test-writer' });
  admin = await token('stockroom_admin', { sub: 'test-admin' });
});

test.after.always(async (t) => {
  await api?.stop();
  if (db) await assertInvariants(t, db);
  await db?.close();
});

const RESERVE = `mutation ($orderRef: String!, $lines: [ReserveLineInput!]!) {
  reserve(orderRef: $orderRef, lines: $lines) { rowId status lines { nodes { qty stockLevel { warehouse { code } } } } }
}`;

function errorOf(t: ExecutionContext, response: GraphQLResponse<unknown>, code: string) {
  t.truthy(response.errors, `expected ${code}, got data ${JSON.stringify(response.data)}`);
  const error = response.errors![0]!;
  t.is(error.extensions?.code, code, error.message);
  return error;
}

const holds = (reserve: { lines: { nodes: Array<{ qty: number; stockLevel: { warehouse: { code: string } } }> } }) =>
  reserve.lines.nodes.map((l) => `${l.stockLevel.warehouse.code}:${l.qty}`).sort();

async function defineChannel(code: string, strategy: string, warehouses: Array<{ warehouse: string; priority: number }>, region?: string) {
  const response = await api.graphql<any>(`mutation ($code: String!, $strategy: String!, $region: String, $warehouses: JSON!) {
    upsertChannel(input: { code: $code, name: "Channel", strategy: $strategy, region: $region }) { result { code strategy region } }
    setChannelWarehouses(input: { channel: $code, warehouses: $warehouses }) { result { code } }
  }`, { code, strategy, region: region ?? null, warehouses }, { token: admin });
  return response;
}

test('upsertChannel and setChannelWarehouses define a channel (admin only); channels and channelStock read it without a token', async (t) => {
  const defined = await defineChannel('web', 'PRIORITY', [{ warehouse: 'WH3', priority: 1 }, { warehouse: 'WH2', priority: 2 }]);
  t.is(defined.errors, undefined, JSON.stringify(defined.errors));
  t.deepEqual(defined.data.upsertChannel.result, { code: 'web', strategy: 'PRIORITY', region: null });

  const asWriter = await api.graphql<any>(`mutation { upsertChannel(input: { code: "sneaky", strategy: "PRIORITY" }) { clientMutationId } }`, {}, { token: writer });
  t.truthy(asWriter.errors);
  t.falsy(await db.query(`select 1 from inventory.channels where code = 'sneaky'`).then((r) => r.rows[0]));
  const bad = await api.graphql<any>(`mutation { upsertChannel(input: { code: "x", strategy: "CHEAPEST" }) { clientMutationId } }`, {}, { token: admin });
  errorOf(t, bad, 'INVALID_ARGUMENT');

  const channels = await api.graphql<any>(`{ channels { code strategy region warehouses } }`);
  t.is(channels.errors, undefined, JSON.stringify(channels.errors));
  // (Warehouse regions are another test's to set: left out here.)
  const web = channels.data.channels.find((c: any) => c.code === 'web');
  t.like(web, { code: 'web', strategy: 'PRIORITY', region: null });
  t.deepEqual(web.warehouses.map(({ warehouse, priority }: any) => ({ warehouse, priority })),
    [{ warehouse: 'WH3', priority: 1 }, { warehouse: 'WH2', priority: 2 }]);
  const stock = await api.graphql<any>(`{ channelStock(skus: ["B"], channel: "web") { sku warehouse priority onHand available } }`);
  t.is(stock.errors, undefined, JSON.stringify(stock.errors));
  t.deepEqual(stock.data.channelStock, [
    { sku: 'B', warehouse: null, priority: null, onHand: 5, available: 5 },
    { sku: 'B', warehouse: 'WH2', priority: 2, onHand: 5, available: 5 },
  ]);
  errorOf(t, await api.graphql<any>(`{ channelStock(skus: ["B"], channel: "nope") { sku } }`), 'NOT_FOUND');
});

test('cachedStock gives availability per channel: from PostgreSQL on a miss, then from the cache it wrote back', async (t) => {
  t.is((await defineChannel('cached', 'PRIORITY', [{ warehouse: 'WH2', priority: 1 }, { warehouse: 'WH1', priority: 2 }])).errors, undefined);
  const query = `{ cachedStock(skus: ["D"]) { sku source channels { channel available } } }`;
  const first = await api.graphql<any>(query);
  t.is(first.errors, undefined, JSON.stringify(first.errors));
  const [missed] = first.data.cachedStock;
  t.is(missed.source, 'database');
  t.deepEqual(missed.channels.find((c: any) => c.channel === 'cached'), { channel: 'cached', available: 4 });
  const second = (await api.graphql<any>(query)).data.cachedStock[0];
  t.is(second.source, 'cache');
  t.deepEqual(second.channels.find((c: any) => c.channel === 'cached'), { channel: 'cached', available: 4 });
  const codes = (channels: Array<{ channel: string }>) => channels.map((c) => c.channel);
  t.deepEqual(codes(second.channels), [...codes(second.channels)].sort(), 'by channel code');
});

test('reserve lines with a channel allocate among its warehouses by its strategy; a plain line as before', async (t) => {
  t.is((await defineChannel('shop', 'PRIORITY', [{ warehouse: 'WH3', priority: 1 }, { warehouse: 'WH2', priority: 2 }])).errors, undefined);
  const response = await api.graphql<any>(RESERVE, { orderRef: 'gql-ch-1', lines: [{ sku: 'A', qty: 5, channel: 'shop' }] }, { token: writer });
  t.is(response.errors, undefined, JSON.stringify(response.errors));
  t.deepEqual(holds(response.data.reserve), ['WH2:1', 'WH3:4']);
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 0 });
  // 2 left in the channel (WH2): 3 is short, though WH1 has 10.
  const short = await api.graphql<any>(RESERVE, { orderRef: 'gql-ch-2', lines: [{ sku: 'A', qty: 3, channel: 'shop' }] }, { token: writer });
  const error = errorOf(t, short, 'INSUFFICIENT_STOCK');
  t.deepEqual((error.extensions?.detail as any).lines, [{ sku: 'A', warehouse: null, requested: 3, available: 2, inputLines: [1] }]);
  const plain = await api.graphql<any>(RESERVE, { orderRef: 'gql-ch-3', lines: [{ sku: 'A', qty: 3 }] }, { token: writer });
  t.deepEqual(holds(plain.data.reserve), ['WH1:3']);

  // NEAREST with the line's region.
  await db.query(`select inventory.set_warehouse_region('WH1', 'EU'), inventory.set_warehouse_region('WH3', 'US')`);
  t.is((await defineChannel('near', 'NEAREST', [{ warehouse: 'WH1', priority: 1 }, { warehouse: 'WH3', priority: 2 }], 'EU')).errors, undefined);
  const us = await api.graphql<any>(RESERVE, { orderRef: 'gql-ch-4', lines: [{ sku: 'C', qty: 6, channel: 'near', region: 'US' }] }, { token: writer });
  t.is(us.errors, undefined, JSON.stringify(us.errors));
  t.deepEqual(holds(us.data.reserve), ['WH1:1', 'WH3:5']);
});

test('reserve refusals for channels: outside warehouse INVALID_ARGUMENT naming the line, unknown channel NOT_FOUND marking its lines; nothing held', async (t) => {
  t.is((await defineChannel('store', 'MOST_STOCK', [{ warehouse: 'WH1', priority: 1 }])).errors, undefined);
  const outside = await api.graphql<any>(RESERVE, {
    orderRef: 'gql-ch-5', lines: [{ sku: 'B', qty: 1, channel: 'store' }, { sku: 'B', warehouse: 'WH2', qty: 1, channel: 'store' }],
  }, { token: writer });
  const error = errorOf(t, outside, 'INVALID_ARGUMENT');
  t.like(error.extensions?.detail, { line: 2, channel: 'store', warehouse: 'WH2' });
  const unknown = await api.graphql<any>(RESERVE, {
    orderRef: 'gql-ch-6', lines: [{ sku: 'B', qty: 1 }, { sku: 'B', warehouse: 'WH1', qty: 1, channel: 'gone' }],
  }, { token: writer });
  const notFound = errorOf(t, unknown, 'NOT_FOUND');
  t.like(notFound.extensions?.detail, { unknown_channels: ['gone'], lines: [2] });
  // Input refused before SQL: a region without text, a channel too long.
  errorOf(t, await api.graphql<any>(RESERVE, { orderRef: 'gql-ch-7', lines: [{ sku: 'B', qty: 1, channel: 'c'.repeat(65) }] }, { token: writer }), 'INVALID_ARGUMENT');
  errorOf(t, await api.graphql<any>(RESERVE, { orderRef: 'gql-ch-8', lines: [{ sku: 'B', qty: 1, channel: 'store', region: ' ' }] }, { token: writer }), 'INVALID_ARGUMENT');
  // (B is this test's: the others only read it.)
  t.is((await queryOne<{ n: number }>(db, `select count(*)::int as n from inventory.movements m join inventory.products p on p.id = m.product_id where p.sku = 'B' and m.kind <> 'RECEIVE'`)).n, 0);
  t.like(await stockOf(db, 'B', 'WH1'), { reserved: 0 });
});
