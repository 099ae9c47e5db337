// Every mutation of the GraphQL API over real HTTP with a writer's token: the
// happy path (the database's function ran: rows and ledger), every error code
// the SQL API raises as extensions.code with its detail, and input refused
// before SQL with nothing written.
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
  db = await openTestDatabase('gql_mutations');
  await setupCatalog(db, {
    RES: { WH1: 10, WH2: 10 }, SHORT: { WH1: 2, WH2: 1 }, CONF: { WH1: 5 }, REL: { WH1: 5 }, EXT: { WH1: 5 },
    ADJ: { WH1: 10 }, CNT: { WH1: 10 }, TRF: { WH1: 10, WH2: 0 }, IDEM: { WH1: 10 }, BAD: { WH1: 10 }, EDIT: { WH1: 5, WH2: 5 },
    LENS: { WH1: 4 }, CAP: { WH1: 10 }, PRE: { WH1: 1 }, QC: { WH1: 6 },
  });
  await db.query(`select inventory.upsert_product('KIT')`);
  api = await startTestApi(db.url, { label: 'gql_mutations' });
  writer = await token('stockroom_writer', { sub: 'test-writer' });
  admin = await token('stockroom_admin', { sub: 'test-admin' });
});

test.after.always(async (t) => {
  await api?.stop();
  if (db) await assertInvariants(t, db);
  await db?.close();
});

type Reservation = { rowId: string; orderRef: string; status: string; expiresAt: string; releaseReason: string | null; lines: { nodes: Array<{ qty: number; stockLevel: { warehouse: { code: string } } }> } };
const RESERVATION_FIELDS = 'rowId orderRef status expiresAt releaseReason lines { nodes { qty stockLevel { warehouse { code } } } }';
const RESERVE = `mutation ($orderRef: String!, $lines: [ReserveLineInput!]!, $ttl: Int, $key: String) {
  reserve(orderRef: $orderRef, lines: $lines, ttlSeconds: $ttl, idempotencyKey: $key) { ${RESERVATION_FIELDS} }
}`;

function errorOf(t: ExecutionContext, response: GraphQLResponse<unknown>, code: string) {
  t.truthy(response.errors, `expected ${code}, got data ${JSON.stringify(response.data)}`);
  const error = response.errors![0]!;
  t.is(error.extensions?.code, code, error.message);
  return error;
}

async function movementCount(sku: string): Promise<number> {
  return Number((await queryOne<{ n: string }>(db, `select count(*) as n from inventory.movements m join inventory.products p on p.id = m.product_id where p.sku = $1`, [sku])).n);
}

test('reserve holds stock, allocates a line without a warehouse, and returns the reservation with its lines', async (t) => {
  const response = await api.graphql<{ reserve: Reservation }>(RESERVE, {
    orderRef: 'gql-1', lines: [{ sku: 'RES', warehouse: 'WH2', qty: 3 }, { sku: 'RES', qty: 2 }], ttl: 600,
  }, { token: writer });
  t.is(response.errors, undefined);
  const reservation = response.data!.reserve;
  t.like(reservation, { orderRef: 'gql-1', status: 'HELD' });
  t.deepEqual(reservation.lines.nodes.map((l) => `${l.stockLevel.warehouse.code}×${l.qty}`).sort(), ['WH1×2', 'WH2×3']);
  const ttl = (Date.parse(reservation.expiresAt) - Date.now()) / 1000;
  t.true(ttl > 590 && ttl <= 600, `expires in ${ttl} s`);
  t.like(await stockOf(db, 'RES', 'WH1'), { reserved: 2 });
  t.like(await stockOf(db, 'RES', 'WH2'), { reserved: 3 });
  const { actor } = await queryOne<{ actor: string }>(db, `select actor from inventory.movements where reservation_id = $1 limit 1`, [reservation.rowId]);
  t.is(actor, 'test-writer', 'the ledger says who did it: the token\'s subject');
});

test('reserve refused for short stock is INSUFFICIENT_STOCK listing every short line; nothing is held', async (t) => {
  const before = await movementCount('SHORT');
  const response = await api.graphql(RESERVE, {
    orderRef: 'gql-short', lines: [{ sku: 'SHORT', warehouse: 'WH1', qty: 5 }, { sku: 'SHORT', warehouse: 'WH2', qty: 4 }, { sku: 'RES', warehouse: 'WH1', qty: 1 }],
  }, { token: writer });
  const error = errorOf(t, response, 'INSUFFICIENT_STOCK');
  t.is(response.status, 200);
  const detail = error.extensions!.detail as { lines: Array<{ sku: string; warehouse: string; requested: number; available: number }> };
  t.deepEqual(detail.lines.map((l) => [l.sku, l.warehouse, l.requested, l.available]).sort(), [['SHORT', 'WH1', 5, 2], ['SHORT', 'WH2', 4, 1]]);
  t.is(await movementCount('SHORT'), before);
  t.like(await stockOf(db, 'SHORT', 'WH1'), { reserved: 0 });
});

test('a refused reserve says which of its lines are at fault: inputLines per short row (repeated lines summed), lines for unknown names', async (t) => {
  const short = await api.graphql(RESERVE, {
    orderRef: 'gql-which', lines: [
      { sku: 'RES', warehouse: 'WH1', qty: 1 }, { sku: 'SHORT', warehouse: 'WH1', qty: 1 }, { sku: 'SHORT', qty: 50 },
      { sku: 'SHORT', warehouse: 'WH1', qty: 2 }],
  }, { token: writer });
  const detail = errorOf(t, short, 'INSUFFICIENT_STOCK').extensions!.detail as { lines: Array<{ sku: string; warehouse: string | null; requested: number; inputLines: number[] }> };
  const byRow = Object.fromEntries(detail.lines.map((l) => [`${l.sku}@${l.warehouse ?? 'any'}`, [l.requested, l.inputLines]]));
  t.deepEqual(byRow['SHORT@any'], [50, [3]], 'the line left to allocation');
  t.deepEqual(byRow['SHORT@WH1'], [3, [2, 4]], 'two lines of one row (2 available), summed, point at both');
  t.false('RES@WH1' in byRow, 'a line that fits is not named');

  const unknown = await api.graphql(RESERVE, {
    orderRef: 'gql-which-2', lines: [{ sku: 'RES', warehouse: 'WH1', qty: 1 }, { sku: 'NOPE', warehouse: 'WH1', qty: 1 }, { sku: 'RES', warehouse: 'WH9', qty: 1 }],
  }, { token: writer });
  const missing = errorOf(t, unknown, 'NOT_FOUND').extensions!.detail as { unknown_skus: string[]; unknown_warehouses: string[]; lines: number[] };
  t.deepEqual(missing, { unknown_skus: ['NOPE'], unknown_warehouses: ['WH9'], lines: [2, 3] });
});

test('reserve with an idempotency key returns the first result; the same key with another payload is IDEMPOTENCY_CONFLICT', async (t) => {
  const variables = { orderRef: 'gql-idem', lines: [{ sku: 'IDEM', warehouse: 'WH1', qty: 2 }], key: 'idem-key-1' };
  const first = await api.graphql<{ reserve: Reservation }>(RESERVE, variables, { token: writer });
  const again = await api.graphql<{ reserve: Reservation }>(RESERVE, variables, { token: writer });
  t.is(first.errors, undefined);
  t.is(again.data!.reserve.rowId, first.data!.reserve.rowId);
  t.like(await stockOf(db, 'IDEM', 'WH1'), { reserved: 2 });
  const conflict = await api.graphql(RESERVE, { ...variables, lines: [{ sku: 'IDEM', warehouse: 'WH1', qty: 3 }] }, { token: writer });
  errorOf(t, conflict, 'IDEMPOTENCY_CONFLICT');
  t.like(await stockOf(db, 'IDEM', 'WH1'), { reserved: 2 });
});

test('confirm deducts a HELD reservation and is idempotent; confirming a released one is INVALID_STATE', async (t) => {
  const { id } = await queryOne<{ id: string }>(db, `select id from inventory.reserve('gql-conf', '[{"sku":"CONF","warehouse":"WH1","qty":2}]')`);
  const mutation = `mutation ($id: UUID!) { confirm(reservationId: $id) { rowId status } }`;
  const first = await api.graphql<{ confirm: { status: string } }>(mutation, { id }, { token: writer });
  t.is(first.errors, undefined);
  t.is(first.data!.confirm.status, 'CONFIRMED');
  t.is((await api.graphql<{ confirm: { status: string } }>(mutation, { id }, { token: writer })).data!.confirm.status, 'CONFIRMED');
  t.like(await stockOf(db, 'CONF', 'WH1'), { on_hand: 3, reserved: 0 });

  const { id: released } = await queryOne<{ id: string }>(db, `select id from inventory.reserve('gql-conf-2', '[{"sku":"CONF","warehouse":"WH1","qty":1}]')`);
  await db.query(`select inventory.release($1)`, [released]);
  const error = errorOf(t, await api.graphql(mutation, { id: released }, { token: writer }), 'INVALID_STATE');
  t.regex(error.message, /RELEASED/);
});

test('release gives the stock back with its reason; an unknown reservation is NOT_FOUND', async (t) => {
  const { id } = await queryOne<{ id: string }>(db, `select id from inventory.reserve('gql-rel', '[{"sku":"REL","warehouse":"WH1","qty":4}]')`);
  const mutation = `mutation ($id: UUID!, $reason: String) { release(reservationId: $id, reason: $reason) { status releaseReason } }`;
  const response = await api.graphql<{ release: { status: string; releaseReason: string } }>(mutation, { id, reason: 'CUSTOMER_CANCELLED' }, { token: writer });
  t.is(response.errors, undefined);
  t.deepEqual(response.data!.release, { status: 'RELEASED', releaseReason: 'CUSTOMER_CANCELLED' });
  t.like(await stockOf(db, 'REL', 'WH1'), { on_hand: 5, reserved: 0 });
  errorOf(t, await api.graphql(mutation, { id: '00000000-0000-4000-8000-000000000000' }, { token: writer }), 'NOT_FOUND');
});

test('editReservation, confirmLines and releaseLines change a HELD reservation part by part; their refusals carry the SQL API\'s codes', async (t) => {
  const { id } = await queryOne<{ id: string }>(db, `select id from inventory.reserve('gql-edit', '[{"sku":"EDIT","warehouse":"WH1","qty":2}]')`);
  const edit = `mutation ($id: UUID!, $lines: [ReserveLineInput!]!, $key: String) {
    editReservation(reservationId: $id, lines: $lines, idempotencyKey: $key) { ${RESERVATION_FIELDS} } }`;
  const lines = [{ sku: 'EDIT', warehouse: 'WH1', qty: 4 }, { sku: 'EDIT', warehouse: 'WH2', qty: 1 }];
  const edited = await api.graphql<{ editReservation: Reservation }>(edit, { id, lines, key: 'gql-edit-1' }, { token: writer });
  t.is(edited.errors, undefined);
  t.deepEqual(edited.data!.editReservation.lines.nodes.map((l) => [l.stockLevel.warehouse.code, l.qty]).sort(), [['WH1', 4], ['WH2', 1]]);
  t.is((await api.graphql(edit, { id, lines, key: 'gql-edit-1' }, { token: writer })).errors, undefined, 'a retry');
  t.like(await stockOf(db, 'EDIT', 'WH1'), { reserved: 4 });
  errorOf(t, await api.graphql(edit, { id, lines: [{ sku: 'EDIT', qty: 1 }], key: 'gql-edit-1' }, { token: writer }), 'IDEMPOTENCY_CONFLICT');
  const short = errorOf(t, await api.graphql(edit, { id, lines: [{ sku: 'EDIT', warehouse: 'WH1', qty: 9 }] }, { token: writer }), 'INSUFFICIENT_STOCK');
  t.deepEqual((short.extensions!.detail as { lines: unknown[] }).lines, [{ sku: 'EDIT', warehouse: 'WH1', requested: 9, available: 5, inputLines: [1] }]);

  const confirm = `mutation ($id: UUID!, $lines: [ReserveLineInput!]!) { confirmLines(reservationId: $id, lines: $lines) { status } }`;
  t.is((await api.graphql<{ confirmLines: { status: string } }>(confirm, { id, lines: [{ sku: 'EDIT', warehouse: 'WH1', qty: 1 }] }, { token: writer })).data!.confirmLines.status, 'HELD');
  t.like(await stockOf(db, 'EDIT', 'WH1'), { on_hand: 4, reserved: 3 });
  const release = `mutation ($id: UUID!, $lines: [ReserveLineInput!]!, $reason: String) {
    releaseLines(reservationId: $id, lines: $lines, reason: $reason) { status releaseReason } }`;
  const ambiguous = errorOf(t, await api.graphql(release, { id, lines: [{ sku: 'EDIT', qty: 1 }] }, { token: writer }), 'INVALID_ARGUMENT');
  t.regex(ambiguous.message, /say which/);
  errorOf(t, await api.graphql(confirm, { id, lines: [] }, { token: writer }), 'INVALID_ARGUMENT');
  const ended = await api.graphql<{ releaseLines: unknown }>(release,
    { id, lines: [{ sku: 'EDIT', warehouse: 'WH1', qty: 3 }, { sku: 'EDIT', warehouse: 'WH2', qty: 1 }], reason: 'CUSTOMER_CANCELLED' }, { token: writer });
  t.deepEqual(ended.data!.releaseLines, { status: 'CONFIRMED', releaseReason: null }, 'one unit was confirmed');
  errorOf(t, await api.graphql(confirm, { id, lines: [{ sku: 'EDIT', qty: 1 }] }, { token: writer }), 'INVALID_STATE');
  const { actor } = await queryOne<{ actor: string }>(db, `select actor from inventory.movements m join inventory.products p on p.id = m.product_id where p.sku = 'EDIT' order by m.id desc limit 1`);
  t.is(actor, 'test-writer');
});

test('extend moves expires_at; a ttl over a year is INVALID_ARGUMENT before any SQL', async (t) => {
  const { id } = await queryOne<{ id: string }>(db, `select id from inventory.reserve('gql-ext', '[{"sku":"EXT","warehouse":"WH1","qty":1}]', interval '1 minute')`);
  const mutation = `mutation ($id: UUID!, $ttl: Int!) { extend(reservationId: $id, ttlSeconds: $ttl) { expiresAt status } }`;
  const response = await api.graphql<{ extend: { expiresAt: string; status: string } }>(mutation, { id, ttl: 3600 }, { token: writer });
  t.is(response.errors, undefined);
  const ttl = (Date.parse(response.data!.extend.expiresAt) - Date.now()) / 1000;
  t.true(ttl > 3590 && ttl <= 3600, `expires in ${ttl} s`);
  const error = errorOf(t, await api.graphql(mutation, { id, ttl: 400 * 24 * 3600 }, { token: writer }), 'INVALID_ARGUMENT');
  t.regex(error.message, /ttlSeconds/);
});

test('adjust receives and corrects stock; below what is reserved is NEGATIVE_STOCK; delta 0 is INVALID_ARGUMENT', async (t) => {
  const mutation = `mutation ($delta: Int!) { adjust(sku: "ADJ", warehouse: "WH1", delta: $delta, reason: "receipt") { onHand reserved available product { sku } warehouse { code } } }`;
  const response = await api.graphql<{ adjust: Record<string, unknown> }>(mutation, { delta: 5 }, { token: writer });
  t.is(response.errors, undefined);
  t.deepEqual(response.data!.adjust, { onHand: 15, reserved: 0, available: 15, product: { sku: 'ADJ' }, warehouse: { code: 'WH1' } });
  const before = await movementCount('ADJ');
  const negative = errorOf(t, await api.graphql(mutation, { delta: -16 }, { token: writer }), 'NEGATIVE_STOCK');
  t.truthy(negative.extensions!.detail, 'the detail says by how much');
  errorOf(t, await api.graphql(mutation, { delta: 0 }, { token: writer }), 'INVALID_ARGUMENT');
  t.is(await movementCount('ADJ'), before);
  t.like(await stockOf(db, 'ADJ', 'WH1'), { on_hand: 15 });
});

test('setCount records a count; with a stale expected it is STALE_COUNT and nothing changes', async (t) => {
  const mutation = `mutation ($counted: Int!, $expected: Int) { setCount(sku: "CNT", warehouse: "WH1", counted: $counted, reason: "cycle count", expected: $expected) { onHand } }`;
  const response = await api.graphql<{ setCount: { onHand: number } }>(mutation, { counted: 8, expected: 10 }, { token: writer });
  t.is(response.errors, undefined);
  t.is(response.data!.setCount.onHand, 8);
  errorOf(t, await api.graphql(mutation, { counted: 7, expected: 10 }, { token: writer }), 'STALE_COUNT');
  t.like(await stockOf(db, 'CNT', 'WH1'), { on_hand: 8 });
  const { kind } = await queryOne<{ kind: string }>(db, `select kind from inventory.movements m join inventory.products p on p.id = m.product_id where p.sku = 'CNT' order by m.id desc limit 1`);
  t.is(kind, 'COUNT');
});

test('transfer moves stock and returns both rows; an unknown warehouse is NOT_FOUND', async (t) => {
  const mutation = `mutation ($to: String!) { transfer(sku: "TRF", fromWarehouse: "WH1", toWarehouse: $to, qty: 4, reason: "rebalance") { onHand warehouse { code } } }`;
  const response = await api.graphql<{ transfer: Array<{ onHand: number; warehouse: { code: string } }> }>(mutation, { to: 'WH2' }, { token: writer });
  t.is(response.errors, undefined);
  t.deepEqual(response.data!.transfer.map((r) => [r.warehouse.code, r.onHand]), [['WH1', 6], ['WH2', 4]]);
  errorOf(t, await api.graphql(mutation, { to: 'NOWHERE' }, { token: writer }), 'NOT_FOUND');
  t.like(await stockOf(db, 'TRF', 'WH1'), { on_hand: 6 });
});

test('input is validated before SQL: each bad argument is INVALID_ARGUMENT naming it, and nothing is written', async (t) => {
  const before = await movementCount('BAD');
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    [RESERVE, { orderRef: 'bad', lines: [{ sku: 'BAD', warehouse: 'WH1', qty: 0 }] }, /lines\.0\.qty/],
    [RESERVE, { orderRef: 'bad', lines: [{ sku: 'BAD', warehouse: 'WH1', qty: -3 }] }, /lines\.0\.qty/],
    [RESERVE, { orderRef: 'bad', lines: [] }, /lines/],
    [RESERVE, { orderRef: '   ', lines: [{ sku: 'BAD', qty: 1 }] }, /orderRef/],
    [RESERVE, { orderRef: 'bad', lines: [{ sku: '', qty: 1 }] }, /lines\.0\.sku/],
    [RESERVE, { orderRef: 'bad', lines: [{ sku: 'BAD', qty: 1 }], ttl: 0 }, /ttlSeconds/],
    [RESERVE, { orderRef: 'bad', lines: [{ sku: 'BAD', qty: 1 }], key: '' }, /idempotencyKey/],
    [`mutation { adjust(sku: "BAD", warehouse: "WH1", delta: 1, reason: "") { onHand } }`, {}, /reason/],
    [`mutation { setCount(sku: "BAD", warehouse: "WH1", counted: -1, reason: "count") { onHand } }`, {}, /counted/],
    [`mutation { transfer(sku: "BAD", fromWarehouse: "WH1", toWarehouse: "WH2", qty: 0, reason: "x") { onHand } }`, {}, /qty/],
  ];
  for (const [query, variables, argument] of cases) {
    const error = errorOf(t, await api.graphql(query, variables, { token: writer }), 'INVALID_ARGUMENT');
    t.regex(error.message, argument, JSON.stringify(variables));
  }
  // Types GraphQL itself refuses (a float for an Int, a malformed UUID) never reach a resolver.
  const typed = await api.graphql(`mutation { confirm(reservationId: "not-a-uuid") { status } }`, {}, { token: writer });
  t.truthy(typed.errors);
  const float = await api.graphql(RESERVE, { orderRef: 'bad', lines: [{ sku: 'BAD', qty: 1.5 }] }, { token: writer });
  t.truthy(float.errors);
  t.is(await movementCount('BAD'), before);
  t.like(await stockOf(db, 'BAD', 'WH1'), { on_hand: 10, reserved: 0 });
});

test('an unknown sku is NOT_FOUND with the sku in the message', async (t) => {
  const error = errorOf(t, await api.graphql(RESERVE, { orderRef: 'nf', lines: [{ sku: 'NO-SUCH-SKU', qty: 1 }] }, { token: writer }), 'NOT_FOUND');
  t.regex(error.message, /NO-SUCH-SKU/);
});

test('the admin mutations run as admin: upsertProduct, expireDue, verifyCounters', async (t) => {
  const response = await api.graphql(`mutation {
    upsertProduct(input: { sku: "NEW-1", name: "New product" }) { clientMutationId }
    expireDue(input: {}) { clientMutationId }
  }`, {}, { token: admin });
  t.is(response.errors, undefined, JSON.stringify(response.errors));
  t.truthy(await queryOne(db, `select 1 from inventory.products where sku = 'NEW-1'`));
  const verify = await api.graphql(`mutation { verifyCounters(input: { fix: false }) { clientMutationId } }`, {}, { token: admin });
  t.is(verify.errors, undefined, JSON.stringify(verify.errors));
});

// Kits and backorders: the SQL functions as mutations and queries (setKit, kitStock,
// setBackorderPolicy, backorderPosition), and reserve taking kit lines and backordering.
const RESERVE_SHOWING_KITS = `mutation ($orderRef: String!, $lines: [ReserveLineInput!]!) {
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
  const held = await api.graphql<any>(RESERVE_SHOWING_KITS, { orderRef: 'kit-1', lines: [{ sku: 'KIT', warehouse: 'WH1', qty: 3 }] }, { token: writer });
  t.is(held.errors, undefined, JSON.stringify(held.errors));
  t.like(held.data.reserve, { status: 'HELD', kitLines: { nodes: [{ qty: 3, kit: { sku: 'KIT' } }] } });
  t.like(await stockOf(db, 'CAP', 'WH1'), { reserved: 6 });
  // LENS is short for the kit line (1 left, 2 asked): the refusal marks the kit's line.
  const short = await api.graphql<any>(RESERVE_SHOWING_KITS, { orderRef: 'kit-2', lines: [{ sku: 'CAP', warehouse: 'WH1', qty: 1 }, { sku: 'KIT', warehouse: 'WH1', qty: 2 }] }, { token: writer });
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
  const first = await api.graphql<any>(RESERVE_SHOWING_KITS, { orderRef: 'pre-1', lines: [{ sku: 'PRE', warehouse: 'WH1', qty: 3 }] }, { token: writer });
  t.is(first.errors, undefined, JSON.stringify(first.errors));
  t.deepEqual(first.data.reserve.lines.nodes, [{ qty: 1, backordered: 2 }]);
  const second = await api.graphql<any>(RESERVE_SHOWING_KITS, { orderRef: 'pre-2', lines: [{ sku: 'PRE', qty: 2 }] }, { token: writer });
  const position = await api.graphql<any>(`query ($id: UUID!) { backorderPosition(reservationId: $id) { sku warehouse backordered queuePosition unitsAhead expectedAt } }`,
    { id: second.data.reserve.rowId }, { token: writer });
  t.is(position.errors, undefined, JSON.stringify(position.errors));
  t.like(position.data.backorderPosition[0], { sku: 'PRE', warehouse: 'WH1', backordered: 2, queuePosition: '2', unitsAhead: '2' });
  t.regex(position.data.backorderPosition[0].expectedAt, /^2099-01-01/);
  const over = await api.graphql<any>(RESERVE_SHOWING_KITS, { orderRef: 'pre-3', lines: [{ sku: 'PRE', warehouse: 'WH1', qty: 2 }] }, { token: writer });
  t.is(over.errors?.[0]?.extensions?.code, 'INSUFFICIENT_STOCK');
});

test('moveStockState and adjustState move units into and out of quantity states; stock and stockStates show them; a reader may not move them', async (t) => {
  const moved = await api.graphql<any>(`mutation {
    moveStockState(input: { sku: "QC", warehouse: "WH1", qty: 2, fromState: null, toState: "DAMAGED", reason: "dropped" }) { result { onHand unavailable available } }
  }`, {}, { token: writer });
  t.is(moved.errors, undefined, JSON.stringify(moved.errors));
  t.deepEqual(moved.data.moveStockState.result, { onHand: 6, unavailable: 2, available: 4 });
  const received = await api.graphql<any>(`mutation {
    adjustState(input: { sku: "QC", warehouse: "WH1", state: "QUALITY_CONTROL", delta: 1, reason: "return RMA-9" }) { result { onHand unavailable } }
  }`, {}, { token: writer });
  t.is(received.errors, undefined, JSON.stringify(received.errors));
  t.deepEqual(received.data.adjustState.result, { onHand: 7, unavailable: 3 });
  const read = await api.graphql<any>(`{
    stock(skus: ["QC"]) { warehouse onHand available unavailable }
    stockStates(skus: ["QC"]) { warehouse state qty }
  }`, {}, { token: writer });
  t.is(read.errors, undefined, JSON.stringify(read.errors));
  t.deepEqual(read.data.stock, [{ warehouse: 'WH1', onHand: 7, available: 4, unavailable: 3 }]);
  t.deepEqual(read.data.stockStates, [{ warehouse: 'WH1', state: 'DAMAGED', qty: 2 }, { warehouse: 'WH1', state: 'QUALITY_CONTROL', qty: 1 }]);
  const tooMany = await api.graphql<any>(`mutation {
    moveStockState(input: { sku: "QC", warehouse: "WH1", qty: 3, fromState: "DAMAGED", toState: null, reason: "repaired" }) { result { onHand } }
  }`, {}, { token: writer });
  t.truthy(tooMany.errors, 'DAMAGED holds 2');
  t.regex(JSON.stringify(tooMany.errors), /it holds 2/);
  const reader = await token('stockroom_reader');
  const refused = await api.graphql<any>(`mutation {
    moveStockState(input: { sku: "QC", warehouse: "WH1", qty: 1, fromState: "DAMAGED", toState: null, reason: "x" }) { result { onHand } }
  }`, {}, { token: reader });
  t.truthy(refused.errors, 'a reader may not move stock between states');
  t.like(await stockOf(db, 'QC', 'WH1'), { on_hand: 7 });
});
