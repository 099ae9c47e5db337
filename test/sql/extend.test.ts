import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type TestFn } from 'ava';
import { inTransaction, reserve, snapshotOfWrites, type Reservation } from '../helpers/ledger.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

function extend(db: Queryable, id: string | null, ttl: string | null): Promise<Reservation> {
  return queryOne<Reservation>(db, 'select * from inventory.extend($1, $2::interval)', [id, ttl]);
}

const A3 = [{ sku: 'A', warehouse: 'WH1', qty: 3 }];

async function stockAndLedger(db: Queryable): Promise<Record<string, unknown>> {
  return queryOne(db, `
    select (select count(*) from inventory.movements)::int as movements,
           (select jsonb_agg(jsonb_build_array(product_id, warehouse_id, on_hand, reserved, version) order by product_id, warehouse_id)
            from inventory.stock_levels) as stock`);
}

test('extend sets expires_at to now() + ttl and writes no movement', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', A3);
  const before = await stockAndLedger(db);
  const extended = await extend(db, r.id, '2 hours');
  t.is(extended.id, r.id);
  t.is(extended.status, 'HELD');
  t.is(extended.release_reason, null);
  t.true(extended.expires_at.getTime() > r.expires_at.getTime());
  const stored = await queryOne(db,
    `select expires_at - updated_at = interval '2 hours' as exact, updated_at > created_at as touched
     from inventory.reservations where id = $1`, [r.id]);
  t.deepEqual(stored, { exact: true, touched: true });
  const fromNow = extended.expires_at.getTime() - Date.now();
  t.true(fromNow > 2 * 3600_000 - 60_000 && fromNow <= 2 * 3600_000 + 1000, `expires in ${fromNow} ms`);
  t.deepEqual(await stockAndLedger(db), before);
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 3 });
});

test('extend counts ttl from now, not from the old expires_at (it can shorten a hold)', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', A3, '1 day');
  const extended = await extend(db, r.id, '1 minute');
  t.true(extended.expires_at.getTime() < r.expires_at.getTime());
  const { exact } = await queryOne(db, `select expires_at - updated_at = interval '1 minute' as exact from inventory.reservations where id = $1`, [r.id]);
  t.true(exact);
});

test('extend can be called again and again while the hold is alive', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', A3, '10 minutes');
  const first = await extend(db, r.id, '20 minutes');
  const second = await extend(db, r.id, '30 minutes');
  t.true(second.expires_at.getTime() > first.expires_at.getTime());
  t.is(second.status, 'HELD');
});

test('an extended reservation is not expired by expire_due', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  // Reserved and extended in one transaction, so the 200 ms cannot run out in between.
  const r = await inTransaction(db, async (client) => extend(client, (await reserve(client, 'o', A3, '200 milliseconds')).id, '1 hour'));
  await sleep(250);
  t.is((await queryOne(db, 'select inventory.expire_due() as n')).n, 0);
  t.is((await queryOne(db, 'select status from inventory.reservations where id = $1', [r.id])).status, 'HELD');
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 3 });
  // And it can still be confirmed.
  t.is((await queryOne(db, 'select status from inventory.confirm($1)', [r.id])).status, 'CONFIRMED');
});

test('an extended reservation is not expired lazily by a reserve that is short', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 3 } });
  const r = await inTransaction(db, async (client) => extend(client, (await reserve(client, 'o', A3, '200 milliseconds')).id, '1 hour'));
  await sleep(250);
  const error = await rejectsWithCode(t, reserve(db, 'other', [{ sku: 'A', warehouse: 'WH1', qty: 1 }]), 'IV001');
  t.deepEqual(JSON.parse(error.detail!).lines, [{ sku: 'A', warehouse: 'WH1', requested: 1, available: 0 }]);
  t.is((await queryOne(db, 'select status from inventory.reservations where id = $1', [r.id])).status, 'HELD');
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 3 });
});

test('IV003 when extending a HELD reservation already past expires_at; it stays due', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', A3, '50 milliseconds');
  await sleep(100);
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, extend(db, r.id, '1 hour'), 'IV003');
  const detail = JSON.parse(error.detail!);
  t.like(detail, { reservation_id: r.id, status: 'HELD', release_reason: null });
  t.is(new Date(detail.expires_at).getTime(), r.expires_at.getTime());
  t.regex(error.message, /cannot extend reservation .* it expired at/);
  t.deepEqual(await snapshotOfWrites(db), before);
  t.is((await queryOne(db, 'select inventory.expire_due() as n')).n, 1);
});

test('IV003 when extending a CONFIRMED reservation', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', A3);
  await db.query('select inventory.confirm($1)', [r.id]);
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, extend(db, r.id, '1 hour'), 'IV003');
  t.like(JSON.parse(error.detail!), { reservation_id: r.id, status: 'CONFIRMED' });
  t.regex(error.message, /it is CONFIRMED/);
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('IV003 when extending a RELEASED reservation', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', A3);
  await db.query('select inventory.release($1)', [r.id]);
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, extend(db, r.id, '1 hour'), 'IV003');
  t.like(JSON.parse(error.detail!), { reservation_id: r.id, status: 'RELEASED', release_reason: 'CANCELLED' });
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('IV003 when extending an EXPIRED reservation', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', A3);
  await db.query(`select inventory.release($1, 'TTL_EXPIRED')`, [r.id]);
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, extend(db, r.id, '1 hour'), 'IV003');
  t.like(JSON.parse(error.detail!), { reservation_id: r.id, status: 'EXPIRED', release_reason: 'TTL_EXPIRED' });
  t.deepEqual(await snapshotOfWrites(db), before);
});

for (const [title, ttl] of [['a null ttl', null], ['a zero ttl', '0'], ['a negative ttl', '-1 minute']] as const) {
  test(`IV005 for ${title}; expires_at unchanged`, async (t) => {
    const { db } = t.context;
    await setupCatalog(db, { A: { WH1: 10 } });
    const r = await reserve(db, 'o', A3);
    const before = await snapshotOfWrites(db);
    const error = await rejectsWithCode(t, extend(db, r.id, ttl), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), { argument: 'ttl' });
    t.deepEqual(await snapshotOfWrites(db), before);
  });
}

test('IV005 for a ttl longer than a year, infinite, or too large for a timestamp', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, 'o', A3);
  const before = await snapshotOfWrites(db);
  for (const ttl of ['300000 years', 'infinity', '1 year 1 day']) {
    const error = await rejectsWithCode(t, extend(db, r.id, ttl), 'IV005');
    t.deepEqual(JSON.parse(error.detail ?? '{}'), { argument: 'ttl' });
  }
  t.deepEqual(await snapshotOfWrites(db), before);
  t.is((await extend(db, r.id, '1 year')).status, 'HELD', 'a year is the longest hold');
});

test('IV004 when extending an unknown reservation', async (t) => {
  const { db } = t.context;
  const id = '00000000-0000-4000-8000-000000000003';
  const error = await rejectsWithCode(t, extend(db, id, '1 hour'), 'IV004');
  t.deepEqual(JSON.parse(error.detail!), { reservation_id: id });
});

test('IV005 when extending a null reservation id', async (t) => {
  const { db } = t.context;
  const error = await rejectsWithCode(t, extend(db, null, '1 hour'), 'IV005');
  t.deepEqual(JSON.parse(error.detail!), { argument: 'reservation_id' });
});
