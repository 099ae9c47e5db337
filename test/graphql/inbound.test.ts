// Inbound stock over GraphQL (real HTTP, real tokens): createInbound,
// receiveInbound, closeInbound, cancelInbound (the SQL functions as
// PostGraphile mutations, input form), the inbound and availableToPromise
// queries, and who may call them.
import test, { type ExecutionContext } from 'ava';
import { startTestApi, token, type GraphQLResponse, type TestApi } from '../helpers/api.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { assertInvariants } from '../helpers/invariants.ts';
import { queryOne, setupCatalog, stockOf } from '../helpers/inventory.ts';

let db: Awaited<ReturnType<typeof openTestDatabase>>;
let api: TestApi;
let writer: string;
let reader: string;

test.before(async () => {
  db = await openTestDatabase('gql_inbound');
  await setupCatalog(db, { A: { WH1: 5, WH2: 0 }, B: { WH1: 0 }, C: { WH1: 0 }, D: { WH1: 1 } });
  api = await startTestApi(db.url, { label: 'gql_inbound' });
  writer = await token('stockroom_writer', { sub: 'receiving-dock' });
  reader = await token('stockroom_reader');
});

test.after.always(async (t) => {
  await api?.stop();
  if (db) await assertInvariants(t, db);
  await db?.close();
});

const SHIPMENT = 'rowId reference kind status lines(orderBy: [PRODUCT_ID_ASC, WAREHOUSE_ID_ASC]) { nodes { qtyExpected qtyReceived status product { sku } warehouse { code } } }';
const CREATE = `mutation ($reference: String!, $lines: JSON!, $kind: String, $key: String, $expectedAt: Datetime) {
  createInbound(input: { reference: $reference, lines: $lines, kind: $kind, idempotencyKey: $key, expectedAt: $expectedAt }) { result { ${SHIPMENT} } }
}`;
const RECEIVE = `mutation ($id: UUID!, $lines: JSON, $allow: Boolean, $key: String) {
  receiveInbound(input: { inboundId: $id, lines: $lines, allowOverReceipt: $allow, idempotencyKey: $key }) { result { ${SHIPMENT} } }
}`;

function errorOf(t: ExecutionContext, response: GraphQLResponse<unknown>, code: string) {
  t.truthy(response.errors, `expected ${code}, got data ${JSON.stringify(response.data)}`);
  const error = response.errors![0]!;
  t.is(error.extensions?.code, code, error.message);
  return error;
}

const inDays = (days: number) => new Date(Date.now() + days * 24 * 3600 * 1000).toISOString();

async function create(reference: string, lines: unknown, extra: Record<string, unknown> = {}) {
  const response = await api.graphql<any>(CREATE, { reference, lines, expectedAt: inDays(2), ...extra }, { token: writer });
  if (response.errors) throw new Error(JSON.stringify(response.errors));
  return response.data.createInbound.result;
}

test('createInbound then receiveInbound in parts: the shipment, its lines and the stock rows follow; the ledger names the token', async (t) => {
  const expectedAt = inDays(2);
  const created = await create('PO-G1', [{ sku: 'A', warehouse: 'WH1', qty: 10 }, { sku: 'B', warehouse: 'WH1', qty: 2 }], { key: 'po-g1', expectedAt });
  t.like(created, { reference: 'PO-G1', kind: 'PURCHASE', status: 'OPEN' });
  t.deepEqual(created.lines.nodes.map((l: any) => [l.product.sku, l.warehouse.code, l.qtyExpected, l.qtyReceived, l.status]).sort(),
    [['A', 'WH1', 10, 0, 'OPEN'], ['B', 'WH1', 2, 0, 'OPEN']]);
  // A retry with the same key is the same shipment.
  t.is((await create('PO-G1', [{ sku: 'B', warehouse: 'WH1', qty: 2 }, { sku: 'A', warehouse: 'WH1', qty: 10 }], { key: 'po-g1', expectedAt })).rowId, created.rowId);

  const partial = await api.graphql<any>(RECEIVE, { id: created.rowId, lines: [{ sku: 'A', qty: 4 }], key: 'g1-r1' }, { token: writer });
  t.is(partial.errors, undefined, JSON.stringify(partial.errors));
  t.is(partial.data.receiveInbound.result.status, 'PARTIAL');
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 9 });
  const { actor } = await queryOne(db, `select actor from inventory.movements where idempotency_key = 'g1-r1'`);
  t.is(actor, 'receiving-dock');

  const rest = await api.graphql<any>(RECEIVE, { id: created.rowId }, { token: writer });
  t.is(rest.errors, undefined, JSON.stringify(rest.errors));
  t.is(rest.data.receiveInbound.result.status, 'RECEIVED');
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 15 });
  t.like(await stockOf(db, 'B', 'WH1'), { on_hand: 2 });
});

test('refusals arrive as error codes with the detail: an over-receipt, a closed line, a reused key, bad input', async (t) => {
  const created = await create('PO-G2', [{ sku: 'C', warehouse: 'WH1', qty: 3 }]);
  const over = errorOf(t, await api.graphql(RECEIVE, { id: created.rowId, lines: [{ sku: 'C', warehouse: 'WH1', qty: 5 }] }, { token: writer }), 'INVALID_ARGUMENT');
  t.deepEqual((over.extensions!.detail as any).lines, [{ sku: 'C', warehouse: 'WH1', expected: 3, received: 0, outstanding: 3, requested: 5 }]);
  t.like(await stockOf(db, 'C', 'WH1') ?? { on_hand: 0 }, { on_hand: 0 });
  const allowed = await api.graphql<any>(RECEIVE, { id: created.rowId, lines: [{ sku: 'C', qty: 5 }], allow: true }, { token: writer });
  t.is(allowed.errors, undefined, JSON.stringify(allowed.errors));
  t.like(allowed.data.receiveInbound.result.lines.nodes[0], { qtyExpected: 3, qtyReceived: 5, status: 'RECEIVED' });

  const other = await create('PO-G3', [{ sku: 'C', warehouse: 'WH1', qty: 3 }]);
  const closed = await api.graphql<any>(`mutation ($id: UUID!) { closeInbound(input: { inboundId: $id, reason: "supplier out of stock" }) { result { status } } }`,
    { id: other.rowId }, { token: writer });
  t.is(closed.errors, undefined, JSON.stringify(closed.errors));
  t.is(closed.data.closeInbound.result.status, 'CLOSED_SHORT');
  errorOf(t, await api.graphql(RECEIVE, { id: other.rowId, lines: [{ sku: 'C', qty: 1 }] }, { token: writer }), 'INVALID_STATE');

  await create('PO-G6', [{ sku: 'C', warehouse: 'WH1', qty: 1 }], { key: 'po-g6' });
  errorOf(t, await api.graphql(CREATE, { reference: 'PO-G6', lines: [{ sku: 'C', warehouse: 'WH1', qty: 2 }], key: 'po-g6', expectedAt: inDays(1) }, { token: writer }),
    'IDEMPOTENCY_CONFLICT');
  errorOf(t, await api.graphql(CREATE, { reference: 'PO-X', lines: [{ sku: 'NOPE', warehouse: 'WH1', qty: 1 }], expectedAt: inDays(1) }, { token: writer }), 'NOT_FOUND');
  const noDate = errorOf(t, await api.graphql(CREATE, { reference: 'PO-X', lines: [{ sku: 'A', warehouse: 'WH1', qty: 1 }], expectedAt: null }, { token: writer }),
    'INVALID_ARGUMENT');
  t.like(noDate.extensions!.detail, { argument: 'lines', line: 1, field: 'expected_at' });
});

test('cancelInbound cancels; inbound lists what is on its way to readers; availableToPromise answers anyone', async (t) => {
  const later = await create('PO-G4', [{ sku: 'D', warehouse: 'WH1', qty: 6 }], { expectedAt: inDays(5) });
  const cancelled = await create('PO-G5', [{ sku: 'D', warehouse: 'WH1', qty: 50 }], { expectedAt: inDays(1) });
  const cancel = await api.graphql<any>(`mutation ($id: UUID!) { cancelInbound(input: { inboundId: $id }) { result { status lines { nodes { status closedReason } } } } }`,
    { id: cancelled.rowId }, { token: writer });
  t.is(cancel.errors, undefined, JSON.stringify(cancel.errors));
  t.deepEqual(cancel.data.cancelInbound.result, { status: 'CANCELLED', lines: { nodes: [{ status: 'CANCELLED', closedReason: 'CANCELLED' }] } });

  const listed = await api.graphql<any>(`{ inbound(sku: "D") { inboundId reference sku warehouse qtyOutstanding status overdue } }`, {}, { token: reader });
  t.is(listed.errors, undefined, JSON.stringify(listed.errors));
  t.deepEqual(listed.data.inbound, [{ inboundId: later.rowId, reference: 'PO-G4', sku: 'D', warehouse: 'WH1', qtyOutstanding: 6, status: 'OPEN', overdue: false }]);

  const ATP = `query ($at: Datetime) { availableToPromise(sku: "D", at: $at) { warehouse available backordered inbound atp } }`;
  const now = await api.graphql<any>(ATP, {});
  t.is(now.errors, undefined, JSON.stringify(now.errors));
  t.deepEqual(now.data.availableToPromise, [
    { warehouse: null, available: 1, backordered: 0, inbound: 0, atp: 1 },
    { warehouse: 'WH1', available: 1, backordered: 0, inbound: 0, atp: 1 },
  ]);
  const byThen = await api.graphql<any>(ATP, { at: inDays(6) });
  t.deepEqual(byThen.data.availableToPromise.map((r: any) => r.atp), [7, 7]);

  // Without a token: no purchase orders, and no writes.
  errorOf(t, await api.graphql(`{ inbound { reference } }`, {}), 'FORBIDDEN');
  errorOf(t, await api.graphql(`{ allInboundShipments { nodes { reference } } }`, {}), 'FORBIDDEN');
  errorOf(t, await api.graphql(CREATE, { reference: 'PO-P', lines: [{ sku: 'D', warehouse: 'WH1', qty: 1 }] }, {}), 'FORBIDDEN');
  errorOf(t, await api.graphql(CREATE, { reference: 'PO-R', lines: [{ sku: 'D', warehouse: 'WH1', qty: 1 }], expectedAt: inDays(1) }, { token: reader }), 'FORBIDDEN');
  t.is((await queryOne(db, `select count(*)::int as n from inventory.inbound_shipments where reference in ('PO-P', 'PO-R')`)).n, 0);
});
