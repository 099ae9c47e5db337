import anyTest, { type TestFn } from 'ava';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

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
