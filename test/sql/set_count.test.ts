// inventory.set_count(sku, warehouse, counted, reason, expected): cycle counts
// as COUNT movements, with an optional compare-and-set on the stored on_hand.
import anyTest, { type TestFn } from 'ava';
import { lastMovementId, movements, sessionUser, snapshotOfWrites, type Movement } from '../helpers/ledger.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { movedAt, queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

const MOVEMENT_COLUMNS = ['kind', 'sku', 'warehouse', 'on_hand_delta', 'reserved_delta', 'on_hand_after', 'reserved_after', 'reason', 'reference', 'idempotency_key', 'actor'] as const;
/** Movements with id above `after`, oldest first. */
const movementsAfter = (db: Queryable, after: number) => movements(db, { after }, MOVEMENT_COLUMNS);

const setCount = 'select * from inventory.set_count($1, $2, $3, $4, $5)';

function countMovement(sku: string, delta: number, after: number, reason: string, actor: string, reserved = 0): Pick<Movement, (typeof MOVEMENT_COLUMNS)[number]> {
  return {
    sku, warehouse: 'WH1', kind: 'COUNT', on_hand_delta: delta, reserved_delta: 0, on_hand_after: after,
    reserved_after: reserved, reason, reference: null, idempotency_key: null, actor,
  };
}

test('sets on_hand and writes a COUNT movement with the difference, down and up', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const before = await queryOne(db, 'select * from inventory.stock_levels');
  const beforeAt = await movedAt(db, 'A', 'WH1');
  const mark = await lastMovementId(db);

  const down = await queryOne(db, setCount, ['A', 'WH1', 7, 'cycle count', null]);
  t.like(down, { on_hand: 7, reserved: 0 });
  t.is(Number(down.version), Number(before.version) + 1);
  t.true(await movedAt(db, 'A', 'WH1') > beforeAt);
  const up = await queryOne(db, setCount, ['A', 'WH1', 12, 'recount', null]);
  t.like(up, { on_hand: 12 });
  t.is(Number(up.version), Number(before.version) + 2);

  const actor = await sessionUser(db);
  t.deepEqual(await movementsAfter(db, mark), [
    countMovement('A', -3, 7, 'cycle count', actor),
    countMovement('A', 5, 12, 'recount', actor),
  ]);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 12, available: 12 });
});

test('a count equal to on_hand still writes a zero-difference COUNT and bumps version', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const before = await queryOne(db, 'select * from inventory.stock_levels');
  const beforeAt = await movedAt(db, 'A', 'WH1');
  const mark = await lastMovementId(db);
  const row = await queryOne(db, setCount, ['A', 'WH1', 10, 'cycle count', null]);
  t.is(row.on_hand, 10);
  t.is(Number(row.version), Number(before.version) + 1);
  t.true(await movedAt(db, 'A', 'WH1') > beforeAt);
  t.deepEqual(await movementsAfter(db, mark), [countMovement('A', 0, 10, 'cycle count', await sessionUser(db))]);
});

test('creates a missing stock row', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 0 }, B: { WH1: 0 } });
  t.like(await queryOne(db, setCount, ['A', 'WH1', 4, 'first count', null]), { on_hand: 4, reserved: 0 });
  t.like(await queryOne(db, setCount, ['B', 'WH1', 0, 'empty shelf', 0]), { on_hand: 0, reserved: 0 });
  const actor = await sessionUser(db);
  t.deepEqual(await movementsAfter(db, 0), [
    countMovement('A', 4, 4, 'first count', actor),
    countMovement('B', 0, 0, 'empty shelf', actor),
  ]);
  t.is((await queryOne(db, 'select count(*)::int as n from inventory.stock_levels')).n, 2);
});

test('with an expected that matches the stored on_hand, the count applies', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  t.like(await queryOne(db, setCount, ['A', 'WH1', 8, 'cycle count', 10]), { on_hand: 8 });
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 8 });
});

test('a stale expected is IV007 with expected and on_hand in the detail, and nothing is written', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  await db.query(`select inventory.reserve('o-1', '[{"sku":"A","warehouse":"WH1","qty":2}]')`);
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, db.query(setCount, ['A', 'WH1', 7, 'cycle count', 9]), 'IV007');
  t.deepEqual(JSON.parse(error.detail!), { sku: 'A', warehouse: 'WH1', on_hand: 10, reserved: 2, expected: 9, counted: 7 });
  t.regex(error.message, /expected on_hand 9, but it is 10 now/);
  t.truthy(error.hint);
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('an expected on a missing row compares against zero, and a mismatch creates no row', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 0 } });
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, db.query(setCount, ['A', 'WH1', 5, 'first count', 3]), 'IV007');
  t.like(JSON.parse(error.detail!), { on_hand: 0, expected: 3 });
  t.deepEqual(await snapshotOfWrites(db), before);
  t.like(await queryOne(db, setCount, ['A', 'WH1', 5, 'first count', 0]), { on_hand: 5 });
});

test('a count below reserved is IV002; exactly reserved is fine', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  await db.query(`select inventory.reserve('o-1', '[{"sku":"A","warehouse":"WH1","qty":6}]')`);
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, db.query(setCount, ['A', 'WH1', 5, 'cycle count', null]), 'IV002');
  t.deepEqual(JSON.parse(error.detail!), { sku: 'A', warehouse: 'WH1', on_hand: 10, reserved: 6, counted: 5 });
  t.regex(error.message, /count 5 of A at WH1 is below the 6 reserved/);
  t.deepEqual(await snapshotOfWrites(db), before);

  const mark = await lastMovementId(db);
  t.like(await queryOne(db, setCount, ['A', 'WH1', 6, 'cycle count', null]), { on_hand: 6, reserved: 6 });
  t.deepEqual(await movementsAfter(db, mark), [countMovement('A', -4, 6, 'cycle count', await sessionUser(db), 6)]);
});

test('a negative or null counted is IV005', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const before = await snapshotOfWrites(db);
  for (const counted of [-1, null]) {
    const error = await rejectsWithCode(t, db.query(setCount, ['A', 'WH1', counted, 'cycle count', null]), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), { argument: 'counted' });
  }
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('a negative expected is IV005', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, db.query(setCount, ['A', 'WH1', 5, 'cycle count', -1]), 'IV005');
  t.deepEqual(JSON.parse(error.detail!), { argument: 'expected' });
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('a null or blank reason is IV005', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const before = await snapshotOfWrites(db);
  for (const reason of [null, ' ']) {
    const error = await rejectsWithCode(t, db.query(setCount, ['A', 'WH1', 5, reason, null]), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), { argument: 'reason' });
  }
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('an unknown sku or warehouse is IV004', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const before = await snapshotOfWrites(db);
  t.deepEqual(JSON.parse((await rejectsWithCode(t, db.query(setCount, ['NOPE', 'WH1', 5, 'count', null]), 'IV004')).detail!),
    { sku: 'NOPE' });
  t.deepEqual(JSON.parse((await rejectsWithCode(t, db.query(setCount, ['A', 'WH9', 5, 'count', null]), 'IV004')).detail!),
    { warehouse: 'WH9' });
  t.deepEqual(await snapshotOfWrites(db), before);
});
