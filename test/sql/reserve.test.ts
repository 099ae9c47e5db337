import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type TestFn } from 'ava';
import { movements, snapshotOfWrites } from '../helpers/ledger.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

const MOVEMENT_COLUMNS = ['kind', 'sku', 'warehouse', 'on_hand_delta', 'reserved_delta', 'on_hand_after', 'reserved_after', 'reason', 'reference', 'reservation_id', 'idempotency_key'] as const;
const movementsOf = (db: Queryable, kinds: string[]) => movements(db, { kinds }, MOVEMENT_COLUMNS);

interface Reservation {
  id: string;
  order_ref: string;
  status: string;
  expires_at: Date;
  idempotency_key: string | null;
  release_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

/** Calls inventory.reserve; ttl and key are passed only when given (null is passed as null). */
function reserve(db: Queryable, orderRef: string | null, lines: unknown, options: { ttl?: string | null; key?: string | null } = {}): Promise<Reservation> {
  const values: unknown[] = [orderRef, lines === null ? null : JSON.stringify(lines)];
  const args = ['$1', '$2::jsonb'];
  if ('ttl' in options) {
    values.push(options.ttl);
    args.push(`ttl => $${values.length}::interval`);
  }
  if ('key' in options) {
    values.push(options.key);
    args.push(`idempotency_key => $${values.length}`);
  }
  return queryOne<Reservation>(db, `select * from inventory.reserve(${args.join(', ')})`, values);
}

/** What a reservation holds, by sku and warehouse code. */
async function linesOf(db: Queryable, reservationId: string): Promise<Array<{ sku: string; warehouse: string; qty: number }>> {
  const { rows } = await db.query<{ sku: string; warehouse: string; qty: number }>(
    `select p.sku, w.code as warehouse, l.qty
     from inventory.reservation_lines l
     join inventory.products p on p.id = l.product_id
     join inventory.warehouses w on w.id = l.warehouse_id
     where l.reservation_id = $1 order by p.sku, w.code`, [reservationId]);
  return rows;
}

async function statusOf(db: Queryable, id: string): Promise<{ status: string; release_reason: string | null }> {
  return queryOne(db, 'select status, release_reason from inventory.reservations where id = $1', [id]);
}

test('reserves a named warehouse line and writes one RESERVE movement', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const reservation = await queryOne(db, `select * from inventory.reserve('order-1', '[{"sku":"A","warehouse":"WH1","qty":3}]')`);
  t.is(reservation.status, 'HELD');
  t.is(reservation.order_ref, 'order-1');
  t.true(new Date(reservation.expires_at).getTime() - Date.now() > 14 * 60_000, 'held 15 minutes by default');
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 10, reserved: 3, available: 7 });
  const { rows: movements } = await db.query(
    `select kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after, reservation_id, reference
     from inventory.movements where kind = 'RESERVE'`);
  t.deepEqual(movements, [{
    kind: 'RESERVE', on_hand_delta: 0, reserved_delta: 3, on_hand_after: 10, reserved_after: 3,
    reservation_id: reservation.id, reference: 'order-1',
  }]);
});

test('IV001 lists every short line and writes nothing', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2 }, B: { WH1: 1, WH2: 1 }, C: { WH1: 5 } });
  const error = await rejectsWithCode(t, db.query(
    `select inventory.reserve('o', '[{"sku":"A","warehouse":"WH1","qty":3},{"sku":"B","qty":5},{"sku":"C","warehouse":"WH1","qty":1}]')`),
    'IV001');
  t.deepEqual(JSON.parse(error.detail!).lines, [
    { sku: 'A', warehouse: 'WH1', requested: 3, available: 2 },
    { sku: 'B', warehouse: null, requested: 5, available: 2 },
  ]);
  t.regex(error.message, /A at WH1 requested 3, available 2/);
  const counts = await queryOne(db, 
    `select (select count(*) from inventory.reservations)::int as reservations,
            (select count(*) from inventory.movements where kind = 'RESERVE')::int as movements,
            (select sum(reserved) from inventory.stock_levels)::int as reserved`);
  t.deepEqual(counts, { reservations: 0, movements: 0, reserved: 0 });
});

// ---------------------------------------------------------------- named lines

test('named lines of several skus and warehouses each reserve their own row', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 10 }, B: { WH2: 4 } });
  const r = await reserve(db, 'order-7', [
    { sku: 'A', warehouse: 'WH2', qty: 6 },
    { sku: 'B', warehouse: 'WH2', qty: 4 },
    { sku: 'A', warehouse: 'WH1', qty: 1 },
  ]);
  t.deepEqual(await linesOf(db, r.id), [
    { sku: 'A', warehouse: 'WH1', qty: 1 },
    { sku: 'A', warehouse: 'WH2', qty: 6 },
    { sku: 'B', warehouse: 'WH2', qty: 4 },
  ]);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 10, reserved: 1, available: 9 });
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 10, reserved: 6, available: 4 });
  t.like(await stockOf(db, 'B', 'WH2'), { on_hand: 4, reserved: 4, available: 0 });
  const movements = await movementsOf(db, ['RESERVE']);
  const common = { kind: 'RESERVE', on_hand_delta: 0, reason: null, reservation_id: r.id, reference: 'order-7', idempotency_key: null };
  t.deepEqual(
    movements.sort((a, b) => `${a.sku}${a.warehouse}`.localeCompare(`${b.sku}${b.warehouse}`)),
    [
      { ...common, sku: 'A', warehouse: 'WH1', reserved_delta: 1, on_hand_after: 10, reserved_after: 1 },
      { ...common, sku: 'A', warehouse: 'WH2', reserved_delta: 6, on_hand_after: 10, reserved_after: 6 },
      { ...common, sku: 'B', warehouse: 'WH2', reserved_delta: 4, on_hand_after: 4, reserved_after: 4 },
    ]);
});

test('a reservation adds to what other reservations already hold on the row', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  await reserve(db, 'first', [{ sku: 'A', warehouse: 'WH1', qty: 4 }]);
  const second = await reserve(db, 'second', [{ sku: 'A', warehouse: 'WH1', qty: 6 }]);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 10, reserved: 10, available: 0 });
  const last = (await movementsOf(db, ['RESERVE'])).at(-1);
  t.like(last, { reservation_id: second.id, reserved_delta: 6, on_hand_after: 10, reserved_after: 10 });
  const error = await rejectsWithCode(t, reserve(db, 'third', [{ sku: 'A', warehouse: 'WH1', qty: 1 }]), 'IV001');
  t.deepEqual(JSON.parse(error.detail!).lines, [{ sku: 'A', warehouse: 'WH1', requested: 1, available: 0 }]);
});

test('a named warehouse without a stock row for the product is short with available 0', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 }, B: { WH2: 1 } }); // A has no row at WH2
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', warehouse: 'WH2', qty: 1 }]), 'IV001');
  t.deepEqual(JSON.parse(error.detail!), { order_ref: 'o', lines: [{ sku: 'A', warehouse: 'WH2', requested: 1, available: 0 }] });
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('an open line for a product with no stock anywhere is short with available 0', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  await db.query(`select inventory.upsert_product('NEW')`);
  const error = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'NEW', qty: 1 }]), 'IV001');
  t.deepEqual(JSON.parse(error.detail!).lines, [{ sku: 'NEW', warehouse: null, requested: 1, available: 0 }]);
  t.regex(error.message, /NEW across warehouses requested 1, available 0/);
});

test('a line can take exactly all that is available', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 5 }]);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 5, reserved: 5, available: 0 });
});

// ---------------------------------------------------------------- allocation

test('an open line takes the lower priority number first, even with more stock elsewhere', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 3, WH2: 100 } });
  const r = await reserve(db, 'o', [{ sku: 'A', qty: 2 }]);
  t.deepEqual(await linesOf(db, r.id), [{ sku: 'A', warehouse: 'WH1', qty: 2 }]);
  t.like(await stockOf(db, 'A', 'WH2'), { reserved: 0 });
});

test('an open line follows priority numbers, not warehouse codes', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 10, WH3: 10 } });
  await db.query(`select inventory.upsert_warehouse('WH3', null, null, 5)`);
  const r = await reserve(db, 'o', [{ sku: 'A', qty: 4 }]);
  t.deepEqual(await linesOf(db, r.id), [{ sku: 'A', warehouse: 'WH3', qty: 4 }]);
});

test('among warehouses of equal priority an open line takes the one with most available', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 4, WH2: 8, WH3: 20 } });
  await db.query(`select inventory.upsert_warehouse('WH2', null, null, 10)`); // WH1 and WH2 share priority 10
  const r = await reserve(db, 'o', [{ sku: 'A', qty: 5 }]);
  t.deepEqual(await linesOf(db, r.id), [{ sku: 'A', warehouse: 'WH2', qty: 5 }]);
});

test('most available counts what is left after reservations and safety stock', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 9 } });
  await db.query(`select inventory.upsert_warehouse('WH2', null, null, 10)`);
  await reserve(db, 'earlier', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]); // WH1 available 7
  await db.query(`select inventory.set_policy('A', 'WH2', 1)`); // WH2 available 8
  const r = await reserve(db, 'o', [{ sku: 'A', qty: 2 }]);
  t.deepEqual(await linesOf(db, r.id), [{ sku: 'A', warehouse: 'WH2', qty: 2 }]);
});

test('an open line splits across warehouses in priority order when one is not enough', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2, WH2: 3, WH3: 10, WH4: 50 } });
  const r = await reserve(db, 'split', [{ sku: 'A', qty: 7 }]);
  t.deepEqual(await linesOf(db, r.id), [
    { sku: 'A', warehouse: 'WH1', qty: 2 },
    { sku: 'A', warehouse: 'WH2', qty: 3 },
    { sku: 'A', warehouse: 'WH3', qty: 2 },
  ]);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 2, reserved: 2, available: 0 });
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 3, reserved: 3, available: 0 });
  t.like(await stockOf(db, 'A', 'WH3'), { on_hand: 10, reserved: 2, available: 8 });
  t.like(await stockOf(db, 'A', 'WH4'), { on_hand: 50, reserved: 0, available: 50 });
  const movements = await movementsOf(db, ['RESERVE']);
  t.deepEqual(movements.map((m) => [m.warehouse, m.reserved_delta, m.on_hand_after, m.reserved_after]).sort(),
    [['WH1', 2, 2, 2], ['WH2', 3, 3, 3], ['WH3', 2, 10, 2]]);
  t.true(movements.every((m) => m.reservation_id === r.id && m.reference === 'split' && m.on_hand_delta === 0));
});

test('a split within equal priority takes the most available first', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 4, WH2: 8, WH3: 6 } });
  await db.query(`select inventory.upsert_warehouse('WH2', null, null, 10)`);
  await db.query(`select inventory.upsert_warehouse('WH3', null, null, 10)`);
  const r = await reserve(db, 'o', [{ sku: 'A', qty: 16 }]);
  // WH2 (8), then WH3 (6), then WH1 (the remaining 2 of 4).
  t.deepEqual(await linesOf(db, r.id), [
    { sku: 'A', warehouse: 'WH1', qty: 2 },
    { sku: 'A', warehouse: 'WH2', qty: 8 },
    { sku: 'A', warehouse: 'WH3', qty: 6 },
  ]);
});

test('an open line that is short across all warehouses reports the sum available', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2, WH2: 3 } });
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', qty: 6 }]), 'IV001');
  t.deepEqual(JSON.parse(error.detail!).lines, [{ sku: 'A', warehouse: null, requested: 6, available: 5 }]);
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('open lines of several skus are allocated independently', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 1, WH2: 5 }, B: { WH2: 2, WH3: 2 } });
  const r = await reserve(db, 'o', [{ sku: 'A', qty: 3 }, { sku: 'B', qty: 3 }]);
  t.deepEqual(await linesOf(db, r.id), [
    { sku: 'A', warehouse: 'WH1', qty: 1 },
    { sku: 'A', warehouse: 'WH2', qty: 2 },
    { sku: 'B', warehouse: 'WH2', qty: 2 },
    { sku: 'B', warehouse: 'WH3', qty: 1 },
  ]);
});

// ---------------------------------------------------------------- repeated and mixed lines

test('repeated lines for one row are summed before the check', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, reserve(db, 'o', [
    { sku: 'A', warehouse: 'WH1', qty: 3 },
    { sku: 'A', warehouse: 'WH1', qty: 3 },
  ]), 'IV001');
  t.deepEqual(JSON.parse(error.detail!).lines, [{ sku: 'A', warehouse: 'WH1', requested: 6, available: 5 }]);
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('repeated lines that fit become one reservation line and one movement', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const r = await reserve(db, 'o', [
    { sku: 'A', warehouse: 'WH1', qty: 2 },
    { sku: 'A', warehouse: 'WH1', qty: 3 },
  ]);
  t.deepEqual(await linesOf(db, r.id), [{ sku: 'A', warehouse: 'WH1', qty: 5 }]);
  const movements = await movementsOf(db, ['RESERVE']);
  t.is(movements.length, 1);
  t.like(movements[0], { reserved_delta: 5, on_hand_after: 5, reserved_after: 5 });
});

test('repeated open lines are summed and split as one', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 4, WH2: 4 } });
  const r = await reserve(db, 'o', [{ sku: 'A', qty: 3 }, { sku: 'A', warehouse: null, qty: 3 }]);
  t.deepEqual(await linesOf(db, r.id), [
    { sku: 'A', warehouse: 'WH1', qty: 4 },
    { sku: 'A', warehouse: 'WH2', qty: 2 },
  ]);
  const error = await rejectsWithCode(t, reserve(db, 'o2', [{ sku: 'A', qty: 1 }, { sku: 'A', qty: 1 }, { sku: 'A', qty: 1 }]), 'IV001');
  t.deepEqual(JSON.parse(error.detail!).lines, [{ sku: 'A', warehouse: null, requested: 3, available: 2 }]);
});

test('a named line is served first and an open line of the same sku fills from what remains', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5, WH2: 5 } });
  // The open line comes first in the request; the named line still has WH1 first.
  const r = await reserve(db, 'o', [{ sku: 'A', qty: 3 }, { sku: 'A', warehouse: 'WH1', qty: 4 }]);
  t.deepEqual(await linesOf(db, r.id), [
    { sku: 'A', warehouse: 'WH1', qty: 5 }, // 4 named + 1 open
    { sku: 'A', warehouse: 'WH2', qty: 2 },
  ]);
  const movements = await movementsOf(db, ['RESERVE']);
  t.deepEqual(movements.map((m) => [m.warehouse, m.reserved_delta, m.reserved_after]).sort(), [['WH1', 5, 5], ['WH2', 2, 2]]);
});

test('a named line on a lower-priority warehouse leaves the rest of that row to the open line', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2, WH2: 5 } });
  const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH2', qty: 4 }, { sku: 'A', qty: 3 }]);
  t.deepEqual(await linesOf(db, r.id), [
    { sku: 'A', warehouse: 'WH1', qty: 2 },
    { sku: 'A', warehouse: 'WH2', qty: 5 },
  ]);
});

test('an open line short after the named lines reports what the named lines left', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5, WH2: 5 } });
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 4 }, { sku: 'A', qty: 7 }]), 'IV001');
  t.deepEqual(JSON.parse(error.detail!).lines, [{ sku: 'A', warehouse: null, requested: 7, available: 6 }]);
  t.deepEqual(await snapshotOfWrites(db), before);
});

// ---------------------------------------------------------------- safety stock

test('safety stock is never reserved by a named line', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  await db.query(`select inventory.set_policy('A', 'WH1', 3)`);
  const error = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 8 }]), 'IV001');
  t.deepEqual(JSON.parse(error.detail!).lines, [{ sku: 'A', warehouse: 'WH1', requested: 8, available: 7 }]);
  await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 7 }]);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 10, reserved: 7, safety_stock: 3, available: 0 });
});

test('safety stock is never reserved by an open line', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 4, WH2: 4 } });
  await db.query(`select inventory.set_policy('A', 'WH1', 3)`);
  await db.query(`select inventory.set_policy('A', 'WH2', 1)`);
  const error = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', qty: 5 }]), 'IV001');
  t.deepEqual(JSON.parse(error.detail!).lines, [{ sku: 'A', warehouse: null, requested: 5, available: 4 }]);
  const r = await reserve(db, 'o', [{ sku: 'A', qty: 4 }]);
  t.deepEqual(await linesOf(db, r.id), [
    { sku: 'A', warehouse: 'WH1', qty: 1 },
    { sku: 'A', warehouse: 'WH2', qty: 3 },
  ]);
});

test('safety stock above on_hand leaves nothing to reserve', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2 } });
  await db.query(`select inventory.set_policy('A', 'WH1', 5)`);
  const error = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 1 }]), 'IV001');
  t.deepEqual(JSON.parse(error.detail!).lines, [{ sku: 'A', warehouse: 'WH1', requested: 1, available: 0 }]);
});

// ---------------------------------------------------------------- IV001 and IV004 details

test('IV001 detail lists short named and open lines of several skus, sorted, with the order_ref', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 1, WH2: 1 }, B: { WH1: 9 }, C: { WH2: 2 } });
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, reserve(db, 'order-42', [
    { sku: 'C', warehouse: 'WH2', qty: 3 },
    { sku: 'B', warehouse: 'WH1', qty: 1 }, // fine
    { sku: 'A', qty: 3 },
    { sku: 'A', warehouse: 'WH1', qty: 2 },
  ]), 'IV001');
  t.deepEqual(JSON.parse(error.detail!), {
    order_ref: 'order-42',
    lines: [
      { sku: 'A', warehouse: 'WH1', requested: 2, available: 1 },
      // The named line asks for more than WH1 has, so the open line has WH2's 1 left.
      { sku: 'A', warehouse: null, requested: 3, available: 1 },
      { sku: 'C', warehouse: 'WH2', requested: 3, available: 2 },
    ],
  });
  t.regex(error.message, /A across warehouses requested 3, available 1/);
  t.regex(error.message, /C at WH2 requested 3, available 2/);
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('IV001 for named lines only lists each short or missing row, and writes nothing', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2 }, B: { WH1: 5 }, C: { WH2: 1 }, D: { WH1: 1 } }); // D has no row at WH2
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, reserve(db, 'named', [
    { sku: 'B', warehouse: 'WH1', qty: 5 },
    { sku: 'D', warehouse: 'WH2', qty: 1 },
    { sku: 'A', warehouse: 'WH1', qty: 3 },
    { sku: 'C', warehouse: 'WH2', qty: 1 },
  ]), 'IV001');
  t.deepEqual(JSON.parse(error.detail!), {
    order_ref: 'named',
    lines: [
      { sku: 'A', warehouse: 'WH1', requested: 3, available: 2 },
      { sku: 'D', warehouse: 'WH2', requested: 1, available: 0 },
    ],
  });
  t.regex(error.message, /insufficient stock for 2 of 4 line\(s\)/);
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('reserves keep working in one session across named, open and refused calls', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 3, WH2: 3 } });
  const client = await db.pool.connect();
  try {
    const first = await reserve(client, 'one', [{ sku: 'A', warehouse: 'WH1', qty: 2 }]);
    await rejectsWithCode(t, reserve(client, 'two', [{ sku: 'A', warehouse: 'WH1', qty: 2 }]), 'IV001');
    const open = await reserve(client, 'three', [{ sku: 'A', qty: 2 }]);
    await rejectsWithCode(t, reserve(client, 'four', [{ sku: 'A', qty: 3 }]), 'IV001');
    const last = await reserve(client, 'five', [{ sku: 'A', warehouse: 'WH2', qty: 2 }]);
    t.deepEqual(await linesOf(client, first.id), [{ sku: 'A', warehouse: 'WH1', qty: 2 }]);
    t.deepEqual(await linesOf(client, open.id), [{ sku: 'A', warehouse: 'WH1', qty: 1 }, { sku: 'A', warehouse: 'WH2', qty: 1 }]);
    t.deepEqual(await linesOf(client, last.id), [{ sku: 'A', warehouse: 'WH2', qty: 2 }]);
  } finally {
    client.release();
  }
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 3, reserved: 3 });
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 3, reserved: 3 });
});

test('IV004 lists every unknown sku and warehouse and writes nothing', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, reserve(db, 'o', [
    { sku: 'A', warehouse: 'WH1', qty: 1 },
    { sku: 'Y', warehouse: 'WH9', qty: 1 },
    { sku: 'X', qty: 1 },
    { sku: 'A', warehouse: 'NOPE', qty: 1 },
    { sku: 'X', warehouse: 'WH1', qty: 1 },
  ]), 'IV004');
  t.deepEqual(JSON.parse(error.detail!), { unknown_skus: ['X', 'Y'], unknown_warehouses: ['NOPE', 'WH9'] });
  t.regex(error.message, /unknown sku 'X', 'Y'; unknown warehouse 'NOPE', 'WH9'/);
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('IV004 for an unknown sku alone has an empty unknown_warehouses', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const error = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'nope', qty: 1 }]), 'IV004');
  t.deepEqual(JSON.parse(error.detail!), { unknown_skus: ['nope'], unknown_warehouses: [] });
});

test('IV004 for an unknown warehouse alone has an empty unknown_skus', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const error = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', warehouse: 'WH2', qty: 1 }]), 'IV004');
  t.deepEqual(JSON.parse(error.detail!), { unknown_skus: [], unknown_warehouses: ['WH2'] });
});

// ---------------------------------------------------------------- IV005 arguments

const invalidLines: Array<[string, unknown, RegExp?]> = [
  ['qty 0', [{ sku: 'A', warehouse: 'WH1', qty: 0 }], /line 1: "qty" must be a positive integer, got 0/],
  ['a negative qty', [{ sku: 'A', qty: -1 }]],
  ['a fractional qty', [{ sku: 'A', qty: 1.5 }], /got 1\.5/],
  ['a qty given as a string', [{ sku: 'A', qty: '2' }], /"qty" must be a positive integer, got "2"/],
  ['a missing qty', [{ sku: 'A', warehouse: 'WH1' }], /got nothing/],
  ['a null qty', [{ sku: 'A', qty: null }]],
  ['a qty above the integer range', [{ sku: 'A', qty: 2147483648 }]],
  ['a missing sku', [{ warehouse: 'WH1', qty: 1 }], /"sku" must be a non-empty string/],
  ['an empty sku', [{ sku: '', qty: 1 }], /"sku" must be a non-empty string/],
  ['a blank sku', [{ sku: '   ', qty: 1 }]],
  ['a numeric sku', [{ sku: 7, qty: 1 }]],
  ['an empty warehouse string', [{ sku: 'A', warehouse: '', qty: 1 }], /"warehouse" must be a non-empty string/],
  ['a blank warehouse', [{ sku: 'A', warehouse: ' ', qty: 1 }]],
  ['a numeric warehouse', [{ sku: 'A', warehouse: 1, qty: 1 }]],
  ['an unknown field', [{ sku: 'A', qty: 1, price: 3 }], /unknown field\(s\) price/],
  ['a number instead of a line object', [1]],
  ['a string instead of a line object', ['A']],
  ['a null line', [null]],
  ['an array instead of a line object', [[{ sku: 'A', qty: 1 }]]],
  ['a bad second line', [{ sku: 'A', warehouse: 'WH1', qty: 1 }, { sku: 'A', qty: 0 }], /^invalid reservation line 2: /],
  ['an empty array', [], /non-empty JSON array/],
  ['an object instead of an array', { sku: 'A', warehouse: 'WH1', qty: 1 }, /non-empty JSON array/],
  ['a string instead of an array', 'A'],
  ['a number instead of an array', 5],
  ['a JSON null instead of an array', 'json-null'],
  ['SQL null lines', null, /non-empty JSON array/],
  ['more than 1000 lines', Array.from({ length: 1001 }, () => ({ sku: 'A', warehouse: 'WH1', qty: 1 })), /1001 entries; at most 1000/],
];

for (const [title, lines, message] of invalidLines) {
  test(`IV005 for ${title}, nothing written`, async (t) => {
    const { db } = t.context;
    await setupCatalog(db, { A: { WH1: 5000 } });
    const before = await snapshotOfWrites(db);
    const call = lines === 'json-null'
      ? queryOne(db, `select * from inventory.reserve('o', 'null'::jsonb)`)
      : reserve(db, 'o', lines);
    const error = await rejectsWithCode(t, call, 'IV005');
    t.is(JSON.parse(error.detail!).argument, 'lines');
    if (message) t.regex(error.message, message);
    t.deepEqual(await snapshotOfWrites(db), before);
  });
}

test('IV005 when the summed qty of one row exceeds the integer range', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const error = await rejectsWithCode(t, reserve(db, 'o', [
    { sku: 'A', warehouse: 'WH1', qty: 2_000_000_000 },
    { sku: 'A', warehouse: 'WH1', qty: 2_000_000_000 },
  ]), 'IV005');
  t.deepEqual(JSON.parse(error.detail!), { argument: 'lines' });
});

test('exactly 1000 lines are accepted (and summed)', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 1000 } });
  const r = await reserve(db, 'o', Array.from({ length: 1000 }, () => ({ sku: 'A', warehouse: 'WH1', qty: 1 })));
  t.deepEqual(await linesOf(db, r.id), [{ sku: 'A', warehouse: 'WH1', qty: 1000 }]);
});

test('a JSON null warehouse is the same as no warehouse', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 1, WH2: 5 } });
  const r = await reserve(db, 'o', [{ sku: 'A', warehouse: null, qty: 3 }]);
  t.deepEqual(await linesOf(db, r.id), [{ sku: 'A', warehouse: 'WH1', qty: 1 }, { sku: 'A', warehouse: 'WH2', qty: 2 }]);
});

const invalidArguments: Array<[string, string | null, { ttl?: string | null; key?: string | null }, string]> = [
  ['a null order_ref', null, {}, 'order_ref'],
  ['an empty order_ref', '', {}, 'order_ref'],
  ['a blank order_ref', '  ', {}, 'order_ref'],
  ['a null ttl', 'o', { ttl: null }, 'ttl'],
  ['a zero ttl', 'o', { ttl: '0 seconds' }, 'ttl'],
  ['a negative ttl', 'o', { ttl: '-5 minutes' }, 'ttl'],
  ['an empty idempotency key', 'o', { key: '' }, 'idempotency_key'],
  ['a blank idempotency key', 'o', { key: '   ' }, 'idempotency_key'],
];

for (const [title, orderRef, options, argument] of invalidArguments) {
  test(`IV005 for ${title}, nothing written`, async (t) => {
    const { db } = t.context;
    await setupCatalog(db, { A: { WH1: 5 } });
    const before = await snapshotOfWrites(db);
    const error = await rejectsWithCode(t, reserve(db, orderRef, [{ sku: 'A', warehouse: 'WH1', qty: 1 }], options), 'IV005');
    t.is(JSON.parse(error.detail!).argument, argument);
    t.deepEqual(await snapshotOfWrites(db), before);
  });
}

test('IV005 for a ttl longer than a year, infinite, or too large for a timestamp', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const before = await snapshotOfWrites(db);
  for (const ttl of ['300000 years', 'infinity', '1 year 1 day']) {
    const error = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 1 }], { ttl }), 'IV005');
    t.deepEqual(JSON.parse(error.detail ?? '{}'), { argument: 'ttl' });
  }
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('malformed jsonb text fails with 22P02 before reserve runs', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, db.query(`select inventory.reserve('o', '{bad'::jsonb)`), '22P02');
  t.regex(error.message, /invalid input syntax for type json/);
  await rejectsWithCode(t, db.query('select inventory.reserve($1, $2::jsonb)', ['o', '[{"sku":"A","qty":1}']), '22P02');
  t.deepEqual(await snapshotOfWrites(db), before);
});

// ---------------------------------------------------------------- ttl

test('a custom ttl sets expires_at to now() + ttl', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 1 }], { ttl: '2 hours' });
  const { held } = await queryOne(db, `select expires_at - created_at = interval '2 hours' as held from inventory.reservations where id = $1`, [r.id]);
  t.true(held);
  const fromNow = r.expires_at.getTime() - Date.now();
  t.true(fromNow > 2 * 3600_000 - 60_000 && fromNow <= 2 * 3600_000 + 1000, `expires in ${fromNow} ms`);
});

test('the default ttl is 15 minutes', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 1 }]);
  const { held } = await queryOne(db, `select expires_at - created_at = interval '15 minutes' as held from inventory.reservations where id = $1`, [r.id]);
  t.true(held);
});

// ---------------------------------------------------------------- idempotency

test('the same key and payload returns the very same reservation without a second hold', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const lines = [{ sku: 'A', warehouse: 'WH1', qty: 3 }];
  const first = await reserve(db, 'o', lines, { key: 'key-1' });
  t.is(first.idempotency_key, 'key-1');
  const again = await reserve(db, 'o', lines, { key: 'key-1' });
  t.deepEqual(again, first);
  const movements = await movementsOf(db, ['RESERVE']);
  t.is(movements.length, 1);
  t.like(movements[0], { reservation_id: first.id, idempotency_key: 'key-1', reserved_delta: 3 });
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 3 });
  t.is((await queryOne(db, 'select count(*)::int as n from inventory.reservations')).n, 1);
});

test('a retry with the same key returns the reservation even after it was confirmed', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const lines = [{ sku: 'A', warehouse: 'WH1', qty: 3 }];
  const first = await reserve(db, 'o', lines, { key: 'key-1', ttl: '1 hour' });
  await db.query('select inventory.confirm($1)', [first.id]);
  const before = await snapshotOfWrites(db);
  const again = await reserve(db, 'o', lines, { key: 'key-1', ttl: '1 hour' });
  t.is(again.id, first.id);
  t.is(again.status, 'CONFIRMED');
  t.deepEqual(await snapshotOfWrites(db), before);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 7, reserved: 0 });
});

test('the same payload with its lines in another order counts as the same payload', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 10 }, B: { WH1: 10 } });
  const first = await reserve(db, 'o', [
    { sku: 'A', warehouse: 'WH1', qty: 1 }, { sku: 'B', qty: 2 }, { sku: 'A', warehouse: 'WH2', qty: 3 },
  ], { key: 'k' });
  const again = await reserve(db, 'o', [
    { qty: 3, warehouse: 'WH2', sku: 'A' }, { sku: 'A', warehouse: 'WH1', qty: 1 }, { sku: 'B', qty: 2 },
  ], { key: 'k' });
  t.is(again.id, first.id);
  t.is((await movementsOf(db, ['RESERVE'])).length, 3);
});

const otherPayloads: Array<[string, string, unknown, { ttl?: string }]> = [
  ['other lines', 'o', [{ sku: 'A', warehouse: 'WH1', qty: 4 }], {}],
  ['another warehouse', 'o', [{ sku: 'A', qty: 3 }], {}],
  ['another order_ref', 'other-order', [{ sku: 'A', warehouse: 'WH1', qty: 3 }], {}],
  ['another ttl', 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }], { ttl: '16 minutes' }],
];

for (const [title, orderRef, lines, options] of otherPayloads) {
  test(`IV006 when a key is reused with ${title}, naming the first reservation`, async (t) => {
    const { db } = t.context;
    await setupCatalog(db, { A: { WH1: 10 } });
    const first = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }], { key: 'key-1' });
    const before = await snapshotOfWrites(db);
    const error = await rejectsWithCode(t, reserve(db, orderRef, lines, { ...options, key: 'key-1' }), 'IV006');
    t.deepEqual(JSON.parse(error.detail!), { idempotency_key: 'key-1', reservation_id: first.id, order_ref: 'o' });
    t.true(error.message.includes(first.id));
    t.deepEqual(await snapshotOfWrites(db), before);
  });
}

test('a reserve that failed with IV001 does not burn its key', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2 } });
  const lines = [{ sku: 'A', warehouse: 'WH1', qty: 5 }];
  await rejectsWithCode(t, reserve(db, 'o', lines, { key: 'key-1' }), 'IV001');
  t.is((await queryOne(db, `select count(*)::int as n from inventory.reservations where idempotency_key = 'key-1'`)).n, 0);
  await db.query(`select inventory.adjust('A', 'WH1', 3, 'receipt')`);
  const r = await reserve(db, 'o', lines, { key: 'key-1' });
  t.is(r.status, 'HELD');
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 5, reserved: 5 });
});

test('different keys with the same payload make separate reservations', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const lines = [{ sku: 'A', warehouse: 'WH1', qty: 3 }];
  const a = await reserve(db, 'o', lines, { key: 'k1' });
  const b = await reserve(db, 'o', lines, { key: 'k2' });
  t.not(a.id, b.id);
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 6 });
});

// ---------------------------------------------------------------- lazy expiry

test('a due HELD reservation does not block a new one: it is expired on the spot', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const old = await reserve(db, 'old', [{ sku: 'A', warehouse: 'WH1', qty: 4 }], { ttl: '50 milliseconds' });
  await sleep(120);
  const fresh = await reserve(db, 'new', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  t.deepEqual(await statusOf(db, old.id), { status: 'EXPIRED', release_reason: 'TTL_EXPIRED' });
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 5, reserved: 3, available: 2 });
  const movements = await movementsOf(db, ['RESERVE', 'EXPIRE']);
  t.deepEqual(movements.map((m) => [m.kind, m.reservation_id, m.reserved_delta, m.on_hand_after, m.reserved_after, m.reason, m.reference]), [
    ['RESERVE', old.id, 4, 5, 4, null, 'old'],
    ['EXPIRE', old.id, -4, 5, 0, 'TTL_EXPIRED', 'old'],
    ['RESERVE', fresh.id, 3, 5, 3, null, 'new'],
  ]);
});

test('lazy expiry also releases the other rows the due reservation held', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 }, B: { WH2: 3 }, C: { WH1: 2 } });
  const old = await reserve(db, 'old', [
    { sku: 'A', warehouse: 'WH1', qty: 5 }, { sku: 'B', warehouse: 'WH2', qty: 2 }, { sku: 'C', qty: 1 },
  ], { ttl: '50 milliseconds' });
  await sleep(120);
  await reserve(db, 'new', [{ sku: 'A', qty: 5 }]);
  t.deepEqual(await statusOf(db, old.id), { status: 'EXPIRED', release_reason: 'TTL_EXPIRED' });
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 5 });
  t.like(await stockOf(db, 'B', 'WH2'), { on_hand: 3, reserved: 0, available: 3 });
  t.like(await stockOf(db, 'C', 'WH1'), { on_hand: 2, reserved: 0, available: 2 });
  const expired = await movementsOf(db, ['EXPIRE']);
  t.deepEqual(expired.map((m) => [m.sku, m.warehouse, m.on_hand_delta, m.reserved_delta, m.on_hand_after, m.reserved_after, m.reason, m.reservation_id]).sort(), [
    ['A', 'WH1', 0, -5, 5, 0, 'TTL_EXPIRED', old.id],
    ['B', 'WH2', 0, -2, 3, 0, 'TTL_EXPIRED', old.id],
    ['C', 'WH1', 0, -1, 2, 0, 'TTL_EXPIRED', old.id],
  ]);
});

test('lazy expiry leaves due reservations on unrelated rows alone', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 }, B: { WH1: 5 } });
  const onA = await reserve(db, 'a', [{ sku: 'A', warehouse: 'WH1', qty: 5 }], { ttl: '50 milliseconds' });
  const onB = await reserve(db, 'b', [{ sku: 'B', warehouse: 'WH1', qty: 5 }], { ttl: '50 milliseconds' });
  await sleep(120);
  await reserve(db, 'new', [{ sku: 'A', warehouse: 'WH1', qty: 1 }]);
  t.is((await statusOf(db, onA.id)).status, 'EXPIRED');
  t.deepEqual(await statusOf(db, onB.id), { status: 'HELD', release_reason: null });
  t.like(await stockOf(db, 'B', 'WH1'), { reserved: 5 });
});

test('a due reservation is not expired when there is no shortage', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const old = await reserve(db, 'old', [{ sku: 'A', warehouse: 'WH1', qty: 5 }], { ttl: '50 milliseconds' });
  await sleep(120);
  await reserve(db, 'new', [{ sku: 'A', warehouse: 'WH1', qty: 5 }]);
  t.deepEqual(await statusOf(db, old.id), { status: 'HELD', release_reason: null });
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 10, reserved: 10, available: 0 });
  t.is((await movementsOf(db, ['EXPIRE'])).length, 0);
});

test('lazy expiry frees stock for an open line across warehouses', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 3, WH2: 3 } });
  const old = await reserve(db, 'old', [{ sku: 'A', warehouse: 'WH2', qty: 3 }], { ttl: '50 milliseconds' });
  const kept = await reserve(db, 'kept', [{ sku: 'A', warehouse: 'WH1', qty: 1 }]);
  await sleep(120);
  const fresh = await reserve(db, 'new', [{ sku: 'A', qty: 5 }]);
  t.is((await statusOf(db, old.id)).status, 'EXPIRED');
  t.is((await statusOf(db, kept.id)).status, 'HELD');
  t.deepEqual(await linesOf(db, fresh.id), [{ sku: 'A', warehouse: 'WH1', qty: 2 }, { sku: 'A', warehouse: 'WH2', qty: 3 }]);
});

test('a reserve still short after lazy expiry writes nothing, the due reservation stays HELD', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const old = await reserve(db, 'old', [{ sku: 'A', warehouse: 'WH1', qty: 2 }], { ttl: '50 milliseconds' });
  await sleep(120);
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, reserve(db, 'new', [{ sku: 'A', warehouse: 'WH1', qty: 6 }]), 'IV001');
  t.deepEqual(JSON.parse(error.detail!).lines, [{ sku: 'A', warehouse: 'WH1', requested: 6, available: 5 }]);
  t.deepEqual(await snapshotOfWrites(db), before);
  t.is((await statusOf(db, old.id)).status, 'HELD');
});

test('lazy expiry skips a due reservation whose other row another transaction holds, without waiting', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 }, B: { WH1: 5 } });
  const old = await reserve(db, 'old', [{ sku: 'A', warehouse: 'WH1', qty: 5 }, { sku: 'B', warehouse: 'WH1', qty: 1 }], { ttl: '50 milliseconds' });
  await sleep(120);
  const holder = await db.pool.connect();
  const caller = await db.pool.connect();
  try {
    await holder.query('begin');
    await holder.query(`select inventory.adjust('B', 'WH1', 1, 'receipt')`); // holds B@WH1's row lock
    await caller.query('begin');
    await caller.query(`set local lock_timeout = '3s'`);
    const error = await rejectsWithCode(t,
      caller.query(`select inventory.reserve('new', '[{"sku":"A","warehouse":"WH1","qty":1}]')`), 'IV001');
    t.deepEqual(JSON.parse(error.detail!).lines, [{ sku: 'A', warehouse: 'WH1', requested: 1, available: 0 }]);
    await caller.query('rollback');
    await holder.query('commit');
  } finally {
    caller.release();
    holder.release();
  }
  t.is((await statusOf(db, old.id)).status, 'HELD');
  // Once the row is free, the same call expires it.
  await reserve(db, 'new', [{ sku: 'A', warehouse: 'WH1', qty: 1 }]);
  t.is((await statusOf(db, old.id)).status, 'EXPIRED');
  t.like(await stockOf(db, 'B', 'WH1'), { on_hand: 6, reserved: 0 });
});
