// inventory.transfer(sku, from_warehouse, to_warehouse, qty, reason, idempotency_key):
// a TRANSFER_OUT / TRANSFER_IN pair with one reference; source row, then destination row.
import anyTest, { type TestFn } from 'ava';
import { lastMovementId, movements, sessionUser, snapshotOfWrites } from '../helpers/ledger.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

const MOVEMENT_COLUMNS = ['kind', 'sku', 'warehouse', 'on_hand_delta', 'reserved_delta', 'on_hand_after', 'reserved_after', 'reason', 'reference', 'idempotency_key', 'actor'] as const;
/** Movements with id above `after`, oldest first. */
const movementsAfter = (db: Queryable, after: number) => movements(db, { after }, MOVEMENT_COLUMNS);

/** The rows transfer() returns, as (warehouse code, on_hand, reserved, version), in the order returned. */
async function transfer(db: Queryable, args: unknown[]): Promise<Array<{ warehouse: string; on_hand: number; reserved: number; version: number }>> {
  const { rows } = await db.query(
    `select w.code as warehouse, t.on_hand, t.reserved, t.version
     from inventory.transfer($1, $2, $3, $4, $5, $6) with ordinality as t
     join inventory.warehouses w on w.id = t.warehouse_id
     order by t.ordinality`, args);
  return rows.map((r) => ({ warehouse: r.warehouse, on_hand: r.on_hand, reserved: r.reserved, version: Number(r.version) }));
}

const transferCall = 'select * from inventory.transfer($1, $2, $3, $4, $5, $6)';

async function versionOf(db: Queryable, sku: string, warehouse: string): Promise<number> {
  return (await stockOf(db, sku, warehouse))!.version;
}

test('moves units as a TRANSFER_OUT / TRANSFER_IN pair sharing one transfer: reference', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 3 } });
  const [v1, v2] = [await versionOf(db, 'A', 'WH1'), await versionOf(db, 'A', 'WH2')];
  const mark = await lastMovementId(db);

  t.deepEqual(await transfer(db, ['A', 'WH1', 'WH2', 4, 'rebalance', null]), [
    { warehouse: 'WH1', on_hand: 6, reserved: 0, version: v1 + 1 },
    { warehouse: 'WH2', on_hand: 7, reserved: 0, version: v2 + 1 },
  ]);

  const moved = await movementsAfter(db, mark);
  const reference = moved[0]?.reference ?? '';
  t.regex(reference, /^transfer:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  const actor = await sessionUser(db);
  t.deepEqual(moved, [
    { sku: 'A', warehouse: 'WH1', kind: 'TRANSFER_OUT', on_hand_delta: -4, reserved_delta: 0, on_hand_after: 6, reserved_after: 0,
      reason: 'rebalance', reference, idempotency_key: null, actor },
    { sku: 'A', warehouse: 'WH2', kind: 'TRANSFER_IN', on_hand_delta: 4, reserved_delta: 0, on_hand_after: 7, reserved_after: 0,
      reason: 'rebalance', reference, idempotency_key: null, actor },
  ]);

  // Each transfer gets its own reference.
  const mark2 = await lastMovementId(db);
  await transfer(db, ['A', 'WH2', 'WH1', 1, 'back', null]);
  const again = await movementsAfter(db, mark2);
  t.is(again.length, 2);
  t.is(again[0]?.reference, again[1]?.reference);
  t.not(again[0]?.reference, reference);
});

test('the returned columns are whole stock_levels rows, source first', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 3 } });
  const { rows } = await db.query(transferCall, ['A', 'WH1', 'WH2', 4, 'rebalance', null]);
  const expected = (await db.query(
    `select s.* from inventory.stock_levels s join inventory.warehouses w on w.id = s.warehouse_id order by w.code`)).rows;
  t.deepEqual(rows, expected);
});

test('creates the destination row when it is missing', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 0 } });
  t.is(await stockOf(db, 'A', 'WH2'), undefined);
  t.deepEqual((await transfer(db, ['A', 'WH1', 'WH2', 10, 'move all', null])).map((r) => [r.warehouse, r.on_hand]),
    [['WH1', 0], ['WH2', 10]]);
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 10, reserved: 0, available: 10 });
});

test('works whether the destination warehouse id sorts before or after the source', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 10 } });
  // A goes WH1 -> WH2, B goes WH2 -> WH1: one of them has from < to, the other from > to.
  t.deepEqual((await transfer(db, ['A', 'WH1', 'WH2', 3, 'rebalance', null])).map((r) => [r.warehouse, r.on_hand]),
    [['WH1', 7], ['WH2', 3]]);
  t.deepEqual((await transfer(db, ['B', 'WH2', 'WH1', 4, 'rebalance', null])).map((r) => [r.warehouse, r.on_hand]),
    [['WH2', 6], ['WH1', 4]]);
  // And back again, into the rows that exist now.
  t.deepEqual((await transfer(db, ['A', 'WH2', 'WH1', 3, 'back', null])).map((r) => [r.warehouse, r.on_hand]),
    [['WH2', 0], ['WH1', 10]]);
  t.deepEqual((await transfer(db, ['B', 'WH1', 'WH2', 4, 'back', null])).map((r) => [r.warehouse, r.on_hand]),
    [['WH1', 0], ['WH2', 10]]);
});

test('cannot take the source below reserved: IV002, nothing written', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 0 } });
  await db.query(`select inventory.reserve('o-1', '[{"sku":"A","warehouse":"WH1","qty":7}]')`);
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, db.query(transferCall, ['A', 'WH1', 'WH2', 4, 'rebalance', null]), 'IV002');
  t.deepEqual(JSON.parse(error.detail!), { sku: 'A', warehouse: 'WH1', on_hand: 10, reserved: 7, qty: 4 });
  t.regex(error.message, /would take on_hand to 6, below the 7 reserved/);
  t.truthy(error.hint);
  t.deepEqual(await snapshotOfWrites(db), before, 'the destination row is not left behind either');

  t.deepEqual((await transfer(db, ['A', 'WH1', 'WH2', 3, 'rebalance', null])).map((r) => [r.warehouse, r.on_hand, r.reserved]),
    [['WH1', 7, 7], ['WH2', 3, 0]]);
});

test('a source without a stock row is IV002', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH2: 5 }, B: { WH1: 0 } });
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, db.query(transferCall, ['A', 'WH1', 'WH2', 1, 'rebalance', null]), 'IV002');
  t.deepEqual(JSON.parse(error.detail!), { sku: 'A', warehouse: 'WH1', on_hand: 0, reserved: 0, qty: 1 });
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('the same warehouse on both sides is IV005', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, db.query(transferCall, ['A', 'WH1', 'WH1', 1, 'nowhere', null]), 'IV005');
  t.deepEqual(JSON.parse(error.detail!), { argument: 'to_warehouse' });
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('a zero, negative or null qty is IV005', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 0 } });
  const before = await snapshotOfWrites(db);
  for (const qty of [0, -1, null]) {
    const error = await rejectsWithCode(t, db.query(transferCall, ['A', 'WH1', 'WH2', qty, 'rebalance', null]), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), { argument: 'qty' });
  }
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('a null or blank reason is IV005', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 0 } });
  const before = await snapshotOfWrites(db);
  for (const reason of [null, '']) {
    const error = await rejectsWithCode(t, db.query(transferCall, ['A', 'WH1', 'WH2', 1, reason, null]), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), { argument: 'reason' });
  }
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('an unknown sku, source or destination is IV004', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 0 } });
  const before = await snapshotOfWrites(db);
  const cases: Array<[unknown[], object]> = [
    [['NOPE', 'WH1', 'WH2'], { sku: 'NOPE' }],
    [['A', 'WH9', 'WH2'], { warehouse: 'WH9' }],
    [['A', 'WH1', 'WH9'], { warehouse: 'WH9' }],
  ];
  for (const [args, detail] of cases) {
    const error = await rejectsWithCode(t, db.query(transferCall, [...args, 1, 'rebalance', null]), 'IV004');
    t.deepEqual(JSON.parse(error.detail!), detail);
    t.truthy(error.hint);
  }
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('a destination beyond 2147483647 is IV005', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 2147483646 } });
  const before = await snapshotOfWrites(db);
  const error = await rejectsWithCode(t, db.query(transferCall, ['A', 'WH1', 'WH2', 2, 'rebalance', null]), 'IV005');
  t.deepEqual(JSON.parse(error.detail!), { argument: 'qty' });
  t.deepEqual(await snapshotOfWrites(db), before);
  t.deepEqual((await transfer(db, ['A', 'WH1', 'WH2', 1, 'rebalance', null])).map((r) => r.on_hand), [9, 2147483647]);
});

test('a retry with the same idempotency key returns both rows as they are now, with no new movements', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 3 } });
  const mark = await lastMovementId(db);
  const first = await transfer(db, ['A', 'WH1', 'WH2', 4, 'rebalance', 'tr-1']);
  t.deepEqual(first.map((r) => [r.warehouse, r.on_hand]), [['WH1', 6], ['WH2', 7]]);
  const moved = await movementsAfter(db, mark);
  t.deepEqual(moved.map((m) => [m.kind, m.idempotency_key]), [['TRANSFER_OUT', 'tr-1'], ['TRANSFER_IN', 'tr-1']]);

  await db.query(`select inventory.adjust('A', 'WH2', 1, 'found one')`);
  const afterAdjust = await lastMovementId(db);
  const retry = await transfer(db, ['A', 'WH1', 'WH2', 4, 'rebalance', 'tr-1']);
  t.deepEqual(retry, [
    { warehouse: 'WH1', on_hand: 6, reserved: 0, version: first[0]!.version },
    { warehouse: 'WH2', on_hand: 8, reserved: 0, version: first[1]!.version + 1 },
  ]);
  t.is(await lastMovementId(db), afterAdjust, 'no new movements');
  t.deepEqual((await db.query('select idempotency_key, operation from inventory.operation_keys')).rows,
    [{ idempotency_key: 'tr-1', operation: 'transfer' }]);
});

test('the retry keeps source-then-destination order whichever warehouse id is smaller', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 10 } });
  await transfer(db, ['A', 'WH1', 'WH2', 1, 'there', 'k-there']);
  await transfer(db, ['A', 'WH2', 'WH1', 2, 'back', 'k-back']);
  t.deepEqual((await transfer(db, ['A', 'WH1', 'WH2', 1, 'there', 'k-there'])).map((r) => r.warehouse), ['WH1', 'WH2']);
  t.deepEqual((await transfer(db, ['A', 'WH2', 'WH1', 2, 'back', 'k-back'])).map((r) => r.warehouse), ['WH2', 'WH1']);
});

test('the same idempotency key with another payload is IV006, also when first used by adjust', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 10, WH3: 0 }, B: { WH1: 10 } });
  await transfer(db, ['A', 'WH1', 'WH2', 4, 'rebalance', 'tr-1']);
  await db.query(`select inventory.adjust('A', 'WH1', 1, 'receipt', 'adj-1')`);
  const before = await snapshotOfWrites(db);
  const payloads = [
    ['A', 'WH1', 'WH2', 5, 'rebalance'],
    ['A', 'WH1', 'WH2', 4, 'other reason'],
    ['A', 'WH2', 'WH1', 4, 'rebalance'],
    ['A', 'WH1', 'WH3', 4, 'rebalance'],
    ['B', 'WH1', 'WH2', 4, 'rebalance'],
  ];
  for (const payload of payloads) {
    const error = await rejectsWithCode(t, db.query(transferCall, [...payload, 'tr-1']), 'IV006');
    t.like(JSON.parse(error.detail!), { idempotency_key: 'tr-1', operation: 'transfer' });
  }
  const error = await rejectsWithCode(t, db.query(transferCall, ['A', 'WH1', 'WH2', 1, 'receipt', 'adj-1']), 'IV006');
  t.like(JSON.parse(error.detail!), { idempotency_key: 'adj-1', operation: 'adjust' });
  t.deepEqual(await snapshotOfWrites(db), before);
});
