// inventory.adjust(sku, warehouse, delta, reason, idempotency_key): receipts
// (RECEIVE), corrections (ADJUST), never below reserved, idempotent with a key.
import anyTest, { type TestFn } from 'ava';
import { lastMovementId, movements, sessionUser, snapshotOfWrites } from '../helpers/ledger.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { movedAt, queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

const MOVEMENT_COLUMNS = ['kind', 'sku', 'warehouse', 'on_hand_delta', 'reserved_delta', 'on_hand_after', 'reserved_after', 'reason', 'reference', 'idempotency_key', 'actor'] as const;
/** Movements with id above `after`, oldest first. */
const movementsAfter = (db: Queryable, after: number) => movements(db, { after }, MOVEMENT_COLUMNS);

const adjust = 'select * from inventory.adjust($1, $2, $3, $4, $5)';

test('a positive delta is a RECEIVE that creates the missing stock row', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 0 } });
  t.is((await queryOne(db, 'select count(*)::int as n from inventory.stock_levels')).n, 0);

  const row = await queryOne(db, adjust, ['A', 'WH1', 7, 'po-1', null]);
  const ids = await queryOne(db, `select (select id from inventory.products where sku = 'A') as product_id,
                                         (select id from inventory.warehouses where code = 'WH1') as warehouse_id`);
  t.like(row, { ...ids, on_hand: 7, reserved: 0, safety_stock: 0, low_stock_threshold: 0 });
  t.true(row.last_movement_at instanceof Date);
  t.deepEqual(await movementsAfter(db, 0), [{
    sku: 'A', warehouse: 'WH1', kind: 'RECEIVE', on_hand_delta: 7, reserved_delta: 0, on_hand_after: 7, reserved_after: 0,
    reason: 'po-1', reference: null, idempotency_key: null, actor: await sessionUser(db),
  }]);
  t.is((await queryOne(db, 'select count(*)::int as n from inventory.stock_levels')).n, 1);
});

test('a negative delta is an ADJUST; every change grows version by one and moves last_movement_at', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const before = await queryOne(db, `select * from inventory.stock_levels`);
  const beforeAt = await movedAt(db, 'A', 'WH1');
  const mark = await lastMovementId(db);

  const lowered = await queryOne(db, adjust, ['A', 'WH1', -4, 'damaged', null]);
  t.is(lowered.on_hand, 6);
  t.is(Number(lowered.version), Number(before.version) + 1);
  const loweredAt = await movedAt(db, 'A', 'WH1');
  t.true(loweredAt > beforeAt);

  const raised = await queryOne(db, adjust, ['A', 'WH1', 2, 'found', null]);
  t.is(raised.on_hand, 8);
  t.is(Number(raised.version), Number(before.version) + 2);
  t.true(await movedAt(db, 'A', 'WH1') > loweredAt);

  const actor = await sessionUser(db);
  t.deepEqual(await movementsAfter(db, mark), [
    { sku: 'A', warehouse: 'WH1', kind: 'ADJUST', on_hand_delta: -4, reserved_delta: 0, on_hand_after: 6, reserved_after: 0,
      reason: 'damaged', reference: null, idempotency_key: null, actor },
    { sku: 'A', warehouse: 'WH1', kind: 'RECEIVE', on_hand_delta: 2, reserved_delta: 0, on_hand_after: 8, reserved_after: 0,
      reason: 'found', reference: null, idempotency_key: null, actor },
  ]);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 8, reserved: 0, available: 8 });
});

test('the movement actor is stockroom.actor when set, else the session user', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const mark = await lastMovementId(db);
  const client = await db.pool.connect();
  try {
    await client.query(`set stockroom.actor = 'alice@example.com'`);
    await client.query(adjust, ['A', 'WH1', 1, 'by alice', null]);
    await client.query(`set stockroom.actor = ''`);
    await client.query(adjust, ['A', 'WH1', 1, 'by nobody in particular', null]);
  } finally {
    client.release(true);
  }
  t.deepEqual((await movementsAfter(db, mark)).map((m) => m.actor), ['alice@example.com', await sessionUser(db)]);
});

test('cannot take on_hand below reserved: IV002 with on_hand, reserved and delta, nothing written', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  await db.query(`select inventory.reserve('order-1', '[{"sku":"A","warehouse":"WH1","qty":7}]')`);
  const before = await snapshotOfWrites(db);

  const error = await rejectsWithCode(t, db.query(adjust, ['A', 'WH1', -4, 'shrinkage', null]), 'IV002');
  t.deepEqual(JSON.parse(error.detail!), { sku: 'A', warehouse: 'WH1', on_hand: 10, reserved: 7, delta: -4 });
  t.regex(error.message, /would take on_hand to 6, below the 7 reserved/);
  t.truthy(error.hint);
  t.deepEqual(await snapshotOfWrites(db), before);

  // Down to exactly the reserved units is fine.
  t.like(await queryOne(db, adjust, ['A', 'WH1', -3, 'shrinkage', null]), { on_hand: 7, reserved: 7 });
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 7, reserved: 7, available: 0 });
});

test('a negative delta on a missing stock row is IV002 and creates no row', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 0 } });
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, db.query(adjust, ['A', 'WH1', -1, 'oops', null]), 'IV002');
  t.deepEqual(JSON.parse(error.detail!), { sku: 'A', warehouse: 'WH1', on_hand: 0, reserved: 0, delta: -1 });
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('a zero or null delta is IV005', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const before = await snapshotOfWrites(db);
  for (const delta of [0, null]) {
    const error = await rejectsWithCode(t, db.query(adjust, ['A', 'WH1', delta, 'nothing', null]), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), { argument: 'delta' });
  }
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('a null or blank reason is IV005', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const before = await snapshotOfWrites(db);
  for (const reason of [null, '', '   ']) {
    const error = await rejectsWithCode(t, db.query(adjust, ['A', 'WH1', 1, reason, null]), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), { argument: 'reason' });
  }
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('an unknown sku or warehouse is IV004 with a hint; a blank one is IV005', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const before = await snapshotOfWrites(db);

  const sku = await rejectsWithCode(t, db.query(adjust, ['NOPE', 'WH1', 1, 'receipt', null]), 'IV004');
  t.deepEqual(JSON.parse(sku.detail!), { sku: 'NOPE' });
  t.regex(sku.message, /unknown sku 'NOPE'/);
  t.regex(sku.hint ?? '', /upsert_product/);

  const warehouse = await rejectsWithCode(t, db.query(adjust, ['A', 'WH9', 1, 'receipt', null]), 'IV004');
  t.deepEqual(JSON.parse(warehouse.detail!), { warehouse: 'WH9' });
  t.regex(warehouse.message, /unknown warehouse 'WH9'/);
  t.regex(warehouse.hint ?? '', /upsert_warehouse/);

  t.deepEqual(JSON.parse((await rejectsWithCode(t, db.query(adjust, [' ', 'WH1', 1, 'receipt', null]), 'IV005')).detail!),
    { argument: 'sku' });
  t.deepEqual(JSON.parse((await rejectsWithCode(t, db.query(adjust, ['A', null, 1, 'receipt', null]), 'IV005')).detail!),
    { argument: 'warehouse' });
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('on_hand beyond 2147483647 is IV005 and changes nothing; exactly the maximum is fine', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2147483000 } });
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, db.query(adjust, ['A', 'WH1', 1000, 'too much', null]), 'IV005');
  t.deepEqual(JSON.parse(error.detail!), { argument: 'delta' });
  t.regex(error.message, /would exceed 2147483647/);
  await rejectsWithCode(t, db.query(adjust, ['A', 'WH1', 2147483647, 'far too much', null]), 'IV005');
  t.deepEqual(await snapshotOfWrites(db), before);

  t.like(await queryOne(db, adjust, ['A', 'WH1', 647, 'to the brim', null]), { on_hand: 2147483647 });
});

test('a retry with the same idempotency key returns the current row without a second movement', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const mark = await lastMovementId(db);

  const first = await queryOne(db, adjust, ['A', 'WH1', 5, 'po-7', 'receipt-po-7']);
  t.is(first.on_hand, 15);
  await db.query(adjust, ['A', 'WH1', 1, 'something else', null]); // the row moves on meanwhile
  const retry = await queryOne(db, adjust, ['A', 'WH1', 5, 'po-7', 'receipt-po-7']);
  t.like(retry, { on_hand: 16, reserved: 0 });
  t.is(Number(retry.version), Number(first.version) + 1, 'the row as it is now, not changed by the retry');

  const actor = await sessionUser(db);
  t.deepEqual(await movementsAfter(db, mark), [
    { sku: 'A', warehouse: 'WH1', kind: 'RECEIVE', on_hand_delta: 5, reserved_delta: 0, on_hand_after: 15, reserved_after: 0,
      reason: 'po-7', reference: null, idempotency_key: 'receipt-po-7', actor },
    { sku: 'A', warehouse: 'WH1', kind: 'RECEIVE', on_hand_delta: 1, reserved_delta: 0, on_hand_after: 16, reserved_after: 0,
      reason: 'something else', reference: null, idempotency_key: null, actor },
  ]);
  t.deepEqual((await db.query('select idempotency_key, operation from inventory.operation_keys')).rows,
    [{ idempotency_key: 'receipt-po-7', operation: 'adjust' }]);
});

test('the same idempotency key with another delta, reason, sku or warehouse is IV006', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 10 }, B: { WH1: 10 } });
  await db.query(adjust, ['A', 'WH1', 5, 'po-7', 'k1']);
  const before = await snapshotOfWrites(db);
  for (const args of [['A', 'WH1', 6, 'po-7'], ['A', 'WH1', 5, 'po-8'], ['B', 'WH1', 5, 'po-7'], ['A', 'WH2', 5, 'po-7']]) {
    const error = await rejectsWithCode(t, db.query(adjust, [...args, 'k1']), 'IV006');
    t.like(JSON.parse(error.detail!), { idempotency_key: 'k1', operation: 'adjust' });
    t.regex(error.message, /idempotency key 'k1' was already used for another adjust request/);
    t.truthy(error.hint);
  }
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('an idempotency key used by adjust and reused for a transfer is IV006', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 0 } });
  await db.query(adjust, ['A', 'WH1', 5, 'po-7', 'shared-key']);
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t,
    db.query(`select * from inventory.transfer('A', 'WH1', 'WH2', 5, 'po-7', 'shared-key')`), 'IV006');
  t.like(JSON.parse(error.detail!), { idempotency_key: 'shared-key', operation: 'adjust' });
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('a failed adjust does not claim its idempotency key', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  await rejectsWithCode(t, db.query(adjust, ['A', 'WH1', -20, 'write-off', 'k-write-off']), 'IV002');
  t.is((await queryOne(db, 'select count(*)::int as n from inventory.operation_keys')).n, 0);
  await db.query(adjust, ['A', 'WH1', 15, 'late receipt', null]);
  t.like(await queryOne(db, adjust, ['A', 'WH1', -20, 'write-off', 'k-write-off']), { on_hand: 5 });
});

test('a blank idempotency key is IV005', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, db.query(adjust, ['A', 'WH1', 1, 'receipt', '  ']), 'IV005');
  t.deepEqual(JSON.parse(error.detail!), { argument: 'idempotency_key' });
  t.deepEqual(await snapshotOfWrites(db), before);
});
