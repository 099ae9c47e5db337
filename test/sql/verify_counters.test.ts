// inventory.verify_counters(fix): reserved recomputed from HELD reservation
// lines; drift reported as (sku, warehouse, reserved, expected), fixed on request.
// Every test leaves the counters consistent again: the shared invariant check
// runs after each one.
import anyTest, { type TestFn } from 'ava';
import { lastMovementId, movements, sessionUser } from '../helpers/ledger.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import { invariantViolations, type Queryable } from '../helpers/invariants.ts';
import { movedAt, queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test, { reservationLedger: false }); // its tests change reservations behind the API's back

const MOVEMENT_COLUMNS = ['kind', 'sku', 'warehouse', 'on_hand_delta', 'reserved_delta', 'on_hand_after', 'reserved_after', 'reason', 'reference', 'reservation_id', 'idempotency_key', 'actor'] as const;
/** Movements with id above `after`, oldest first. */
const movementsAfter = (db: Queryable, after: number) => movements(db, { after }, MOVEMENT_COLUMNS);

async function verify(db: Queryable, fix: boolean | null = false): Promise<unknown[]> {
  return (await db.query('select * from inventory.verify_counters($1)', [fix])).rows;
}

async function reserve(db: Queryable, order: string, lines: object[]): Promise<string> {
  return (await queryOne<{ id: string }>(db, 'select id from inventory.reserve($1, $2)', [order, JSON.stringify(lines)])).id;
}

/** A DBA's direct UPDATE of one stock row (no version given: the trigger bumps it). */
async function setReserved(db: Queryable, sku: string, warehouse: string, reserved: number): Promise<void> {
  await db.query(
    `update inventory.stock_levels s set reserved = $3
     from inventory.products p, inventory.warehouses w
     where p.id = s.product_id and w.id = s.warehouse_id and p.sku = $1 and w.code = $2`, [sku, warehouse, reserved]);
}

async function rowOf(db: Queryable, sku: string, warehouse: string): Promise<{ reserved: number; on_hand: number; version: number; last_movement_at: Date }> {
  const row = await queryOne(db,
    `select s.on_hand, s.reserved, s.version, s.last_movement_at from inventory.stock_levels s
     join inventory.products p on p.id = s.product_id join inventory.warehouses w on w.id = s.warehouse_id
     where p.sku = $1 and w.code = $2`, [sku, warehouse]);
  return { on_hand: row.on_hand, reserved: row.reserved, version: Number(row.version), last_movement_at: row.last_movement_at };
}

test('returns nothing when every reserved matches its HELD lines', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 5 }, B: { WH1: 4 } });
  await reserve(db, 'held', [{ sku: 'A', warehouse: 'WH1', qty: 2 }, { sku: 'B', qty: 1 }]);
  const confirmed = await reserve(db, 'confirmed', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  await db.query('select inventory.confirm($1)', [confirmed]);
  const released = await reserve(db, 'released', [{ sku: 'A', warehouse: 'WH2', qty: 5 }]);
  await db.query('select inventory.release($1)', [released]);
  const mark = await lastMovementId(db);
  t.deepEqual(await verify(db), []);
  t.deepEqual(await verify(db, true), []);
  t.is(await lastMovementId(db), mark);
});

test('a direct UPDATE of a stock row bumps version and last_movement_at; it can never move version back', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  await reserve(db, 'o-1', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  const before = await rowOf(db, 'A', 'WH1');
  const beforeAt = await movedAt(db, 'A', 'WH1');

  await setReserved(db, 'A', 'WH1', 5);
  const drifted = await rowOf(db, 'A', 'WH1');
  t.is(drifted.reserved, 5);
  t.is(drifted.version, before.version + 1);
  t.true(await movedAt(db, 'A', 'WH1') > beforeAt);

  await db.query(`update inventory.stock_levels set version = 1`);
  t.is((await rowOf(db, 'A', 'WH1')).version, before.version + 2, 'a lower version is replaced by old + 1');
  await db.query(`update inventory.stock_levels set version = version + 10`);
  t.is((await rowOf(db, 'A', 'WH1')).version, before.version + 12, 'a higher version set explicitly is kept');

  await setReserved(db, 'A', 'WH1', 3); // undo the drift
  t.like(await rowOf(db, 'A', 'WH1'), { reserved: 3, version: before.version + 13 });
});

test('reports a drifted row as (sku, warehouse, reserved, expected); fix=false changes nothing', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 10 }, B: { WH1: 10 } });
  await reserve(db, 'o-1', [{ sku: 'A', warehouse: 'WH1', qty: 3 }, { sku: 'B', warehouse: 'WH1', qty: 2 }]);
  await setReserved(db, 'A', 'WH1', 5);
  await setReserved(db, 'A', 'WH2', 1);
  const before = await db.query('select * from inventory.stock_levels order by product_id, warehouse_id');
  const mark = await lastMovementId(db);

  const drift = await verify(db);
  t.deepEqual(drift.map((r) => JSON.stringify(r)).sort(), [
    { sku: 'A', warehouse: 'WH1', reserved: 5, expected: 3 },
    { sku: 'A', warehouse: 'WH2', reserved: 1, expected: 0 },
  ].map((r) => JSON.stringify(r)).sort());
  t.deepEqual(await verify(db), drift, 'the default is fix=false');
  t.deepEqual((await db.query('select * from inventory.stock_levels order by product_id, warehouse_id')).rows, before.rows);
  t.is(await lastMovementId(db), mark);

  await setReserved(db, 'A', 'WH1', 3); // undo the drift
  await setReserved(db, 'A', 'WH2', 0);
  t.deepEqual(await verify(db), []);
});

test('fix=true repairs reservations changed outside the API with ADJUST movements, and the ledger adds up', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH1: 10 } });
  // A: a HELD reservation marked released directly (reserved 3, HELD lines 0).
  const lost = await reserve(db, 'lost', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  await db.query(`update inventory.reservations set status = 'RELEASED', release_reason = 'CANCELLED' where id = $1`, [lost]);
  // B: a released reservation put back to HELD directly (reserved 0, HELD lines 4).
  const revived = await reserve(db, 'revived', [{ sku: 'B', warehouse: 'WH1', qty: 4 }]);
  await db.query('select inventory.release($1)', [revived]);
  await db.query(`update inventory.reservations set status = 'HELD', release_reason = null where id = $1`, [revived]);
  const [a, b] = [await rowOf(db, 'A', 'WH1'), await rowOf(db, 'B', 'WH1')];
  const mark = await lastMovementId(db);

  const reported = await verify(db, true);
  t.deepEqual(reported.map((r) => JSON.stringify(r)).sort(), [
    { sku: 'A', warehouse: 'WH1', reserved: 3, expected: 0 },
    { sku: 'B', warehouse: 'WH1', reserved: 0, expected: 4 },
  ].map((r) => JSON.stringify(r)).sort());

  t.like(await rowOf(db, 'A', 'WH1'), { on_hand: 10, reserved: 0, version: a.version + 1 });
  t.like(await rowOf(db, 'B', 'WH1'), { on_hand: 10, reserved: 4, version: b.version + 1 });
  t.like(await stockOf(db, 'B', 'WH1'), { available: 6 });
  const actor = await sessionUser(db);
  const fixes = await movementsAfter(db, mark);
  t.deepEqual(fixes.sort((x, y) => x.sku.localeCompare(y.sku)), [
    { sku: 'A', warehouse: 'WH1', kind: 'ADJUST', on_hand_delta: 0, reserved_delta: -3, on_hand_after: 10, reserved_after: 0,
      reason: 'VERIFY_COUNTERS', reference: null, reservation_id: null, idempotency_key: null, actor },
    { sku: 'B', warehouse: 'WH1', kind: 'ADJUST', on_hand_delta: 0, reserved_delta: 4, on_hand_after: 10, reserved_after: 4,
      reason: 'VERIFY_COUNTERS', reference: null, reservation_id: null, idempotency_key: null, actor },
  ]);
  t.deepEqual(await invariantViolations(db), [], 'the ledger adds up');
  t.deepEqual(await verify(db, true), [], 'a second call finds nothing');
  t.is(await lastMovementId(db), mark + 2);
});

// The correcting movement's reserved_delta comes from the ledger, not from the
// drifted column, so after a direct UPDATE of reserved the ledger adds up again.
// (Runs in a transaction that is rolled back, so a broken ledger could not
// outlive the test and hide behind the shared check.)
test('fix=true after a direct UPDATE of reserved leaves a ledger that adds up', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  await reserve(db, 'o-1', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  const client = await db.pool.connect();
  try {
    await client.query('begin');
    const mark = await lastMovementId(client);
    await setReserved(client, 'A', 'WH1', 5);
    t.deepEqual(await verify(client, true), [{ sku: 'A', warehouse: 'WH1', reserved: 5, expected: 3 }]);
    t.like(await rowOf(client, 'A', 'WH1'), { on_hand: 10, reserved: 3 });
    t.like(await movementsAfter(client, mark), [
      { sku: 'A', warehouse: 'WH1', kind: 'ADJUST', on_hand_delta: 0, on_hand_after: 10, reserved_after: 3, reason: 'VERIFY_COUNTERS' },
    ]);
    t.deepEqual(await invariantViolations(client), [], 'the ledger adds up');
    t.deepEqual(await verify(client), []);
  } finally {
    await client.query('rollback');
    client.release();
  }
});

test('a row whose HELD lines exceed on_hand is reported but not fixed', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const id = await reserve(db, 'o-1', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  await db.query('update inventory.reservation_lines set qty = 8 where reservation_id = $1', [id]);
  const before = await rowOf(db, 'A', 'WH1');
  const mark = await lastMovementId(db);

  t.deepEqual(await verify(db, true), [{ sku: 'A', warehouse: 'WH1', reserved: 3, expected: 8 }]);
  t.deepEqual(await rowOf(db, 'A', 'WH1'), before);
  t.is(await lastMovementId(db), mark);

  await db.query('update inventory.reservation_lines set qty = 3 where reservation_id = $1', [id]); // undo
  t.deepEqual(await verify(db), []);
});

test('a null fix is IV005', async (t) => {
  const { db } = t.context;
  const error = await rejectsWithCode(t, verify(db, null), 'IV005');
  t.deepEqual(JSON.parse(error.detail!), { argument: 'fix' });
});
