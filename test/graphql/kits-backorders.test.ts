// Kits and backorders through the GraphQL API: the SQL functions as
// mutations and queries (setKit, kitStock, setBackorderPolicy,
// backorderPosition), and reserve taking kit lines and backordering.
import test from 'ava';
import { startTestApi, token, type TestApi } from '../helpers/api.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { assertInvariants } from '../helpers/invariants.ts';
import { setupCatalog, stockOf } from '../helpers/inventory.ts';

let db: Awaited<ReturnType<typeof openTestDatabase>>;
let api: TestApi;
let writer: string;

test.before(async () => {
  db = await openTestDatabase('gql_kits');
  await setupCatalog(db, { LENS: { WH1: 4 }, CAP: { WH1: 10 }, PRE: { WH1: 1 } });
  await db.query(`select inventory.upsert_product('KIT')`);
  api = await startTestApi(db.url, { label: 'gql_kits' });
  writer = await token('stockroom_writer', { sub: 'test-writer' });
});

test.after.always(async (t) => {
  await api?.stop();
  if (db) await assertInvariants(t, db);
  await db?.close();
});

const RESERVE = `mutation ($orderRef: String!, $lines: [ReserveLineInput!]!) {
  reserve(orderRef: $orderRef, lines: $lines) { rowId status kitLines { nodes { qty kit { sku } } } lines { nodes { qty backordered } } }
}`;

test('setKit defines a kit, kitStock shows it to anyone, reserve takes a kit line and holds its components', async (t) => {
  const defined = await api.graphql<any>(`mutation {
    setKit(input: { sku: "KIT", components: [{ sku: "LENS", qty: 1 }, { sku: "CAP", qty: 2 }], lowStockThreshold: 1 }) { result { lowStockThreshold } }
  }`, {}, { token: writer });
  t.is(defined.errors, undefined, JSON.stringify(defined.errors));
  const stock = await api.graphql<any>(`{ kitStock(skus: ["KIT"]) { sku warehouse onHand available status } }`);
  t.is(stock.errors, undefined, JSON.stringify(stock.errors));
  t.deepEqual(stock.data.kitStock, [
    { sku: 'KIT', warehouse: null, onHand: 4, available: 4, status: 'in_stock' },
    { sku: 'KIT', warehouse: 'WH1', onHand: 4, available: 4, status: null },
  ]);
  const held = await api.graphql<any>(RESERVE, { orderRef: 'kit-1', lines: [{ sku: 'KIT', warehouse: 'WH1', qty: 3 }] }, { token: writer });
  t.is(held.errors, undefined, JSON.stringify(held.errors));
  t.like(held.data.reserve, { status: 'HELD', kitLines: { nodes: [{ qty: 3, kit: { sku: 'KIT' } }] } });
  t.like(await stockOf(db, 'CAP', 'WH1'), { reserved: 6 });
  // LENS is short for the kit line (1 left, 2 asked): the refusal marks the kit's line.
  const short = await api.graphql<any>(RESERVE, { orderRef: 'kit-2', lines: [{ sku: 'CAP', warehouse: 'WH1', qty: 1 }, { sku: 'KIT', warehouse: 'WH1', qty: 2 }] }, { token: writer });
  t.is(short.errors?.[0]?.extensions?.code, 'INSUFFICIENT_STOCK');
  // CAP is short too (4 left; 1 + 2 × 2 asked), summed from both lines.
  t.deepEqual((short.errors?.[0]?.extensions?.detail as any)?.lines, [
    { sku: 'CAP', warehouse: 'WH1', requested: 5, available: 4, kits: ['KIT'], inputLines: [1, 2] },
    { sku: 'LENS', warehouse: 'WH1', requested: 2, available: 1, kits: ['KIT'], inputLines: [2] },
  ]);
  const refused = await api.graphql<any>(`mutation { setKit(input: { sku: "KIT", components: [{ sku: "LENS", qty: 1 }] }) { clientMutationId } }`, {}, { token: writer });
  t.is(refused.errors?.[0]?.extensions?.code, 'INVALID_STATE');
  const nested = await api.graphql<any>(`mutation { setKit(input: { sku: "LENS", components: [{ sku: "KIT", qty: 1 }] }) { clientMutationId } }`, {}, { token: writer });
  t.is(nested.errors?.[0]?.extensions?.code, 'INVALID_ARGUMENT');
});

test('setBackorderPolicy lets a reserve go beyond stock; the line shows what waits and backorderPosition where it stands', async (t) => {
  const set = await api.graphql<any>(`mutation {
    setBackorderPolicy(input: { sku: "PRE", warehouse: "WH1", policy: "PREORDER", backorderLimit: 5, preorderUntil: "2099-01-01T00:00:00Z" }) {
      result { backorderPolicy backorderLimit backordered preorderUntil }
    }
  }`, {}, { token: writer });
  t.is(set.errors, undefined, JSON.stringify(set.errors));
  t.like(set.data.setBackorderPolicy.result, { backorderPolicy: 'PREORDER', backorderLimit: 5, backordered: 0 });
  const first = await api.graphql<any>(RESERVE, { orderRef: 'pre-1', lines: [{ sku: 'PRE', warehouse: 'WH1', qty: 3 }] }, { token: writer });
  t.is(first.errors, undefined, JSON.stringify(first.errors));
  t.deepEqual(first.data.reserve.lines.nodes, [{ qty: 1, backordered: 2 }]);
  const second = await api.graphql<any>(RESERVE, { orderRef: 'pre-2', lines: [{ sku: 'PRE', qty: 2 }] }, { token: writer });
  const position = await api.graphql<any>(`query ($id: UUID!) { backorderPosition(reservationId: $id) { sku warehouse backordered queuePosition unitsAhead expectedAt } }`,
    { id: second.data.reserve.rowId }, { token: writer });
  t.is(position.errors, undefined, JSON.stringify(position.errors));
  t.like(position.data.backorderPosition[0], { sku: 'PRE', warehouse: 'WH1', backordered: 2, queuePosition: '2', unitsAhead: '2' });
  t.regex(position.data.backorderPosition[0].expectedAt, /^2099-01-01/);
  const over = await api.graphql<any>(RESERVE, { orderRef: 'pre-3', lines: [{ sku: 'PRE', warehouse: 'WH1', qty: 2 }] }, { token: writer });
  t.is(over.errors?.[0]?.extensions?.code, 'INSUFFICIENT_STOCK');
});
