// Transfers in transit over GraphQL, with real HTTP and tokens: shipTransfer,
// receiveTransfer and writeOffTransfer return the shipment (TransitShipment)
// after the database's functions ran; inTransit reads per route; the SQL
// API's errors arrive as extension codes; input is refused before SQL.
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
  db = await openTestDatabase('gql_transit');
  await setupCatalog(db, { SHIP: { WH1: 10, WH2: 0 }, LOST: { WH1: 10 }, BAD: { WH1: 10 }, INPUT: { WH1: 10 }, HELD: { WH1: 5 }, IDEM: { WH1: 10 } });
  api = await startTestApi(db.url, { label: 'gql_transit' });
  writer = await token('stockroom_writer', { sub: 'test-writer' });
  reader = await token('stockroom_reader', { sub: 'test-reader' });
});

test.after.always(async (t) => {
  await api?.stop();
  if (db) await assertInvariants(t, db);
  await db?.close();
});

type Shipment = { rowId: string; reference: string; status: string; qtyShipped: number; qtyReceived: number; qtyLost: number; qtyInTransit: number;
  product: { sku: string }; fromWarehouse: { code: string }; toWarehouse: { code: string } };
const SHIPMENT = 'rowId reference status qtyShipped qtyReceived qtyLost qtyInTransit product { sku } fromWarehouse { code } toWarehouse { code }';
const SHIP = `mutation ($sku: String!, $from: String!, $to: String!, $qty: Int!, $reason: String!, $key: String) {
  shipTransfer(sku: $sku, fromWarehouse: $from, toWarehouse: $to, qty: $qty, reason: $reason, idempotencyKey: $key) { ${SHIPMENT} }
}`;
const RECEIVE = `mutation ($id: UUID!, $qty: Int!, $key: String) {
  receiveTransfer(shipmentId: $id, qty: $qty, reason: "delivery note 7", idempotencyKey: $key) { ${SHIPMENT} }
}`;
const WRITE_OFF = `mutation ($id: UUID!, $qty: Int) { writeOffTransfer(shipmentId: $id, reason: "lost by carrier", qty: $qty) { ${SHIPMENT} } }`;
const IN_TRANSIT = `query ($sku: String) { inTransit(sku: $sku) { sku fromWarehouse toWarehouse shipments qtyInTransit } }`;

function errorOf(t: ExecutionContext, response: GraphQLResponse<unknown>, code: string) {
  t.truthy(response.errors, `expected ${code}, got data ${JSON.stringify(response.data)}`);
  const error = response.errors![0]!;
  t.is(error.extensions?.code, code, error.message);
  return error;
}

async function ship(sku: string, qty: number, key?: string): Promise<Shipment> {
  const response = await api.graphql<{ shipTransfer: Shipment }>(SHIP, { sku, from: 'WH1', to: 'WH2', qty, reason: 'rebalance', key }, { token: writer });
  if (response.errors) throw new Error(JSON.stringify(response.errors));
  return response.data!.shipTransfer;
}

const movementCount = async (sku: string) => Number((await queryOne<{ n: string }>(db,
  `select count(*) as n from inventory.movements m join inventory.products p on p.id = m.product_id where p.sku = $1`, [sku])).n);

test('shipTransfer, receiveTransfer and inTransit: units leave, travel and arrive in parts', async (t) => {
  const shipment = await ship('SHIP', 6);
  t.like(shipment, { status: 'IN_TRANSIT', qtyShipped: 6, qtyInTransit: 6, product: { sku: 'SHIP' }, fromWarehouse: { code: 'WH1' }, toWarehouse: { code: 'WH2' } });
  t.is(shipment.reference, `transit:${shipment.rowId}`);
  t.like(await stockOf(db, 'SHIP', 'WH1'), { on_hand: 4 });
  const routes = await api.graphql<{ inTransit: unknown[] }>(IN_TRANSIT, { sku: 'SHIP' }, { token: reader });
  t.is(routes.errors, undefined, JSON.stringify(routes.errors));
  t.deepEqual(routes.data!.inTransit, [{ sku: 'SHIP', fromWarehouse: 'WH1', toWarehouse: 'WH2', shipments: 1, qtyInTransit: '6' }]);

  const part = await api.graphql<{ receiveTransfer: Shipment }>(RECEIVE, { id: shipment.rowId, qty: 4 }, { token: writer });
  t.is(part.errors, undefined, JSON.stringify(part.errors));
  t.like(part.data!.receiveTransfer, { status: 'PARTIAL', qtyReceived: 4, qtyInTransit: 2 });
  t.like(await stockOf(db, 'SHIP', 'WH2'), { on_hand: 4 });
  const { actor } = await queryOne<{ actor: string }>(db, `select actor from inventory.movements where kind = 'TRANSIT_IN' and reference = $1`, [shipment.reference]);
  t.is(actor, 'test-writer', 'the ledger says who received it');

  const rest = await api.graphql<{ receiveTransfer: Shipment }>(RECEIVE, { id: shipment.rowId, qty: 2 }, { token: writer });
  t.like(rest.data!.receiveTransfer, { status: 'RECEIVED', qtyInTransit: 0 });
  t.deepEqual((await api.graphql<{ inTransit: unknown[] }>(IN_TRANSIT, { sku: 'SHIP' }, { token: reader })).data!.inTransit, []);
});

test('writeOffTransfer takes what is left out of transit, on_hand unchanged; the shipment ends CLOSED', async (t) => {
  const shipment = await ship('LOST', 5);
  const part = await api.graphql<{ writeOffTransfer: Shipment }>(WRITE_OFF, { id: shipment.rowId, qty: 1 }, { token: writer });
  t.like(part.data!.writeOffTransfer, { status: 'PARTIAL', qtyLost: 1, qtyInTransit: 4 });
  const rest = await api.graphql<{ writeOffTransfer: Shipment }>(WRITE_OFF, { id: shipment.rowId }, { token: writer });
  t.like(rest.data!.writeOffTransfer, { status: 'CLOSED', qtyLost: 5, qtyInTransit: 0 });
  t.like(await stockOf(db, 'LOST', 'WH1'), { on_hand: 5 });
  errorOf(t, await api.graphql(WRITE_OFF, { id: shipment.rowId }, { token: writer }), 'INVALID_STATE');
});

test('the SQL API\'s refusals arrive as codes with their detail, and nothing is written', async (t) => {
  await db.query(`select inventory.reserve('gql-held', '[{"sku":"HELD","warehouse":"WH1","qty":4}]')`);
  const before = await movementCount('HELD');
  const short = errorOf(t, await api.graphql(SHIP, { sku: 'HELD', from: 'WH1', to: 'WH2', qty: 2, reason: 'x' }, { token: writer }), 'NEGATIVE_STOCK');
  t.like(short.extensions!.detail, { sku: 'HELD', on_hand: 5, reserved: 4, qty: 2 });
  t.is(await movementCount('HELD'), before);

  const shipment = await ship('BAD', 3);
  const over = errorOf(t, await api.graphql(RECEIVE, { id: shipment.rowId, qty: 4 }, { token: writer }), 'INVALID_ARGUMENT');
  t.like(over.extensions!.detail, { argument: 'qty', requested: 4, qty_in_transit: 3 });
  t.regex(String(over.extensions!.hint), /Receive at most 3/);
  errorOf(t, await api.graphql(RECEIVE, { id: '00000000-0000-7000-8000-000000000000', qty: 1 }, { token: writer }), 'NOT_FOUND');
  errorOf(t, await api.graphql(SHIP, { sku: 'BAD', from: 'WH1', to: 'WH9', qty: 1, reason: 'x' }, { token: writer }), 'NOT_FOUND');
  t.like(await queryOne(db, 'select qty_received from inventory.transit_shipments where id = $1', [shipment.rowId]), { qty_received: 0 });
});

test('input is refused before SQL (INVALID_ARGUMENT naming it); a reader may not ship', async (t) => {
  const before = await movementCount('INPUT');
  for (const [variables, argument] of [
    [{ sku: 'INPUT', from: 'WH1', to: 'WH2', qty: 0, reason: 'x' }, 'qty'],
    [{ sku: 'INPUT', from: 'WH1', to: 'WH2', qty: 1, reason: ' ' }, 'reason'],
    [{ sku: 'INPUT', from: '', to: 'WH2', qty: 1, reason: 'x' }, 'fromWarehouse'],
  ] as const) {
    const error = errorOf(t, await api.graphql(SHIP, variables, { token: writer }), 'INVALID_ARGUMENT');
    t.like(error.extensions!.detail, { argument });
  }
  const shipment = await ship('INPUT', 1);
  const error = errorOf(t, await api.graphql(WRITE_OFF, { id: shipment.rowId, qty: -1 }, { token: writer }), 'INVALID_ARGUMENT');
  t.like(error.extensions!.detail, { argument: 'qty' });
  errorOf(t, await api.graphql(SHIP, { sku: 'INPUT', from: 'WH1', to: 'WH2', qty: 1, reason: 'x' }, { token: reader }), 'FORBIDDEN');
  t.is(await movementCount('INPUT'), before + 1, 'only the one good shipment');
});

test('a retried shipTransfer with the same key returns the same shipment and ships once', async (t) => {
  const first = await ship('IDEM', 3, 'gql-ship-1');
  const again = await ship('IDEM', 3, 'gql-ship-1');
  t.is(again.rowId, first.rowId);
  t.like(await stockOf(db, 'IDEM', 'WH1'), { on_hand: 7 });
  errorOf(t, await api.graphql(SHIP, { sku: 'IDEM', from: 'WH1', to: 'WH2', qty: 4, reason: 'rebalance', key: 'gql-ship-1' }, { token: writer }), 'IDEMPOTENCY_CONFLICT');
});
