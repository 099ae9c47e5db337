// Inbound stock and available-to-promise: create_inbound, receive_inbound,
// close_inbound, cancel_inbound, inbound(), available_to_promise, and
// backorder_position's expected_at from inbound.
import anyTest, { type TestFn } from 'ava';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

interface Shipment { id: string; reference: string; kind: string; status: string }
interface Line { sku: string; warehouse: string; qty_expected: number; qty_received: number; status: string; closed_reason: string | null }
interface Atp { sku: string; warehouse: string | null; available: number; backordered: number | null; inbound: number | null; atp: number }

const DAY = 24 * 3600 * 1000;
const inDays = (days: number) => new Date(Date.now() + days * DAY).toISOString();

const createInbound = (db: Queryable, reference: string, lines: unknown, options: { kind?: string; key?: string | null; expectedAt?: string | null } = {}) =>
  queryOne<Shipment>(db, 'select * from inventory.create_inbound($1, $2::jsonb, $3, $4, $5)',
    [reference, JSON.stringify(lines), options.kind ?? 'PURCHASE', options.key ?? null, options.expectedAt ?? null]);

const receive = (db: Queryable, id: string, lines: unknown, options: { reason?: string | null; allow?: boolean; key?: string | null } = {}) =>
  queryOne<Shipment>(db, 'select * from inventory.receive_inbound($1, $2::jsonb, $3, $4, $5)',
    [id, lines === null ? null : JSON.stringify(lines), options.reason ?? null, options.allow ?? false, options.key ?? null]);

async function linesOf(db: Queryable, id: string): Promise<Line[]> {
  const { rows } = await db.query<Line>(`
    select p.sku, w.code as warehouse, l.qty_expected, l.qty_received, l.status, l.closed_reason
    from inventory.inbound_lines l join inventory.products p on p.id = l.product_id join inventory.warehouses w on w.id = l.warehouse_id
    where l.shipment_id = $1 order by p.sku, w.code`, [id]);
  return rows;
}

async function atp(db: Queryable, sku: string, warehouse: string | null = null, at: string | null = null): Promise<Atp[]> {
  const { rows } = await db.query<Atp>(
    `select * from inventory.available_to_promise($1, $2, coalesce($3::timestamptz, now()))`, [sku, warehouse, at]);
  return rows;
}

/** What a call must leave untouched when it fails: the ledger, the keys, stock rows and the inbound tables. */
async function writes(db: Queryable) {
  return queryOne(db, `
    select (select count(*) from inventory.movements)::int as movements,
           (select count(*) from inventory.operation_keys)::int as operation_keys,
           (select coalesce(jsonb_agg(s order by s.product_id, s.warehouse_id), '[]') from inventory.stock_levels s) as stock_levels,
           (select coalesce(jsonb_agg(s order by s.id), '[]') from inventory.inbound_shipments s) as shipments,
           (select coalesce(jsonb_agg(l order by l.shipment_id, l.product_id, l.warehouse_id), '[]') from inventory.inbound_lines l) as lines`);
}

test('create_inbound records what is expected where and when; nothing moves on the stock rows until it is received', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5, WH2: 0 }, B: { WH1: 0 } });
  const movementsBefore = (await queryOne(db, 'select count(*)::int as n from inventory.movements')).n;
  const po = await createInbound(db, 'PO-1001', [
    { sku: 'A', warehouse: 'WH1', qty: 10, expected_at: inDays(3) },
    { sku: 'A', warehouse: 'WH2', qty: 4 },
    { sku: 'B', warehouse: 'WH1', qty: 7 },
  ], { expectedAt: inDays(10) });
  t.like(po, { reference: 'PO-1001', kind: 'PURCHASE', status: 'OPEN' });
  t.deepEqual(await linesOf(db, po.id), [
    { sku: 'A', warehouse: 'WH1', qty_expected: 10, qty_received: 0, status: 'OPEN', closed_reason: null },
    { sku: 'A', warehouse: 'WH2', qty_expected: 4, qty_received: 0, status: 'OPEN', closed_reason: null },
    { sku: 'B', warehouse: 'WH1', qty_expected: 7, qty_received: 0, status: 'OPEN', closed_reason: null },
  ]);
  const { rows: listed } = await db.query(`select reference, sku, warehouse, qty_outstanding, status, overdue, expected_at from inventory.inbound('A')`);
  t.deepEqual(listed.map((r) => [r.reference, r.sku, r.warehouse, r.qty_outstanding, r.status, r.overdue]),
    [['PO-1001', 'A', 'WH1', 10, 'OPEN', false], ['PO-1001', 'A', 'WH2', 4, 'OPEN', false]], 'soonest first');
  t.true(Math.abs(listed[1]!.expected_at.getTime() - Date.parse(inDays(10))) < 1000, 'a line without a date takes the expected_at argument');
  t.is((await queryOne(db, 'select count(*)::int as n from inventory.movements')).n, movementsBefore);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 5 });
  const rma = await createInbound(db, 'RMA-7', [{ sku: 'B', warehouse: 'WH1', qty: 1, expected_at: inDays(1) }], { kind: 'RETURN' });
  t.like(rma, { kind: 'RETURN', status: 'OPEN' });
});

test('a partial receipt makes the line PARTIAL; receiving the rest makes it and the shipment RECEIVED, with RECEIVE movements', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 }, B: { WH1: 0 } });
  const po = await createInbound(db, 'PO-2', [{ sku: 'A', warehouse: 'WH1', qty: 10 }, { sku: 'B', warehouse: 'WH1', qty: 3 }], { expectedAt: inDays(2) });
  const first = await receive(db, po.id, [{ sku: 'A', qty: 4 }]);
  t.is(first.status, 'PARTIAL');
  t.deepEqual((await linesOf(db, po.id)).map((l) => [l.sku, l.qty_received, l.status]), [['A', 4, 'PARTIAL'], ['B', 0, 'OPEN']]);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 9 });
  const { rows: moved } = await db.query(`
    select kind, on_hand_delta, on_hand_after, reason, reference from inventory.movements m
    where m.reference like 'inbound:%' order by id`);
  t.deepEqual(moved, [{ kind: 'RECEIVE', on_hand_delta: 4, on_hand_after: 9, reason: 'PO-2 received', reference: `inbound:${po.id}` }]);

  // Everything still outstanding (lines null): 6 of A and all of B; B's stock row is made.
  const rest = await receive(db, po.id, null, { reason: 'dock 4' });
  t.is(rest.status, 'RECEIVED');
  t.deepEqual((await linesOf(db, po.id)).map((l) => [l.sku, l.qty_received, l.status]), [['A', 10, 'RECEIVED'], ['B', 3, 'RECEIVED']]);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 15 });
  t.like(await stockOf(db, 'B', 'WH1'), { on_hand: 3 });
  t.deepEqual((await db.query(`select reason, on_hand_delta from inventory.movements where reference = $1 and reason = 'dock 4' order by on_hand_delta`,
    [`inbound:${po.id}`])).rows.map((r) => r.on_hand_delta), [3, 6]);
  // Nothing left: a second "everything" receives nothing; the open listing is empty.
  t.is((await receive(db, po.id, null)).status, 'RECEIVED');
  t.is((await queryOne(db, `select count(*)::int as n from inventory.movements where reference = $1`, [`inbound:${po.id}`])).n, 3);
  t.deepEqual((await db.query('select * from inventory.inbound()')).rows, []);
  t.is((await db.query('select * from inventory.inbound(include_closed => true)')).rows.length, 2);
});

test('an over-receipt is refused (IV005, every such line, nothing written) unless allow_over_receipt, which records it', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 0 }, B: { WH1: 0 } });
  const po = await createInbound(db, 'PO-3', [{ sku: 'A', warehouse: 'WH1', qty: 10 }, { sku: 'B', warehouse: 'WH1', qty: 2 }], { expectedAt: inDays(1) });
  await receive(db, po.id, [{ sku: 'A', warehouse: 'WH1', qty: 8 }]);
  const before = await writes(db);
  const over = await rejectsWithCode(t, receive(db, po.id, [{ sku: 'A', qty: 3 }, { sku: 'B', qty: 2 }]), 'IV005');
  t.regex(over.message, /over-receipt: 1 line\(s\) of inbound shipment .* \(PO-3\) would receive more than expected: A at WH1 requested 3, outstanding 2 \(expected 10, received 8\)/);
  t.deepEqual(JSON.parse(over.detail!).lines, [{ sku: 'A', warehouse: 'WH1', expected: 10, received: 8, outstanding: 2, requested: 3 }]);
  t.regex(over.hint!, /allow_over_receipt/);
  t.deepEqual(await writes(db), before, 'all lines or none: B was not received either');
  // Repeated lines add up before the check.
  await rejectsWithCode(t, receive(db, po.id, [{ sku: 'A', qty: 2 }, { sku: 'A', warehouse: 'WH1', qty: 1 }]), 'IV005');

  const allowed = await receive(db, po.id, [{ sku: 'A', qty: 3 }], { allow: true });
  t.is(allowed.status, 'PARTIAL', 'B is still expected');
  t.like((await linesOf(db, po.id))[0], { qty_expected: 10, qty_received: 11, status: 'RECEIVED' });
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 11 });
  // A RECEIVED line expects nothing more: one more unit is an over-receipt too.
  await rejectsWithCode(t, receive(db, po.id, [{ sku: 'A', qty: 1 }]), 'IV005');
});

test('an under-receipt stays PARTIAL until close_inbound closes it short; a closed line receives nothing (IV003)', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 0, WH2: 0 } });
  const po = await createInbound(db, 'PO-4', [{ sku: 'A', warehouse: 'WH1', qty: 10 }, { sku: 'A', warehouse: 'WH2', qty: 5 }], { expectedAt: inDays(1) });
  await receive(db, po.id, [{ sku: 'A', warehouse: 'WH1', qty: 7 }]);
  t.deepEqual((await atp(db, 'A', null, inDays(2))).map((r) => [r.warehouse, r.inbound, r.atp]), [[null, 8, 15], ['WH1', 3, 10], ['WH2', 5, 5]]);

  const closedOne = await db.query(`select * from inventory.close_inbound($1, 'supplier shipped short', sku => 'A', warehouse => 'WH1')`, [po.id]);
  t.is(closedOne.rows[0]!.status, 'PARTIAL', 'WH2 is still expected');
  t.deepEqual((await linesOf(db, po.id)).map((l) => [l.warehouse, l.qty_received, l.status, l.closed_reason]),
    [['WH1', 7, 'CLOSED_SHORT', 'supplier shipped short'], ['WH2', 0, 'OPEN', null]]);
  t.deepEqual((await atp(db, 'A', 'WH1', inDays(2))).map((r) => [r.inbound, r.atp]), [[0, 7]], 'a closed line is no longer counted');
  const refused = await rejectsWithCode(t, receive(db, po.id, [{ sku: 'A', warehouse: 'WH1', qty: 1 }]), 'IV003');
  t.regex(refused.message, /expects nothing more of A at WH1 \(CLOSED_SHORT\)/);
  t.regex(refused.hint!, /inventory\.adjust/);

  const closed = await queryOne<Shipment>(db, `select * from inventory.close_inbound($1, 'rest cancelled by supplier')`, [po.id]);
  t.is(closed.status, 'CLOSED_SHORT');
  const again = await queryOne<Shipment>(db, `select * from inventory.close_inbound($1, 'once more')`, [po.id]);
  t.is(again.status, 'CLOSED_SHORT');
  t.deepEqual((await linesOf(db, po.id)).map((l) => l.closed_reason), ['supplier shipped short', 'rest cancelled by supplier'], 'closing again changes nothing');
  await rejectsWithCode(t, receive(db, po.id, null), 'IV003');
  await rejectsWithCode(t, db.query(`select inventory.close_inbound($1, 'x', sku => 'A', warehouse => 'WH3')`, [po.id]), 'IV004');
});

test('cancel_inbound cancels a shipment nothing of which came, idempotently; after a receipt it is IV003', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 0 }, B: { WH1: 0 } });
  const po = await createInbound(db, 'PO-5', [{ sku: 'A', warehouse: 'WH1', qty: 3 }, { sku: 'B', warehouse: 'WH1', qty: 3 }], { expectedAt: inDays(1) });
  const cancelled = await queryOne<Shipment>(db, `select * from inventory.cancel_inbound($1, 'order cancelled')`, [po.id]);
  t.is(cancelled.status, 'CANCELLED');
  t.deepEqual((await linesOf(db, po.id)).map((l) => [l.status, l.closed_reason]), [['CANCELLED', 'order cancelled'], ['CANCELLED', 'order cancelled']]);
  t.is((await queryOne<Shipment>(db, 'select * from inventory.cancel_inbound($1)', [po.id])).status, 'CANCELLED');
  t.deepEqual((await linesOf(db, po.id)).map((l) => l.closed_reason), ['order cancelled', 'order cancelled'], 'cancelling again changes nothing');
  await rejectsWithCode(t, receive(db, po.id, [{ sku: 'A', qty: 1 }]), 'IV003');
  t.deepEqual((await atp(db, 'A', 'WH1', inDays(5))).map((r) => [r.warehouse, r.inbound, r.atp]), [['WH1', 0, 0]], 'a named warehouse has its row, even empty');

  const received = await createInbound(db, 'PO-6', [{ sku: 'A', warehouse: 'WH1', qty: 3 }], { expectedAt: inDays(1) });
  await receive(db, received.id, [{ sku: 'A', qty: 1 }]);
  const before = await writes(db);
  const refused = await rejectsWithCode(t, db.query('select inventory.cancel_inbound($1)', [received.id]), 'IV003');
  t.regex(refused.message, /1 unit\(s\) of it were received/);
  t.regex(refused.hint!, /close_inbound/);
  t.deepEqual(await writes(db), before);
});

test('retries with the same idempotency key return the first result and write nothing twice; another request with it is IV006', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 0, WH2: 0 } });
  const lines = [{ sku: 'A', warehouse: 'WH1', qty: 10 }, { sku: 'A', warehouse: 'WH2', qty: 2 }];
  const first = await createInbound(db, 'PO-7', lines, { key: 'po-7', expectedAt: '2030-01-01T00:00:00Z' });
  // The same request in another order, with the date written in another time zone.
  const again = await createInbound(db, 'PO-7', [...lines].reverse(), { key: 'po-7', expectedAt: '2030-01-01T01:00:00+01:00' });
  t.is(again.id, first.id);
  t.is((await queryOne(db, 'select count(*)::int as n from inventory.inbound_lines')).n, 2);
  const conflict = await rejectsWithCode(t, createInbound(db, 'PO-7', [lines[0]], { key: 'po-7', expectedAt: '2030-01-01T00:00:00Z' }), 'IV006');
  t.is(JSON.parse(conflict.detail!).inbound_id, first.id);

  await receive(db, first.id, [{ sku: 'A', warehouse: 'WH1', qty: 4 }], { key: 'rcv-1' });
  const retried = await receive(db, first.id, [{ sku: 'A', warehouse: 'WH1', qty: 4 }], { key: 'rcv-1' });
  t.is(retried.status, 'PARTIAL');
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 4 });
  t.is((await queryOne(db, `select count(*)::int as n from inventory.movements where idempotency_key = 'rcv-1'`)).n, 1);
  await rejectsWithCode(t, receive(db, first.id, [{ sku: 'A', warehouse: 'WH1', qty: 5 }], { key: 'rcv-1' }), 'IV006');
  await rejectsWithCode(t, db.query(`select inventory.adjust('A', 'WH1', 4, 'PO-7 received', 'rcv-1')`), 'IV006', );
  // A receipt that fails does not use up its key.
  await rejectsWithCode(t, receive(db, first.id, [{ sku: 'A', warehouse: 'WH1', qty: 7 }], { key: 'rcv-2' }), 'IV005');
  await receive(db, first.id, [{ sku: 'A', warehouse: 'WH1', qty: 6 }], { key: 'rcv-2' });
  t.like((await linesOf(db, first.id))[0], { qty_received: 10, status: 'RECEIVED' });
});

test('bad input is refused with the SQLSTATE that says why, and writes nothing', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 0, WH2: 0 }, LENS: { WH1: 0 } });
  await db.query(`select inventory.upsert_product('KIT')`);
  await db.query(`select inventory.set_kit('KIT', '[{"sku": "LENS", "qty": 1}]')`);
  const po = await createInbound(db, 'PO-8', [{ sku: 'A', warehouse: 'WH1', qty: 5 }, { sku: 'A', warehouse: 'WH2', qty: 5 }], { expectedAt: inDays(1) });
  const before = await writes(db);
  const at = inDays(1);
  const cases: Array<[string, () => Promise<unknown>, string, RegExp]> = [
    ['blank reference', () => createInbound(db, ' ', [{ sku: 'A', warehouse: 'WH1', qty: 1, expected_at: at }]), 'IV005', /reference must be a non-empty text/],
    ['long reference', () => createInbound(db, 'R'.repeat(201), [{ sku: 'A', warehouse: 'WH1', qty: 1, expected_at: at }]), 'IV005', /reference must be at most 200 characters/],
    ['kind', () => createInbound(db, 'X', [{ sku: 'A', warehouse: 'WH1', qty: 1, expected_at: at }], { kind: 'GIFT' }), 'IV005', /kind must be PURCHASE or RETURN/],
    ['empty lines', () => createInbound(db, 'X', []), 'IV005', /lines must be a non-empty array/],
    ['no warehouse', () => createInbound(db, 'X', [{ sku: 'A', qty: 1, expected_at: at }]), 'IV005', /line 1 of lines: "warehouse" is required/],
    ['no date', () => createInbound(db, 'X', [{ sku: 'A', warehouse: 'WH1', qty: 1 }]), 'IV005', /line 1 of lines: "expected_at" is required/],
    ['bad date', () => createInbound(db, 'X', [{ sku: 'A', warehouse: 'WH1', qty: 1, expected_at: 'soon' }]), 'IV005', /"expected_at" must be a date and time, got 'soon'/],
    ['infinite date', () => createInbound(db, 'X', [{ sku: 'A', warehouse: 'WH1', qty: 1, expected_at: 'infinity' }]), 'IV005', /finite/],
    ['qty', () => createInbound(db, 'X', [{ sku: 'A', warehouse: 'WH1', qty: 0, expected_at: at }]), 'IV005', /line 1 of lines: "qty" must be a positive integer/],
    ['field', () => createInbound(db, 'X', [{ sku: 'A', warehouse: 'WH1', qty: 1, expected_at: at, price: 3 }]), 'IV005', /unknown field\(s\) price/],
    ['twice', () => createInbound(db, 'X', [{ sku: 'A', warehouse: 'WH1', qty: 1, expected_at: at }, { sku: 'A', warehouse: 'WH1', qty: 2, expected_at: at }]), 'IV005', /more than once \(lines \[1, 2\]\)/],
    ['unknown sku', () => createInbound(db, 'X', [{ sku: 'NOPE', warehouse: 'WH1', qty: 1, expected_at: at }]), 'IV004', /unknown sku 'NOPE'/],
    ['unknown warehouse', () => createInbound(db, 'X', [{ sku: 'A', warehouse: 'WH9', qty: 1, expected_at: at }]), 'IV004', /unknown warehouse 'WH9'/],
    ['kit', () => createInbound(db, 'X', [{ sku: 'KIT', warehouse: 'WH1', qty: 1, expected_at: at }]), 'IV005', /is a kit/],
    ['unknown shipment', () => receive(db, '00000000-0000-0000-0000-000000000000', null), 'IV004', /unknown inbound shipment/],
    ['ambiguous line', () => receive(db, po.id, [{ sku: 'A', qty: 1 }]), 'IV005', /line 1: it expects A at WH1, WH2, say which/],
    ['line not expected', () => receive(db, po.id, [{ sku: 'LENS', warehouse: 'WH1', qty: 1 }]), 'IV005', /line 1: it expects no LENS/],
    ['receipt qty', () => receive(db, po.id, [{ sku: 'A', warehouse: 'WH1', qty: -1 }]), 'IV005', /"qty" must be a positive integer/],
    ['receipt date', () => receive(db, po.id, [{ sku: 'A', warehouse: 'WH1', qty: 1, expected_at: at }]), 'IV005', /unknown field\(s\) expected_at/],
    ['blank reason', () => receive(db, po.id, null, { reason: '' }), 'IV005', /reason must be a non-empty text/],
    ['close without reason', () => db.query('select inventory.close_inbound($1, null)', [po.id]), 'IV005', /reason must be a non-empty text/],
    ['close unknown line', () => db.query(`select inventory.close_inbound($1, 'r', sku => 'LENS')`, [po.id]), 'IV005', /expects no 'LENS'/],
    ['cancel null id', () => db.query('select inventory.cancel_inbound(null)'), 'IV005', /inbound_id must not be null/],
    ['atp unknown sku', () => atp(db, 'NOPE'), 'IV004', /unknown sku/],
    ['atp null date', () => db.query(`select * from inventory.available_to_promise('A', at => null)`), 'IV005', /at must be a date/],
  ];
  for (const [name, call, code, message] of cases) {
    const error = await rejectsWithCode(t, call(), code);
    t.regex(error.message, message, name);
  }
  t.deepEqual(await writes(db), before);
});

test('a receipt fills the backorders waiting on the row; backorder_position says when the inbound that fills each is expected', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 1 } });
  await db.query(`select inventory.set_backorder_policy('A', 'WH1', 'BACKORDER', 20)`);
  const first = await queryOne(db, `select * from inventory.reserve('o1', '[{"sku":"A","warehouse":"WH1","qty":4}]')`);   // holds 1, waits for 3
  const second = await queryOne(db, `select * from inventory.reserve('o2', '[{"sku":"A","warehouse":"WH1","qty":5}]')`);  // waits for 5
  const soon = new Date(Date.now() + 2 * DAY);
  const later = new Date(Date.now() + 9 * DAY);
  const early = await createInbound(db, 'PO-E', [{ sku: 'A', warehouse: 'WH1', qty: 4 }], { expectedAt: soon.toISOString() });
  await createInbound(db, 'PO-L', [{ sku: 'A', warehouse: 'WH1', qty: 10 }], { expectedAt: later.toISOString() });
  const expected = async (id: string) => (await queryOne(db, 'select expected_at from inventory.backorder_position($1)', [id])).expected_at as Date | null;
  t.is((await expected(first.id))?.getTime(), soon.getTime(), 'the first 3 waiting units come with the 4 expected soon');
  t.is((await expected(second.id))?.getTime(), later.getTime(), 'the next 5 need the later shipment (1 of the 4 is left for them)');

  // With safety stock the row keeps 2 units of each arrival first: the early shipment no longer covers the first backorder.
  await db.query(`select inventory.set_policy('A', 'WH1', safety_stock => 2)`);
  t.is((await expected(first.id))?.getTime(), later.getTime());
  await db.query(`select inventory.set_policy('A', 'WH1', safety_stock => 0)`);

  // 4 arrive: the first waits for nothing more, the second gets 1 unit.
  await receive(db, early.id, null);
  const { rows: fills } = await db.query(`select reference, reason, reserved_delta, backordered_delta from inventory.movements where kind = 'FILL' order by id`);
  t.deepEqual(fills, [
    { reference: 'o1', reason: 'HELD', reserved_delta: 3, backordered_delta: -3 },
    { reference: 'o2', reason: 'HELD', reserved_delta: 1, backordered_delta: -1 },
  ]);
  t.deepEqual((await db.query('select * from inventory.backorder_position($1)', [first.id])).rows, []);
  t.is((await expected(second.id))?.getTime(), later.getTime());
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 5, reserved: 5 });
  // Without inbound that covers it, a BACKORDER row has no date.
  await db.query(`select inventory.close_inbound(id, 'cancelled by supplier') from inventory.inbound_shipments where reference = 'PO-L'`);
  t.is(await expected(second.id), null);
});

test('available_to_promise by date: available now, minus what is backordered, plus inbound expected by then; per warehouse and in total', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 2 }, LENS: { WH1: 4 }, CAP: { WH1: 10 } });
  await db.query(`select inventory.reserve('o1', '[{"sku":"A","warehouse":"WH1","qty":3}]')`);
  await db.query(`select inventory.set_policy('A', 'WH1', safety_stock => 1)`);
  await db.query(`select inventory.set_backorder_policy('A', 'WH2', 'BACKORDER', 10)`);
  await db.query(`select inventory.reserve('o2', '[{"sku":"A","warehouse":"WH2","qty":5}]')`); // holds 2, waits for 3
  await db.query(`select inventory.upsert_warehouse('WH3', 'New', null, 30)`);
  await createInbound(db, 'PO-1', [{ sku: 'A', warehouse: 'WH1', qty: 5, expected_at: inDays(2) }, { sku: 'A', warehouse: 'WH2', qty: 4, expected_at: inDays(5) },
    { sku: 'A', warehouse: 'WH3', qty: 6, expected_at: inDays(5) }]);
  const overdue = await createInbound(db, 'PO-0', [{ sku: 'A', warehouse: 'WH1', qty: 2, expected_at: inDays(-1) }]);
  const view = async (at: string) => (await atp(db, 'A', null, at)).map((r) => [r.warehouse, r.available, r.backordered, r.inbound, r.atp]);

  // Now: WH1 10 - 3 - 1 = 6 available, plus the 2 overdue (still expected); WH2 is short 3 (atp 0, not -3); WH3 has only inbound.
  t.deepEqual(await view(new Date().toISOString()), [[null, 6, 3, 2, 8], ['WH1', 6, 0, 2, 8], ['WH2', 0, 3, 0, 0], ['WH3', 0, 0, 0, 0]]);
  t.deepEqual(await view(inDays(3)), [[null, 6, 3, 7, 13], ['WH1', 6, 0, 7, 13], ['WH2', 0, 3, 0, 0], ['WH3', 0, 0, 0, 0]]);
  t.deepEqual(await view(inDays(6)), [[null, 6, 3, 17, 20], ['WH1', 6, 0, 7, 13], ['WH2', 0, 3, 4, 1], ['WH3', 0, 0, 6, 6]]);
  t.deepEqual((await atp(db, 'A', 'WH2', inDays(6))).map((r) => [r.warehouse, r.atp]), [['WH2', 1]], 'one warehouse: no total');
  t.deepEqual(await atp(db, 'CAP', null), [{ sku: 'CAP', warehouse: null, available: 10, backordered: 0, inbound: 0, atp: 10 },
    { sku: 'CAP', warehouse: 'WH1', available: 10, backordered: 0, inbound: 0, atp: 10 }]);
  await db.query(`select inventory.upsert_product('NEW')`);
  t.deepEqual(await atp(db, 'NEW'), [{ sku: 'NEW', warehouse: null, available: 0, backordered: 0, inbound: 0, atp: 0 }], 'no rows: a total of 0');

  // Receiving moves units from inbound to on hand: what can be promised by then does not change.
  await receive(db, overdue.id, null);
  t.deepEqual(await view(inDays(6)), [[null, 8, 3, 15, 20], ['WH1', 8, 0, 5, 13], ['WH2', 0, 3, 4, 1], ['WH3', 0, 0, 6, 6]]);

  // A kit: its components' atp by the kit rule.
  await db.query(`select inventory.upsert_product('KIT')`);
  await db.query(`select inventory.set_kit('KIT', '[{"sku": "LENS", "qty": 1}, {"sku": "CAP", "qty": 2}]')`);
  await createInbound(db, 'PO-K', [{ sku: 'LENS', warehouse: 'WH1', qty: 6, expected_at: inDays(2) }]);
  t.deepEqual((await atp(db, 'KIT', null, inDays(1))).map((r) => [r.warehouse, r.available, r.backordered, r.inbound, r.atp]),
    [[null, 4, null, null, 4], ['WH1', 4, null, null, 4]]);
  t.deepEqual((await atp(db, 'KIT', null, inDays(3))).map((r) => [r.warehouse, r.atp]), [[null, 5], ['WH1', 5]], 'min(10 lenses, 10 caps / 2)');
});

test('32 clients receiving the same line in parts never receive more than expected; the ledger and the line agree', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { HOT: { WH1: 0, WH2: 0 } });
  const po = await createInbound(db, 'PO-HOT', [{ sku: 'HOT', warehouse: 'WH1', qty: 40 }, { sku: 'HOT', warehouse: 'WH2', qty: 40 }], { expectedAt: inDays(1) });
  const outcomes = await Promise.all(Array.from({ length: 32 }, (_, i) => {
    // Some name one line, some both (in either order), some leave the warehouse out: every lock order the API allows.
    const lines = i % 3 === 0 ? [{ sku: 'HOT', warehouse: 'WH1', qty: 3 }]
      : i % 3 === 1 ? [{ sku: 'HOT', warehouse: 'WH2', qty: 2 }, { sku: 'HOT', warehouse: 'WH1', qty: 1 }]
        : [{ sku: 'HOT', warehouse: 'WH1', qty: 2 }, { sku: 'HOT', warehouse: 'WH2', qty: 2 }];
    return receive(db, po.id, lines, { key: `hot-${i}` }).then(() => 'received', (error: { code?: string }) => {
      if (error.code !== 'IV005') throw error;
      return 'over';
    });
  }));
  t.true(outcomes.includes('over'), 'the line ran out, so some receipts were refused');
  const lines = await linesOf(db, po.id);
  for (const line of lines) {
    t.true(line.qty_received <= 40, `${line.warehouse}: received ${line.qty_received}`);
    const { n } = await queryOne(db, `select coalesce(sum(on_hand_delta), 0)::int as n from inventory.movements m join inventory.warehouses w on w.id = m.warehouse_id
      where m.reference = $1 and w.code = $2`, [`inbound:${po.id}`, line.warehouse]);
    t.is(n, line.qty_received, `${line.warehouse}: RECEIVE movements add up to the line`);
    t.like(await stockOf(db, 'HOT', line.warehouse), { on_hand: line.qty_received });
  }
  const { n } = await queryOne(db, 'select count(*)::int as n from inventory.operation_keys');
  t.is(n, outcomes.filter((o) => o === 'received').length, 'a refused receipt does not use up its key');
});

test('under concurrent reserves and receipts, no reading of available_to_promise promises more than is there or on its way', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { ATP: { WH1: 20, WH2: 10 } });
  const po = await createInbound(db, 'PO-ATP', [{ sku: 'ATP', warehouse: 'WH1', qty: 30 }, { sku: 'ATP', warehouse: 'WH2', qty: 30 }], { expectedAt: inDays(-1) });
  const supply = 20 + 10 + 60;
  const total = async () => (await atp(db, 'ATP', null, inDays(1)))[0]!.atp;
  t.is(await total(), supply);

  // A reader checks each reading against the one before: receipts move units from inbound to on hand (no change), reserves
  // only take. A reading that counted a received unit both ways, or missed one, would go up.
  let running = true;
  const readings: number[] = [];
  const reader = (async () => {
    while (running) readings.push(await total());
  })();
  // And in one snapshot, the reading equals what the ledger and the inbound lines say.
  const consistent: Array<[number, number]> = [];
  const checker = (async () => {
    while (running) {
      const client = await db.pool.connect();
      try {
        await client.query('begin isolation level repeatable read');
        const { atp: value } = await queryOne(client, `select atp from inventory.available_to_promise('ATP', at => now() + interval '1 day') where warehouse is null`);
        const { expected } = await queryOne(client, `
          select ((select sum(on_hand_delta) - sum(reserved_delta) from inventory.movements m join inventory.products p on p.id = m.product_id where p.sku = 'ATP')
                + (select coalesce(sum(qty_expected - qty_received), 0) from inventory.inbound_lines l where l.status in ('OPEN', 'PARTIAL')))::int as expected`);
        consistent.push([value, expected]);
        await client.query('commit');
      } finally {
        client.release();
      }
    }
  })();
  const work = await Promise.all([
    ...Array.from({ length: 40 }, (_, i) => db.query(`select inventory.reserve($1, '[{"sku":"ATP","qty":2}]')`, [`r${i}`]).then(() => 2, (e: { code?: string }) => {
      if (e.code !== 'IV001') throw e;
      return 0;
    })),
    ...Array.from({ length: 30 }, (_, i) => receive(db, po.id, [{ sku: 'ATP', warehouse: i % 2 ? 'WH1' : 'WH2', qty: 2 }]).then(() => 0)),
  ]);
  running = false;
  await Promise.all([reader, checker]);
  const held = work.reduce((a, b) => a + b, 0);
  t.true(readings.length > 0 && consistent.length > 0);
  for (let i = 1; i < readings.length; i++) t.true(readings[i]! <= readings[i - 1]!, `reading ${i}: ${readings[i - 1]} then ${readings[i]}`);
  t.true(readings.every((r) => r >= supply - held && r <= supply));
  t.deepEqual(consistent.filter(([value, expected]) => value !== expected), []);
  t.is(await total(), supply - held);
  t.like(await stockOf(db, 'ATP', 'WH1'), { on_hand: 50 });
});
