import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type TestFn } from 'ava';
import { inTransaction, movements, reserve, snapshotOfWrites, type Reservation } from '../helpers/ledger.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

const MOVEMENT_COLUMNS = ['kind', 'sku', 'warehouse', 'on_hand_delta', 'reserved_delta', 'on_hand_after', 'reserved_after', 'reason', 'reference', 'reservation_id'] as const;
const movementsOf = (db: Queryable, kinds: string[]) => movements(db, { kinds }, MOVEMENT_COLUMNS);

function confirm(db: Queryable, id: string | null): Promise<Reservation> {
  return queryOne<Reservation>(db, 'select * from inventory.confirm($1)', [id]);
}

test('confirm deducts on_hand and reserved and writes a CONFIRM movement', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'order-1', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  const versionBefore = (await stockOf(db, 'A', 'WH1'))!.version;
  const confirmed = await confirm(db, r.id);
  t.is(confirmed.id, r.id);
  t.is(confirmed.status, 'CONFIRMED');
  t.is(confirmed.release_reason, null);
  t.is(confirmed.order_ref, 'order-1');
  t.deepEqual(confirmed.expires_at, r.expires_at);
  t.deepEqual(await stockOf(db, 'A', 'WH1'), { on_hand: 7, reserved: 0, safety_stock: 0, available: 7, version: versionBefore + 1 });
  t.deepEqual(await movementsOf(db, ['CONFIRM']), [{
    kind: 'CONFIRM', sku: 'A', warehouse: 'WH1', on_hand_delta: -3, reserved_delta: -3, on_hand_after: 7, reserved_after: 0,
    reason: null, reservation_id: r.id, reference: 'order-1',
  }]);
  const stored = await queryOne(db, 'select status, updated_at > created_at as touched from inventory.reservations where id = $1', [r.id]);
  t.deepEqual(stored, { status: 'CONFIRMED', touched: true });
});

test('confirm leaves other reservations on the same row held', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const first = await reserve(db, 'first', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  const second = await reserve(db, 'second', [{ sku: 'A', warehouse: 'WH1', qty: 4 }]);
  await confirm(db, second.id);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 6, reserved: 3, available: 3 });
  t.like((await movementsOf(db, ['CONFIRM']))[0], { reservation_id: second.id, on_hand_after: 6, reserved_after: 3 });
  t.is((await queryOne(db, 'select status from inventory.reservations where id = $1', [first.id])).status, 'HELD');
});

test('confirm of a multi-line reservation deducts every row it holds', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2, WH2: 10 }, B: { WH1: 5 } });
  const r = await reserve(db, 'multi', [{ sku: 'A', qty: 5 }, { sku: 'B', warehouse: 'WH1', qty: 4 }]);
  await confirm(db, r.id);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 0, reserved: 0 });
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 7, reserved: 0 });
  t.like(await stockOf(db, 'B', 'WH1'), { on_hand: 1, reserved: 0 });
  const movements = await movementsOf(db, ['CONFIRM']);
  t.deepEqual(movements.map((m) => [m.sku, m.warehouse, m.on_hand_delta, m.reserved_delta, m.on_hand_after, m.reserved_after]).sort(), [
    ['A', 'WH1', -2, -2, 0, 0],
    ['A', 'WH2', -3, -3, 7, 0],
    ['B', 'WH1', -4, -4, 1, 0],
  ]);
  t.true(movements.every((m) => m.reservation_id === r.id && m.reference === 'multi' && m.reason === null));
});

test('confirm is idempotent: a second confirm returns the same row and writes nothing', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  const first = await confirm(db, r.id);
  const before = await snapshotOfWrites(db);
  const second = await confirm(db, r.id);
  t.deepEqual(second, first);
  t.deepEqual(await snapshotOfWrites(db), before);
  t.is((await movementsOf(db, ['CONFIRM'])).length, 1);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 7, reserved: 0 });
});

test('a confirmed reservation stays confirmed after its expires_at has passed', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  // Reserved and confirmed in one transaction, so the 100 ms cannot run out in between.
  const first = await inTransaction(db, async (client) =>
    confirm(client, (await reserve(client, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }], '100 milliseconds')).id));
  t.is(first.status, 'CONFIRMED');
  await sleep(150);
  t.deepEqual(await confirm(db, first.id), first);
  t.is(await queryOne(db, 'select inventory.expire_due() as n').then((row) => row.n), 0);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 7, reserved: 0 });
});

test('IV003 when confirming a RELEASED reservation; nothing written', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  await db.query(`select inventory.release($1, 'PAYMENT_FAILED')`, [r.id]);
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, confirm(db, r.id), 'IV003');
  t.like(JSON.parse(error.detail!), { reservation_id: r.id, status: 'RELEASED', release_reason: 'PAYMENT_FAILED' });
  t.regex(error.message, /cannot confirm reservation .* it is RELEASED \(PAYMENT_FAILED\)/);
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('IV003 when confirming an EXPIRED reservation; nothing written', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }], '50 milliseconds');
  await sleep(100);
  t.is((await queryOne(db, 'select inventory.expire_due() as n')).n, 1);
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, confirm(db, r.id), 'IV003');
  t.like(JSON.parse(error.detail!), { reservation_id: r.id, status: 'EXPIRED', release_reason: 'TTL_EXPIRED' });
  t.deepEqual(await snapshotOfWrites(db), before);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 10, reserved: 0 });
});

test('IV003 when confirming a HELD reservation past its expires_at; it keeps its hold', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }], '50 milliseconds');
  await sleep(100);
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, confirm(db, r.id), 'IV003');
  const detail = JSON.parse(error.detail!);
  t.like(detail, { reservation_id: r.id, status: 'HELD', release_reason: null });
  t.is(new Date(detail.expires_at).getTime(), r.expires_at.getTime());
  t.regex(error.message, /it expired at/);
  t.deepEqual(await snapshotOfWrites(db), before);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 10, reserved: 3 });
  t.is((await movementsOf(db, ['CONFIRM'])).length, 0);
});

test('IV004 when confirming an unknown reservation', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const before = await snapshotOfWrites(db);
  const id = '00000000-0000-4000-8000-000000000001';
  const error = await rejectsWithCode(t, confirm(db, id), 'IV004');
  t.deepEqual(JSON.parse(error.detail!), { reservation_id: id });
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('IV005 when confirming a null reservation id', async (t) => {
  const { db } = t.context;
  const error = await rejectsWithCode(t, confirm(db, null), 'IV005');
  t.deepEqual(JSON.parse(error.detail!), { argument: 'reservation_id' });
});

test('a malformed reservation id fails with 22P02', async (t) => {
  const { db } = t.context;
  await rejectsWithCode(t, db.query('select inventory.confirm($1)', ['not-a-uuid']), '22P02');
});
