// inventory.reservation_holds(id): what a reservation holds, by sku and
// warehouse code (a DBA reads names, not uuids).
import anyTest, { type TestFn } from 'ava';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import { queryOne, rejectsWithCode, setupCatalog } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

test('one row per line, by sku then warehouse code, with the reservation\'s order, status and expiry', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2, WH2: 5 }, B: { WH1: 3 } });
  // 4 of A: WH1 (lower priority number) has 2, the rest comes from WH2.
  const { id } = await queryOne<{ id: string }>(db, `select id from inventory.reserve('order-9', '[{"sku": "B", "warehouse": "WH1", "qty": 1}, {"sku": "A", "qty": 4}]')`);
  const { rows } = await db.query('select * from inventory.reservation_holds($1)', [id]);
  t.deepEqual(rows.map((r) => [r.order_ref, r.status, r.sku, r.warehouse, r.qty]), [
    ['order-9', 'HELD', 'A', 'WH1', 2], ['order-9', 'HELD', 'A', 'WH2', 2], ['order-9', 'HELD', 'B', 'WH1', 1],
  ]);
  t.true(rows.every((r) => r.expires_at instanceof Date));
  await db.query('select inventory.confirm($1)', [id]);
  t.true((await db.query('select status from inventory.reservation_holds($1)', [id])).rows.every((r) => r.status === 'CONFIRMED'));
});

test('an unknown reservation is IV004, a null one IV005', async (t) => {
  const { db } = t.context;
  const unknown = await rejectsWithCode(t, db.query(`select * from inventory.reservation_holds('00000000-0000-4000-8000-000000000000')`), 'IV004');
  t.regex(unknown.message, /unknown reservation 00000000-0000-4000-8000-000000000000/);
  await rejectsWithCode(t, db.query('select * from inventory.reservation_holds(null)'), 'IV005');
});
