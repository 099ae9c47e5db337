import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type TestFn } from 'ava';
import { inTransaction, movements, reserve, snapshotOfWrites, type Reservation } from '../helpers/ledger.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

const MOVEMENT_COLUMNS = ['id', 'kind', 'sku', 'warehouse', 'on_hand_delta', 'reserved_delta', 'on_hand_after', 'reserved_after', 'reason', 'reference', 'reservation_id'] as const;
const movementsOf = (db: Queryable, kinds: string[]) => movements(db, { kinds }, MOVEMENT_COLUMNS);

async function expireDue(db: Queryable, max?: number | null): Promise<number> {
  const row = max === undefined
    ? await queryOne<{ n: number }>(db, 'select inventory.expire_due() as n')
    : await queryOne<{ n: number }>(db, 'select inventory.expire_due($1) as n', [max]);
  return row.n;
}

async function statuses(db: Queryable): Promise<Record<string, string>> {
  const { rows } = await db.query<{ order_ref: string; status: string }>('select order_ref, status from inventory.reservations');
  return Object.fromEntries(rows.map((r) => [r.order_ref, r.status]));
}

const line = (qty: number, sku = 'A') => [{ sku, warehouse: 'WH1', qty }];

test('expire_due expires only due HELD reservations and returns how many', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 100 } });
  await reserve(db, 'due', line(1), '50 milliseconds');
  await reserve(db, 'due-too', line(2), '50 milliseconds');
  await reserve(db, 'future', line(4), '1 hour');
  await inTransaction(db, async (client) => { // so the 50 ms cannot run out before the confirm
    const confirmed = await reserve(client, 'confirmed', line(8), '50 milliseconds');
    await client.query('select inventory.confirm($1)', [confirmed.id]);
  });
  const released = await reserve(db, 'released', line(16), '50 milliseconds');
  await db.query('select inventory.release($1)', [released.id]);
  await sleep(100);
  t.is(await expireDue(db), 2);
  t.deepEqual(await statuses(db), { due: 'EXPIRED', 'due-too': 'EXPIRED', future: 'HELD', confirmed: 'CONFIRMED', released: 'RELEASED' });
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 92, reserved: 4 });
  const { rows } = await db.query(`select order_ref, release_reason from inventory.reservations where status = 'EXPIRED' order by order_ref`);
  t.deepEqual(rows, [{ order_ref: 'due', release_reason: 'TTL_EXPIRED' }, { order_ref: 'due-too', release_reason: 'TTL_EXPIRED' }]);
  t.is(await expireDue(db), 0, 'nothing left to expire');
});

test('expire_due returns 0 and writes nothing when nothing is due', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  await reserve(db, 'future', line(3), '1 hour');
  const before = await snapshotOfWrites(db);
  t.is(await expireDue(db), 0);
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('expire_due writes an EXPIRE movement per line with reason TTL_EXPIRED', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2, WH2: 10 }, B: { WH1: 5 } });
  const r = await reserve(db, 'order-9', [{ sku: 'A', qty: 5 }, { sku: 'B', warehouse: 'WH1', qty: 4 }], '50 milliseconds');
  await sleep(100);
  t.is(await expireDue(db), 1);
  const stored = await queryOne(db, 'select status, release_reason from inventory.reservations where id = $1', [r.id]);
  t.deepEqual(stored, { status: 'EXPIRED', release_reason: 'TTL_EXPIRED' });
  const movements = await movementsOf(db, ['EXPIRE', 'RELEASE', 'CONFIRM']);
  t.deepEqual(movements.map((m) => [m.kind, m.sku, m.warehouse, m.on_hand_delta, m.reserved_delta, m.on_hand_after, m.reserved_after]).sort(), [
    ['EXPIRE', 'A', 'WH1', 0, -2, 2, 0],
    ['EXPIRE', 'A', 'WH2', 0, -3, 10, 0],
    ['EXPIRE', 'B', 'WH1', 0, -4, 5, 0],
  ]);
  t.true(movements.every((m) => m.reason === 'TTL_EXPIRED' && m.reservation_id === r.id && m.reference === 'order-9'));
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 2, reserved: 0 });
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 10, reserved: 0 });
  t.like(await stockOf(db, 'B', 'WH1'), { on_hand: 5, reserved: 0 });
});

test('expire_due respects max, oldest expires_at first', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  // One transaction: now() is the same for all three, so expires_at orders exactly by ttl.
  await inTransaction(db, async (client) => {
    await reserve(client, 'late', line(1), '150 milliseconds');
    await reserve(client, 'first', line(1), '50 milliseconds');
    await reserve(client, 'middle', line(1), '100 milliseconds');
  });
  await sleep(200);
  t.is(await expireDue(db, 2), 2);
  t.deepEqual(await statuses(db), { first: 'EXPIRED', middle: 'EXPIRED', late: 'HELD' });
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 1 });
  t.is(await expireDue(db, 2), 1);
  t.deepEqual(await statuses(db), { first: 'EXPIRED', middle: 'EXPIRED', late: 'EXPIRED' });
  t.is(await expireDue(db, 2), 0);
});

test('expire_due(1) expires exactly one', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  for (const ref of ['a', 'b', 'c']) await reserve(db, ref, line(1), '50 milliseconds');
  await sleep(100);
  t.is(await expireDue(db, 1), 1);
  t.is((await queryOne(db, `select count(*)::int as n from inventory.reservations where status = 'EXPIRED'`)).n, 1);
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 2 });
});

test('expire_due skips a reservation another transaction holds, without waiting for it', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const locked = await reserve(db, 'locked', line(3), '50 milliseconds');
  await reserve(db, 'free', line(2), '50 milliseconds');
  await sleep(100);
  const holder = await db.pool.connect();
  const caller = await db.pool.connect();
  try {
    await holder.query('begin');
    await holder.query('select 1 from inventory.reservations where id = $1 for update', [locked.id]);
    await caller.query('begin');
    await caller.query(`set local lock_timeout = '3s'`);
    const started = Date.now();
    t.is((await queryOne<{ n: number }>(caller, 'select inventory.expire_due() as n')).n, 1);
    t.true(Date.now() - started < 2000, 'returned without waiting for the lock');
    await caller.query('commit');
    t.deepEqual(await statuses(db), { locked: 'HELD', free: 'EXPIRED' });
    t.like(await stockOf(db, 'A', 'WH1'), { reserved: 3 });
    await holder.query('rollback');
  } finally {
    caller.release();
    holder.release();
  }
  t.is(await expireDue(db), 1, 'expired once the lock is gone');
  t.deepEqual(await statuses(db), { locked: 'EXPIRED', free: 'EXPIRED' });
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 0 });
});

test('many reservations on the same rows expired in one call leave a correct running ledger', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 20 }, B: { WH1: 10 } });
  await reserve(db, 'kept', line(2), '1 hour');
  for (const qty of [1, 2, 3, 4, 5]) await reserve(db, `a${qty}`, line(qty), '50 milliseconds');
  for (const qty of [3, 4]) await reserve(db, `b${qty}`, [{ sku: 'A', warehouse: 'WH1', qty: 1 }, { sku: 'B', warehouse: 'WH1', qty }], '50 milliseconds');
  const versionA = (await stockOf(db, 'A', 'WH1'))!.version;
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 19 });
  t.like(await stockOf(db, 'B', 'WH1'), { reserved: 7 });
  await sleep(100);
  t.is(await expireDue(db), 7);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 20, reserved: 2, version: versionA + 7 });
  t.like(await stockOf(db, 'B', 'WH1'), { on_hand: 10, reserved: 0 });

  const movements = await movementsOf(db, ['EXPIRE']);
  t.is(movements.length, 9);
  for (const [sku, startReserved, onHand] of [['A', 19, 20], ['B', 7, 10]] as const) {
    const chain = movements.filter((m) => m.sku === sku);
    let reserved: number = startReserved;
    for (const m of chain) {
      reserved += m.reserved_delta;
      t.deepEqual([m.on_hand_delta, m.on_hand_after, m.reserved_after], [0, onHand, reserved], `movement ${m.id} of ${sku}`);
    }
    t.is(reserved, sku === 'A' ? 2 : 0);
  }
  t.deepEqual(movements.filter((m) => m.sku === 'A').map((m) => -m.reserved_delta).sort(), [1, 1, 1, 2, 3, 4, 5]);
  t.deepEqual(movements.filter((m) => m.sku === 'B').map((m) => -m.reserved_delta).sort(), [3, 4]);
  t.true(movements.every((m) => m.reason === 'TTL_EXPIRED'));
});

test('expired stock can be reserved again', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 3 } });
  await reserve(db, 'old', line(3), '50 milliseconds');
  await sleep(100);
  t.is(await expireDue(db), 1);
  const r = await reserve(db, 'new', line(3));
  t.is(r.status, 'HELD');
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 3, reserved: 3 });
});

for (const [title, max] of [['max 0', 0], ['a negative max', -1], ['a null max', null]] as const) {
  test(`IV005 for ${title}; nothing expired`, async (t) => {
    const { db } = t.context;
    await setupCatalog(db, { A: { WH1: 10 } });
    await reserve(db, 'due', line(3), '50 milliseconds');
    await sleep(100);
    const before = await snapshotOfWrites(db);
    const error = await rejectsWithCode(t, expireDue(db, max), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), { argument: 'max' });
    t.deepEqual(await snapshotOfWrites(db), before);
  });
}
