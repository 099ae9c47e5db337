import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type TestFn } from 'ava';
import { movements, reserve, snapshotOfWrites, type Reservation } from '../helpers/ledger.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

const MOVEMENT_COLUMNS = ['kind', 'sku', 'warehouse', 'on_hand_delta', 'reserved_delta', 'on_hand_after', 'reserved_after', 'reason', 'reference', 'reservation_id'] as const;
const movementsOf = (db: Queryable, kinds: string[]) => movements(db, { kinds }, MOVEMENT_COLUMNS);

/** release(id) with the default reason, or release(id, reason) (null passed as null). */
function release(db: Queryable, id: string | null, ...reason: [] | [string | null]): Promise<Reservation> {
  return reason.length === 0
    ? queryOne<Reservation>(db, 'select * from inventory.release($1)', [id])
    : queryOne<Reservation>(db, 'select * from inventory.release($1, $2)', [id, reason[0]]);
}

test('release gives the stock back with RELEASE movements and the default reason CANCELLED', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'order-1', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  const versionBefore = (await stockOf(db, 'A', 'WH1'))!.version;
  const released = await release(db, r.id);
  t.is(released.id, r.id);
  t.is(released.status, 'RELEASED');
  t.is(released.release_reason, 'CANCELLED');
  t.deepEqual(await stockOf(db, 'A', 'WH1'), { on_hand: 10, reserved: 0, safety_stock: 0, available: 10, version: versionBefore + 1 });
  t.deepEqual(await movementsOf(db, ['RELEASE', 'EXPIRE', 'CONFIRM']), [{
    kind: 'RELEASE', sku: 'A', warehouse: 'WH1', on_hand_delta: 0, reserved_delta: -3, on_hand_after: 10, reserved_after: 0,
    reason: 'CANCELLED', reservation_id: r.id, reference: 'order-1',
  }]);
});

test('release records the reason given, e.g. PAYMENT_FAILED', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  const released = await release(db, r.id, 'PAYMENT_FAILED');
  t.like(released, { status: 'RELEASED', release_reason: 'PAYMENT_FAILED' });
  t.like((await movementsOf(db, ['RELEASE']))[0], { kind: 'RELEASE', reason: 'PAYMENT_FAILED', reserved_delta: -3 });
});

test('release of a multi-line reservation frees every row and leaves other holds alone', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2, WH2: 10 }, B: { WH1: 5 } });
  const other = await reserve(db, 'other', [{ sku: 'A', warehouse: 'WH2', qty: 1 }]);
  const r = await reserve(db, 'multi', [{ sku: 'A', qty: 5 }, { sku: 'B', warehouse: 'WH1', qty: 4 }]);
  await release(db, r.id, 'CUSTOMER_CANCELLED');
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 2, reserved: 0 });
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 10, reserved: 1 });
  t.like(await stockOf(db, 'B', 'WH1'), { on_hand: 5, reserved: 0 });
  const movements = await movementsOf(db, ['RELEASE']);
  t.deepEqual(movements.map((m) => [m.sku, m.warehouse, m.on_hand_delta, m.reserved_delta, m.on_hand_after, m.reserved_after]).sort(), [
    ['A', 'WH1', 0, -2, 2, 0],
    ['A', 'WH2', 0, -3, 10, 1],
    ['B', 'WH1', 0, -4, 5, 0],
  ]);
  t.true(movements.every((m) => m.reservation_id === r.id && m.reference === 'multi' && m.reason === 'CUSTOMER_CANCELLED'));
  t.is((await queryOne(db, 'select status from inventory.reservations where id = $1', [other.id])).status, 'HELD');
});

test('release with TTL_EXPIRED records an expiry: status EXPIRED and EXPIRE movements', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  const expired = await release(db, r.id, 'TTL_EXPIRED');
  t.like(expired, { status: 'EXPIRED', release_reason: 'TTL_EXPIRED' });
  t.deepEqual(await movementsOf(db, ['RELEASE', 'EXPIRE']), [{
    kind: 'EXPIRE', sku: 'A', warehouse: 'WH1', on_hand_delta: 0, reserved_delta: -3, on_hand_after: 10, reserved_after: 0,
    reason: 'TTL_EXPIRED', reservation_id: r.id, reference: 'o',
  }]);
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 0 });
});

test('release of a HELD reservation past its expires_at still gives its stock back', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }], '50 milliseconds');
  await sleep(100);
  t.like(await release(db, r.id), { status: 'RELEASED', release_reason: 'CANCELLED' });
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 0 });
  t.is((await queryOne(db, 'select inventory.expire_due() as n')).n, 0);
});

test('release is idempotent on a RELEASED reservation, whatever the second reason', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  const first = await release(db, r.id, 'PAYMENT_FAILED');
  const before = await snapshotOfWrites(db);
  t.deepEqual(await release(db, r.id, 'PAYMENT_FAILED'), first);
  t.deepEqual(await release(db, r.id), first);
  t.deepEqual(await release(db, r.id, 'TTL_EXPIRED'), first);
  t.deepEqual(await snapshotOfWrites(db), before);
  t.is((await movementsOf(db, ['RELEASE', 'EXPIRE'])).length, 1);
});

test('release is idempotent on an EXPIRED reservation', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }], '50 milliseconds');
  await sleep(100);
  t.is((await queryOne(db, 'select inventory.expire_due() as n')).n, 1);
  const before = await snapshotOfWrites(db);
  const again = await release(db, r.id, 'CANCELLED');
  t.like(again, { id: r.id, status: 'EXPIRED', release_reason: 'TTL_EXPIRED' });
  t.deepEqual(await snapshotOfWrites(db), before);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 10, reserved: 0 });
});

test('IV003 when releasing a CONFIRMED reservation; nothing written', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  await db.query('select inventory.confirm($1)', [r.id]);
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, release(db, r.id), 'IV003');
  t.like(JSON.parse(error.detail!), { reservation_id: r.id, status: 'CONFIRMED', release_reason: null });
  t.regex(error.message, /cannot release reservation .* it is CONFIRMED/);
  await rejectsWithCode(t, release(db, r.id, 'TTL_EXPIRED'), 'IV003');
  t.deepEqual(await snapshotOfWrites(db), before);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 7, reserved: 0 });
});

test('IV004 when releasing an unknown reservation', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const id = '00000000-0000-4000-8000-000000000002';
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, release(db, id), 'IV004');
  t.deepEqual(JSON.parse(error.detail!), { reservation_id: id });
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('IV005 when releasing a null reservation id', async (t) => {
  const { db } = t.context;
  const error = await rejectsWithCode(t, release(db, null), 'IV005');
  t.deepEqual(JSON.parse(error.detail!), { argument: 'reservation_id' });
});

// The documented reasons (README "Argument limits"); TTL_EXPIRED records an expiry.
const REASONS = ['CANCELLED', 'CUSTOMER_CANCELLED', 'PAYMENT_FAILED', 'FRAUD', 'ORDER_CHANGED', 'ADMIN', 'TTL_EXPIRED'];

for (const reason of REASONS) {
  test(`release accepts the documented reason ${reason} and records it`, async (t) => {
    const { db } = t.context;
    await setupCatalog(db, { A: { WH1: 10 } });
    const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
    const expiry = reason === 'TTL_EXPIRED';
    t.like(await release(db, r.id, reason), { status: expiry ? 'EXPIRED' : 'RELEASED', release_reason: reason });
    t.deepEqual((await movementsOf(db, ['RELEASE', 'EXPIRE'])).map((m) => [m.kind, m.reason, m.reserved_delta]),
      [[expiry ? 'EXPIRE' : 'RELEASE', reason, -3]]);
    t.like(await stockOf(db, 'A', 'WH1'), { reserved: 0 });
  });
}

const badReasons: Array<[string, string | null]> = [
  ['a null reason', null], ['an empty reason', ''], ['a blank reason', '   '],
  ['an unknown reason', 'BOGUS'], ['a reason in lower case', 'cancelled'], ['a padded reason', ' CANCELLED'],
  ['a typo of TTL_EXPIRED', 'TTL_EXPIRE'], ['a free-text reason', 'customer changed their mind'],
  ['a 1 MB reason', 'R'.repeat(1 << 20)],
];
for (const [title, reason] of badReasons) {
  test(`IV005 for ${title}, listing the accepted reasons; the reservation keeps its hold`, async (t) => {
    const { db } = t.context;
    await setupCatalog(db, { A: { WH1: 10 } });
    const r = await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
    const before = await snapshotOfWrites(db);
    const error = await rejectsWithCode(t, release(db, r.id, reason), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), { argument: 'reason', accepted: REASONS });
    t.true(error.message.startsWith(`reason must be one of ${REASONS.join(', ')}; got `), error.message);
    t.true(error.message.length < 250, `a short message (${error.message.length} characters)`);
    t.deepEqual(await snapshotOfWrites(db), before);
    t.like(await stockOf(db, 'A', 'WH1'), { reserved: 3 });
  });
}

test('an unknown reason is IV005 on a reservation already released or confirmed too', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const released = await reserve(db, 'o1', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  await release(db, released.id, 'PAYMENT_FAILED');
  const confirmed = await reserve(db, 'o2', [{ sku: 'A', warehouse: 'WH1', qty: 2 }]);
  await db.query('select inventory.confirm($1)', [confirmed.id]);
  const before = await snapshotOfWrites(db);
  await rejectsWithCode(t, release(db, released.id, 'BOGUS'), 'IV005');
  await rejectsWithCode(t, release(db, confirmed.id, 'BOGUS'), 'IV005');
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('released stock can be reserved again', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 3 } });
  const r = await reserve(db, 'first', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  await rejectsWithCode(t, reserve(db, 'second', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]), 'IV001');
  await release(db, r.id);
  const second = await reserve(db, 'second', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  t.is(second.status, 'HELD');
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 3, reserved: 3 });
});
