// Editing a reservation (edit_reservation) and settling part of one
// (confirm_lines, release_lines): movements, lines, kits, refusals that write
// nothing, idempotency, and concurrency without oversell or deadlock. After
// every test (useDatabase) each reservation line agrees with its own movements.
import anyTest, { type TestFn } from 'ava';
import { lastMovementId, movements, snapshotOfWrites } from '../helpers/ledger.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

interface Reservation { id: string; order_ref: string; status: string; release_reason: string | null; updated_at: Date }
type Line = { sku: string; warehouse?: string | null; qty: number };

const reserve = (db: Queryable, ref: string, lines: Line[]) =>
  queryOne<Reservation>(db, 'select * from inventory.reserve($1, $2::jsonb)', [ref, JSON.stringify(lines)]);
const edit = (db: Queryable, id: string | null, lines: unknown, key: string | null = null) =>
  queryOne<Reservation>(db, 'select * from inventory.edit_reservation($1, $2::jsonb, $3)', [id, JSON.stringify(lines), key]);
const confirmLines = (db: Queryable, id: string, lines: unknown, key: string | null = null) =>
  queryOne<Reservation>(db, 'select * from inventory.confirm_lines($1, $2::jsonb, $3)', [id, JSON.stringify(lines), key]);
const releaseLines = (db: Queryable, id: string, lines: unknown, reason = 'ORDER_CHANGED', key: string | null = null) =>
  queryOne<Reservation>(db, 'select * from inventory.release_lines($1, $2::jsonb, $3, $4)', [id, JSON.stringify(lines), reason, key]);

/** What a reservation's lines say, "sku@warehouse" → "qty" or "qty (confirmed n)"; lines at 0 included. */
async function linesOf(db: Queryable, id: string): Promise<Record<string, string | number>> {
  const { rows } = await db.query(`
    select p.sku || '@' || w.code as row, l.qty, l.confirmed from inventory.reservation_lines l
    join inventory.products p on p.id = l.product_id join inventory.warehouses w on w.id = l.warehouse_id
    where l.reservation_id = $1 order by 1`, [id]);
  return Object.fromEntries(rows.map((r) => [r.row, r.confirmed ? `${r.qty} (confirmed ${r.confirmed})` : r.qty]));
}

const reservedOf = async (db: Queryable, sku: string, warehouse: string) => (await stockOf(db, sku, warehouse))?.reserved ?? 0;
const MOVES = ['kind', 'sku', 'warehouse', 'on_hand_delta', 'reserved_delta', 'on_hand_after', 'reserved_after', 'reason', 'idempotency_key'] as const;

test('edit changes a line\'s qty, adds a line and removes one, all at once: RESERVE and RELEASE (ORDER_CHANGED) movements, the removed line at 0', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH1: 5 }, C: { WH2: 4 } });
  const held = await reserve(db, 'order-1', [{ sku: 'A', warehouse: 'WH1', qty: 2 }, { sku: 'B', warehouse: 'WH1', qty: 3 }]);
  const mark = await lastMovementId(db);
  const edited = await edit(db, held.id, [{ sku: 'A', warehouse: 'WH1', qty: 5 }, { sku: 'C', qty: 1 }], 'edit-1');
  t.like(edited, { id: held.id, status: 'HELD', order_ref: 'order-1' });
  t.true(edited.updated_at >= held.updated_at);
  t.deepEqual(await linesOf(db, held.id), { 'A@WH1': 5, 'B@WH1': 0, 'C@WH2': 1 });
  t.deepEqual([await reservedOf(db, 'A', 'WH1'), await reservedOf(db, 'B', 'WH1'), await reservedOf(db, 'C', 'WH2')], [5, 0, 1]);
  const moved = await movements(db, { after: mark }, MOVES);
  t.deepEqual(moved.sort((x, y) => x.sku.localeCompare(y.sku)), [
    { kind: 'RESERVE', sku: 'A', warehouse: 'WH1', on_hand_delta: 0, reserved_delta: 3, on_hand_after: 10, reserved_after: 5, reason: 'ORDER_CHANGED', idempotency_key: 'edit-1' },
    { kind: 'RELEASE', sku: 'B', warehouse: 'WH1', on_hand_delta: 0, reserved_delta: -3, on_hand_after: 5, reserved_after: 0, reason: 'ORDER_CHANGED', idempotency_key: 'edit-1' },
    { kind: 'RESERVE', sku: 'C', warehouse: 'WH2', on_hand_delta: 0, reserved_delta: 1, on_hand_after: 4, reserved_after: 1, reason: 'ORDER_CHANGED', idempotency_key: 'edit-1' },
  ]);
  // A removed line can come back; confirm() then settles exactly what is held now.
  await edit(db, held.id, [{ sku: 'B', warehouse: 'WH1', qty: 1 }, { sku: 'C', warehouse: 'WH2', qty: 1 }]);
  t.deepEqual(await linesOf(db, held.id), { 'A@WH1': 0, 'B@WH1': 1, 'C@WH2': 1 });
  await db.query('select inventory.confirm($1)', [held.id]);
  t.deepEqual([(await stockOf(db, 'A', 'WH1'))!.on_hand, (await stockOf(db, 'B', 'WH1'))!.on_hand, (await stockOf(db, 'C', 'WH2'))!.on_hand], [10, 4, 3]);
});

test('a line without a warehouse keeps the reservation\'s holds where they are, gives back from the least preferred warehouse, and allocates only the rest', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2, WH2: 10, WH3: 10 } });
  // Allocated: WH1 (priority 10) 2, then WH2 (priority 20) 3.
  const held = await reserve(db, 'order-1', [{ sku: 'A', qty: 5 }]);
  t.deepEqual(await linesOf(db, held.id), { 'A@WH1': 2, 'A@WH2': 3 });
  // Stock arrives at WH1: a fresh allocation of 6 would take 6 there; the edit keeps its 5 where they are and adds 1.
  await db.query(`select inventory.adjust('A', 'WH1', 10, 'receipt')`);
  await edit(db, held.id, [{ sku: 'A', qty: 6 }]);
  t.deepEqual(await linesOf(db, held.id), { 'A@WH1': 3, 'A@WH2': 3 });
  // Down to 4: given back from WH2 (least preferred) first.
  await edit(db, held.id, [{ sku: 'A', qty: 4 }]);
  t.deepEqual(await linesOf(db, held.id), { 'A@WH1': 3, 'A@WH2': 1 });
  // A named line counts the holds on its row; the open line keeps the others.
  await edit(db, held.id, [{ sku: 'A', warehouse: 'WH2', qty: 2 }, { sku: 'A', qty: 2 }]);
  t.deepEqual(await linesOf(db, held.id), { 'A@WH1': 2, 'A@WH2': 2 });
  t.deepEqual([await reservedOf(db, 'A', 'WH1'), await reservedOf(db, 'A', 'WH2'), await reservedOf(db, 'A', 'WH3')], [2, 2, 0]);
});

test('an edit short of stock is IV001 as reserve reports it, counting the units the reservation holds; nothing changes', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 }, B: { WH1: 3, WH2: 1 } });
  const held = await reserve(db, 'order-1', [{ sku: 'A', warehouse: 'WH1', qty: 3 }, { sku: 'B', qty: 2 }]);
  await reserve(db, 'other', [{ sku: 'A', warehouse: 'WH1', qty: 1 }]);
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, edit(db, held.id, [{ sku: 'A', warehouse: 'WH1', qty: 5 }, { sku: 'B', qty: 5 }], 'k'), 'IV001');
  t.is(error.message, 'insufficient stock for 2 of 2 line(s): A at WH1 requested 5, available 4; B across warehouses requested 5, available 4');
  t.deepEqual(JSON.parse(error.detail!), {
    order_ref: 'order-1', reservation_id: held.id, lines: [
      { sku: 'A', warehouse: 'WH1', requested: 5, available: 4 },
      { sku: 'B', warehouse: null, requested: 5, available: 4 },
    ],
  });
  t.regex(error.hint!, /^Nothing was changed/);
  t.deepEqual(await snapshotOfWrites(db), before, 'nothing written, the key not used up');
  t.is((await edit(db, held.id, [{ sku: 'A', warehouse: 'WH1', qty: 4 }, { sku: 'B', qty: 4 }], 'k')).status, 'HELD');
  t.deepEqual(await linesOf(db, held.id), { 'A@WH1': 4, 'B@WH1': 3, 'B@WH2': 1 });
});

test('bad input is refused with its SQLSTATE and a sentence to act on, and writes nothing', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const held = await reserve(db, 'order-1', [{ sku: 'A', warehouse: 'WH1', qty: 2 }]);
  const released = await reserve(db, 'order-2', [{ sku: 'A', warehouse: 'WH1', qty: 1 }]);
  await db.query(`select inventory.release($1, 'CANCELLED')`, [released.id]);
  const before = await snapshotOfWrites(db);
  const refusals: Array<[Promise<unknown>, string, RegExp]> = [
    [edit(db, held.id, []), 'IV005', /lines must not be empty/],
    [edit(db, held.id, [{ sku: 'A', qty: 0 }]), 'IV005', /invalid reservation line 1: "qty" must be a positive integer, got 0/],
    [edit(db, held.id, [{ sku: 'A', warehouse: 'WH1', qty: 1, note: 'x' }]), 'IV005', /unknown field/],
    [edit(db, null, [{ sku: 'A', qty: 1 }]), 'IV005', /reservation_id must not be null/],
    [edit(db, held.id, [{ sku: 'A', qty: 1 }], ' '), 'IV005', /idempotency_key must be null or a non-empty text/],
    [edit(db, held.id, [{ sku: 'NOPE', qty: 1 }]), 'IV004', /unknown sku 'NOPE'/],
    [edit(db, '00000000-0000-7000-8000-000000000000', [{ sku: 'A', qty: 1 }]), 'IV004', /unknown reservation/],
    [edit(db, released.id, [{ sku: 'A', qty: 1 }]), 'IV003', /cannot edit reservation .*: it is RELEASED \(CANCELLED\)/],
    [confirmLines(db, held.id, [{ sku: 'A', qty: 3 }]), 'IV005', /cannot confirm more than reservation .* holds: A at WH1 requested 3, held 2/],
    [releaseLines(db, held.id, [{ sku: 'A', warehouse: 'WH2', qty: 1 }]), 'IV004', /unknown warehouse 'WH2'/],
    [releaseLines(db, held.id, [{ sku: 'A', qty: 1 }], 'TTL_EXPIRED'), 'IV005', /reason must be one of CANCELLED, .*; got 'TTL_EXPIRED'/],
    [releaseLines(db, released.id, [{ sku: 'A', qty: 1 }]), 'IV003', /cannot release lines of reservation .*: it is RELEASED/],
  ];
  for (const [call, code, message] of refusals) {
    const error = await rejectsWithCode(t, call, code);
    t.regex(error.message, message);
  }
  t.deepEqual(await snapshotOfWrites(db), before);
  // Expired: edit and confirm_lines are refused like confirm(); release_lines may still give back.
  await db.query(`update inventory.reservations set expires_at = now() - interval '1 second' where id = $1`, [held.id]);
  t.regex((await rejectsWithCode(t, edit(db, held.id, [{ sku: 'A', qty: 1 }]), 'IV003')).message, /it expired at/);
  t.regex((await rejectsWithCode(t, confirmLines(db, held.id, [{ sku: 'A', qty: 1 }]), 'IV003')).message, /cannot confirm lines of .*: it expired at/);
  t.is((await releaseLines(db, held.id, [{ sku: 'A', qty: 2 }], 'CUSTOMER_CANCELLED')).status, 'RELEASED');
});

test('idempotency: a retry with the key returns the reservation without a second change; another payload is IV006; an edit that changes nothing writes nothing', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH1: 10 } });
  const held = await reserve(db, 'order-1', [{ sku: 'A', warehouse: 'WH1', qty: 2 }, { sku: 'B', warehouse: 'WH1', qty: 2 }]);
  await edit(db, held.id, [{ sku: 'A', warehouse: 'WH1', qty: 3 }], 'edit-1');
  const before = await snapshotOfWrites(db);
  // The same lines, written in another order and split, are the same request.
  await edit(db, held.id, [{ sku: 'A', warehouse: 'WH1', qty: 1 }, { sku: 'A', warehouse: 'WH1', qty: 2 }], 'edit-1');
  t.deepEqual(await snapshotOfWrites(db), before);
  const conflict = await rejectsWithCode(t, edit(db, held.id, [{ sku: 'A', warehouse: 'WH1', qty: 4 }], 'edit-1'), 'IV006');
  t.regex(conflict.message, /idempotency key 'edit-1' was already used for another edit_reservation request/);
  t.deepEqual(await snapshotOfWrites(db), before);
  // Without a key, the same content again changes nothing and writes nothing.
  await edit(db, held.id, [{ sku: 'A', qty: 3 }]);
  t.deepEqual(await snapshotOfWrites(db), before);

  await confirmLines(db, held.id, [{ sku: 'A', qty: 1 }], 'ship-1');
  await confirmLines(db, held.id, [{ sku: 'A', qty: 1 }], 'ship-1');
  await releaseLines(db, held.id, [{ sku: 'A', qty: 1 }], 'ORDER_CHANGED', 'drop-1');
  await releaseLines(db, held.id, [{ sku: 'A', qty: 1 }], 'ORDER_CHANGED', 'drop-1');
  t.deepEqual(await linesOf(db, held.id), { 'A@WH1': '1 (confirmed 1)', 'B@WH1': 0 });
  await rejectsWithCode(t, releaseLines(db, held.id, [{ sku: 'A', qty: 1 }], 'ADMIN', 'drop-1'), 'IV006');
  await rejectsWithCode(t, confirmLines(db, held.id, [{ sku: 'A', qty: 1 }], 'edit-1'), 'IV006');
  // Concurrent retries of one edit: one change.
  await Promise.all(Array.from({ length: 8 }, () => edit(db, held.id, [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 5 }], 'edit-2')));
  t.deepEqual(await linesOf(db, held.id), { 'A@WH1': '1 (confirmed 1)', 'B@WH1': 5 });
  t.is((await movements(db, { kinds: ['RESERVE'] }, ['idempotency_key'])).filter((m) => m.idempotency_key === 'edit-2').length, 1);
});

test('confirm_lines and release_lines settle part of a reservation; it ends CONFIRMED when any unit was confirmed, else RELEASED', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 10 }, B: { WH1: 10 } });
  const held = await reserve(db, 'order-1', [{ sku: 'A', warehouse: 'WH1', qty: 3 }, { sku: 'A', warehouse: 'WH2', qty: 2 }, { sku: 'B', warehouse: 'WH1', qty: 4 }]);
  // A is held in two warehouses: a line without one is ambiguous.
  const ambiguous = await rejectsWithCode(t, confirmLines(db, held.id, [{ sku: 'A', qty: 1 }]), 'IV005');
  t.regex(ambiguous.message, /it holds A in 2 warehouses \(WH1, WH2\), say which/);
  const mark = await lastMovementId(db);
  let r = await confirmLines(db, held.id, [{ sku: 'A', warehouse: 'WH1', qty: 2 }, { sku: 'B', qty: 1 }]);
  t.is(r.status, 'HELD');
  r = await releaseLines(db, held.id, [{ sku: 'A', warehouse: 'WH2', qty: 2 }, { sku: 'B', qty: 1 }], 'CUSTOMER_CANCELLED');
  t.is(r.status, 'HELD');
  const bySkuAndKind = (x: { kind: string; sku: string }, y: { kind: string; sku: string }) => (x.kind + x.sku).localeCompare(y.kind + y.sku);
  t.deepEqual((await movements(db, { after: mark }, MOVES)).sort(bySkuAndKind), [
    { kind: 'CONFIRM', sku: 'A', warehouse: 'WH1', on_hand_delta: -2, reserved_delta: -2, on_hand_after: 8, reserved_after: 1, reason: null, idempotency_key: null },
    { kind: 'CONFIRM', sku: 'B', warehouse: 'WH1', on_hand_delta: -1, reserved_delta: -1, on_hand_after: 9, reserved_after: 3, reason: null, idempotency_key: null },
    { kind: 'RELEASE', sku: 'A', warehouse: 'WH2', on_hand_delta: 0, reserved_delta: -2, on_hand_after: 10, reserved_after: 0, reason: 'CUSTOMER_CANCELLED', idempotency_key: null },
    { kind: 'RELEASE', sku: 'B', warehouse: 'WH1', on_hand_delta: 0, reserved_delta: -1, on_hand_after: 9, reserved_after: 2, reason: 'CUSTOMER_CANCELLED', idempotency_key: null },
  ]);
  t.deepEqual(await linesOf(db, held.id), { 'A@WH1': '1 (confirmed 2)', 'A@WH2': 0, 'B@WH1': '2 (confirmed 1)' });
  // A is now held in WH1 only: a line without a warehouse means WH1. Releasing the rest ends it CONFIRMED.
  r = await releaseLines(db, held.id, [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 2 }]);
  t.like(r, { status: 'CONFIRMED', release_reason: null });
  t.is((await db.query('select inventory.confirm($1)', [held.id])).rowCount, 1, 'confirm() of it is idempotent');

  // Nothing confirmed: releasing everything part by part ends RELEASED with the reason.
  const other = await reserve(db, 'order-2', [{ sku: 'B', warehouse: 'WH1', qty: 2 }]);
  await releaseLines(db, other.id, [{ sku: 'B', qty: 1 }], 'FRAUD');
  t.like(await releaseLines(db, other.id, [{ sku: 'B', qty: 1 }], 'FRAUD'), { status: 'RELEASED', release_reason: 'FRAUD' });
  // confirm() and release() after a partial settle act on what is still held.
  const third = await reserve(db, 'order-3', [{ sku: 'B', warehouse: 'WH1', qty: 3 }]);
  await confirmLines(db, third.id, [{ sku: 'B', qty: 1 }]);
  t.like(await queryOne(db, 'select * from inventory.release($1)', [third.id]), { status: 'RELEASED', release_reason: 'CANCELLED' });
  t.like(await stockOf(db, 'B', 'WH1'), { on_hand: 8, reserved: 0 });
});

test('kits: an edit changes and removes kit lines (reservation_kits follows); confirm_lines of a kit takes its components', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { LENS: { WH1: 10 }, CAP: { WH1: 20 } });
  await db.query('select inventory.upsert_product($1)', ['KIT']);
  await db.query(`select inventory.set_kit('KIT', '[{"sku":"LENS","qty":1},{"sku":"CAP","qty":2}]')`);
  const held = await reserve(db, 'order-1', [{ sku: 'KIT', warehouse: 'WH1', qty: 1 }]);
  const kits = async () => (await db.query('select qty from inventory.reservation_kits where reservation_id = $1 order by qty desc', [held.id])).rows.map((r) => r.qty);
  await edit(db, held.id, [{ sku: 'KIT', warehouse: 'WH1', qty: 3 }]);
  t.deepEqual(await linesOf(db, held.id), { 'CAP@WH1': 6, 'LENS@WH1': 3 });
  t.deepEqual(await kits(), [3]);
  await confirmLines(db, held.id, [{ sku: 'KIT', qty: 1 }]);
  t.deepEqual(await linesOf(db, held.id), { 'CAP@WH1': '4 (confirmed 2)', 'LENS@WH1': '2 (confirmed 1)' });
  t.deepEqual(await kits(), [2]);
  await rejectsWithCode(t, releaseLines(db, held.id, [{ sku: 'KIT', qty: 3 }]), 'IV005');
  // The kit goes; its components are asked for one by one (a set_kit may now drop a component).
  await edit(db, held.id, [{ sku: 'LENS', warehouse: 'WH1', qty: 1 }]);
  t.deepEqual(await linesOf(db, held.id), { 'CAP@WH1': '0 (confirmed 2)', 'LENS@WH1': '1 (confirmed 1)' });
  t.deepEqual(await kits(), [0]);
  await db.query(`select inventory.set_kit('KIT', '[{"sku":"LENS","qty":1}]')`);
});

test('confirm_lines waiting on an edit that adds a stock row to the reservation takes that row too (it locks again once it sees the lines changed)', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, C: { WH1: 5 } });
  const held = await reserve(db, 'order-1', [{ sku: 'A', warehouse: 'WH1', qty: 2 }]);
  const editor = await db.pool.connect();
  try {
    await editor.query('begin');
    await editor.query(`select inventory.edit_reservation($1, '[{"sku":"A","warehouse":"WH1","qty":2},{"sku":"C","warehouse":"WH1","qty":1}]')`, [held.id]);
    // It read the lines (A only) before the edit commits, and waits for A's row.
    const confirming = confirmLines(db, held.id, [{ sku: 'A', qty: 1 }, { sku: 'C', qty: 1 }]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await editor.query('commit');
    t.is((await confirming).status, 'HELD');
  } finally {
    editor.release();
  }
  t.deepEqual(await linesOf(db, held.id), { 'A@WH1': '1 (confirmed 1)', 'C@WH1': '0 (confirmed 1)' });
});

test('64 concurrent clients editing and reserving the last units of a sku never oversell, and never deadlock', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { HOT: { WH1: 40, WH2: 10 }, B: { WH1: 100 }, C: { WH2: 100 } });
  const held = await Promise.all(Array.from({ length: 16 }, (_, i) => reserve(db, `o${i}`, [{ sku: 'HOT', qty: 1 }, { sku: 'B', warehouse: 'WH1', qty: 1 }])));
  const calls = Array.from({ length: 64 }, (_, i) => {
    const mine = held[Math.floor(i / 4)]!.id; // each reservation gets each kind of call
    const call = [
      () => edit(db, mine, [{ sku: 'HOT', qty: 2 + (i % 5) }, { sku: 'C', qty: 1 }]),
      () => reserve(db, `n${i}`, [{ sku: 'HOT', warehouse: i % 2 ? 'WH1' : 'WH2', qty: 2 }]),
      () => edit(db, mine, [{ sku: 'HOT', warehouse: 'WH2', qty: 3 }, { sku: 'B', qty: 2 }]),
      () => (i % 8 === 3 ? confirmLines(db, mine, [{ sku: 'B', qty: 1 }]) : releaseLines(db, mine, [{ sku: 'B', qty: 1 }])),
    ][i % 4]!;
    return call().then(() => 'ok', (e: { code?: string }) => {
      if (!['IV001', 'IV003', 'IV005', '40P01'].includes(e.code!)) throw e;
      return e.code!;
    });
  });
  const outcomes = await Promise.all(calls);
  const counts: Record<string, number> = {};
  outcomes.forEach((o, i) => { const k = `${['edit', 'reserve', 'edit named', 'settle lines'][i % 4]} ${o}`; counts[k] = (counts[k] ?? 0) + 1; });
  t.log(counts);
  t.false(outcomes.includes('40P01'), 'no deadlock');
  t.true(outcomes.includes('ok') && outcomes.includes('IV001'), `contended: ${outcomes.join(',')}`);
  const { rows } = await db.query(`select count(*)::int as n from inventory.stock_levels where reserved > on_hand or on_hand < 0`);
  t.is(rows[0]!.n, 0);
});
