import anyTest, { type TestFn } from 'ava';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

async function setKit(db: Queryable, sku: string, components: Array<{ sku: string; qty: number }>, threshold = 0): Promise<void> {
  await db.query('select inventory.upsert_product($1)', [sku]);
  await db.query('select inventory.set_kit($1, $2::jsonb, $3)', [sku, JSON.stringify(components), threshold]);
}

async function kitStock(db: Queryable, sku: string): Promise<Record<string, { on_hand: number; available: number; status: string | null }>> {
  const { rows } = await db.query('select * from inventory.kit_stock(array[$1])', [sku]);
  return Object.fromEntries(rows.map((r) => [r.warehouse ?? 'total', { on_hand: r.on_hand, available: r.available, status: r.status }]));
}

const reserve = (db: Queryable, ref: string, lines: unknown) =>
  queryOne(db, 'select * from inventory.reserve($1, $2::jsonb)', [ref, JSON.stringify(lines)]);

test('a kit sells the minimum over its components of floor(available / qty), per warehouse and in total', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { LENS: { WH1: 7, WH2: 1 }, CAP: { WH1: 9, WH2: 4 } });
  await setKit(db, 'CAMERA-KIT', [{ sku: 'LENS', qty: 1 }, { sku: 'CAP', qty: 2 }], 3);
  t.deepEqual(await kitStock(db, 'CAMERA-KIT'), {
    // total: LENS 8, CAP 13 → min(8, 6) = 6; per warehouse WH1 min(7, 4) = 4, WH2 min(1, 2) = 1
    total: { on_hand: 6, available: 6, status: 'in_stock' },
    WH1: { on_hand: 4, available: 4, status: null },
    WH2: { on_hand: 1, available: 1, status: null },
  });
  const { rows } = await db.query('select warehouse, on_hand, reserved, safety_stock, available from inventory.stock(array[$1])', ['CAMERA-KIT']);
  t.deepEqual(rows, [
    { warehouse: 'WH1', on_hand: 4, reserved: null, safety_stock: null, available: 4 },
    { warehouse: 'WH2', on_hand: 1, reserved: null, safety_stock: null, available: 1 },
  ]);
  await db.query(`select inventory.set_policy('LENS', 'WH1', safety_stock => 5)`);
  t.deepEqual((await kitStock(db, 'CAMERA-KIT')).total, { on_hand: 6, available: 3, status: 'low_stock' });
});

test('reserving a kit holds its components atomically, and a component shared with another line is summed', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { LENS: { WH1: 3 }, CAP: { WH1: 10 } });
  await setKit(db, 'KIT', [{ sku: 'LENS', qty: 1 }, { sku: 'CAP', qty: 2 }]);
  const held = await reserve(db, 'o1', [{ sku: 'KIT', warehouse: 'WH1', qty: 2 }, { sku: 'LENS', warehouse: 'WH1', qty: 1 }]);
  t.is(held.status, 'HELD');
  t.is((await stockOf(db, 'LENS', 'WH1'))!.reserved, 3);
  t.is((await stockOf(db, 'CAP', 'WH1'))!.reserved, 4);
  const { rows: kits } = await db.query('select qty, warehouse_id is not null as named from inventory.reservation_kits where reservation_id = $1', [held.id]);
  t.deepEqual(kits, [{ qty: 2, named: true }]);
  // The kit line and the LENS line both need LENS: 1 kit (1 LENS) + 1 LENS = 2, but only 0 are left.
  const error = await rejectsWithCode(t, reserve(db, 'o2', [{ sku: 'KIT', warehouse: 'WH1', qty: 1 }]), 'IV001');
  t.regex(error.message, /LENS at WH1 requested 1, available 0/);
  t.is((await stockOf(db, 'CAP', 'WH1'))!.reserved, 4, 'nothing of the refused kit was held');
  await db.query('select inventory.release($1)', [held.id]);
  t.is((await stockOf(db, 'LENS', 'WH1'))!.reserved, 0);
  t.is((await stockOf(db, 'CAP', 'WH1'))!.reserved, 0);
  const confirmed = await reserve(db, 'o3', [{ sku: 'KIT', qty: 1 }]);
  await db.query('select inventory.confirm($1)', [confirmed.id]);
  t.deepEqual([(await stockOf(db, 'LENS', 'WH1'))!.on_hand, (await stockOf(db, 'CAP', 'WH1'))!.on_hand], [2, 8]);
});

test('kits in reserve_many are expanded like in reserve', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { LENS: { WH1: 3 }, CAP: { WH1: 10 } });
  await setKit(db, 'KIT', [{ sku: 'LENS', qty: 1 }, { sku: 'CAP', qty: 2 }]);
  const { rows } = await db.query(`select request, sqlstate, (reservation).status from inventory.reserve_many($1::jsonb) order by request`, [JSON.stringify([
    { order_ref: 'a', lines: [{ sku: 'KIT', warehouse: 'WH1', qty: 2 }] },
    { order_ref: 'b', lines: [{ sku: 'KIT', warehouse: 'WH1', qty: 2 }] },
    { order_ref: 'c', lines: [{ sku: 'KIT', qty: 1 }] },
  ])]);
  t.deepEqual(rows.map((r) => r.sqlstate ?? r.status), ['HELD', 'IV001', 'HELD']);
  t.is((await stockOf(db, 'LENS', 'WH1'))!.reserved, 3);
  t.is((await stockOf(db, 'CAP', 'WH1'))!.reserved, 6);
});

test('set_kit refuses nesting, self-reference, duplicates, unknown components and a product with stock; a kit has no stock of its own', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { LENS: { WH1: 3 }, CAP: { WH1: 10 }, BAG: { WH1: 1 } });
  await setKit(db, 'KIT', [{ sku: 'LENS', qty: 1 }]);
  await db.query('select inventory.upsert_product($1)', ['OUTER']);
  t.regex((await rejectsWithCode(t, db.query(`select inventory.set_kit('OUTER', '[{"sku":"KIT","qty":1}]')`), 'IV005')).message, /kits cannot be nested/);
  t.regex((await rejectsWithCode(t, db.query(`select inventory.set_kit('LENS', '[{"sku":"CAP","qty":1}]')`), 'IV005')).message, /holds stock of its own|component of kit/);
  t.regex((await rejectsWithCode(t, db.query(`select inventory.set_kit('OUTER', '[{"sku":"OUTER","qty":1}]')`), 'IV005')).message, /component of itself/);
  t.regex((await rejectsWithCode(t, db.query(`select inventory.set_kit('OUTER', '[{"sku":"CAP","qty":1},{"sku":"CAP","qty":2}]')`), 'IV005')).message, /more than once/);
  t.regex((await rejectsWithCode(t, db.query(`select inventory.set_kit('OUTER', '[{"sku":"CAP","qty":0}]')`), 'IV005')).message, /"qty" must be an integer/);
  await rejectsWithCode(t, db.query(`select inventory.set_kit('OUTER', '[{"sku":"NOPE","qty":1}]')`), 'IV004');
  t.regex((await rejectsWithCode(t, db.query(`select inventory.set_kit('BAG', '[{"sku":"CAP","qty":1}]')`), 'IV005')).message, /holds stock of its own/);
  t.regex((await rejectsWithCode(t, db.query(`select inventory.adjust('KIT', 'WH1', 5, 'receipt')`), 'IV005')).message, /is a kit/);
  await rejectsWithCode(t, db.query(`select inventory.transfer('KIT', 'WH1', 'WH1', 1, 'x')`), 'IV005');
  t.false((await queryOne(db, `select is_kit from inventory.products where sku = 'OUTER'`)).is_kit, 'nothing was written by the refusals');
});

test('a component cannot be removed while a HELD reservation holds the kit; quantities can change', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { LENS: { WH1: 3 }, CAP: { WH1: 10 } });
  await setKit(db, 'KIT', [{ sku: 'LENS', qty: 1 }, { sku: 'CAP', qty: 2 }]);
  const held = await reserve(db, 'o1', [{ sku: 'KIT', warehouse: 'WH1', qty: 1 }]);
  const error = await rejectsWithCode(t, db.query(`select inventory.set_kit('KIT', '[{"sku":"LENS","qty":1}]')`), 'IV003');
  t.regex(error.message, /cannot remove component\(s\) CAP of kit 'KIT': 1 HELD reservation/);
  await db.query(`select inventory.set_kit('KIT', '[{"sku":"LENS","qty":1},{"sku":"CAP","qty":3}]')`);
  await db.query('select inventory.release($1)', [held.id]);
  t.is((await stockOf(db, 'CAP', 'WH1'))!.reserved, 0, 'the release gave back what was held (2), not the new qty');
  await db.query(`select inventory.set_kit('KIT', '[{"sku":"LENS","qty":1}]')`);
  t.deepEqual((await kitStock(db, 'KIT')).total, { on_hand: 3, available: 3, status: 'in_stock' });
});

test('64 concurrent kit and component reserves never oversell a component', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { LENS: { WH1: 20, WH2: 5 }, CAP: { WH1: 30, WH2: 10 }, STRAP: { WH1: 12 } });
  await setKit(db, 'KIT-A', [{ sku: 'LENS', qty: 1 }, { sku: 'CAP', qty: 2 }]);
  await setKit(db, 'KIT-B', [{ sku: 'CAP', qty: 1 }, { sku: 'STRAP', qty: 1 }]);
  const attempts = Array.from({ length: 64 }, (_, i) => {
    const lines = [
      [{ sku: 'KIT-A', qty: 1 + (i % 3) }],
      [{ sku: 'KIT-B', warehouse: 'WH1', qty: 1 }, { sku: 'CAP', warehouse: 'WH1', qty: 1 }],
      [{ sku: 'KIT-A', warehouse: 'WH1', qty: 1 }, { sku: 'KIT-B', qty: 1 }],
      [{ sku: 'LENS', qty: 2 }],
    ][i % 4];
    return reserve(db, `o${i}`, lines).then(() => 'held', (e: { code?: string }) => {
      if (e.code !== 'IV001' && e.code !== '40P01') throw e;
      return e.code;
    });
  });
  const outcomes = await Promise.all(attempts);
  t.false(outcomes.includes('40P01'), 'no deadlock');
  t.true(outcomes.includes('held') && outcomes.includes('IV001'), `contended: ${outcomes.join(',')}`);
  const { rows } = await db.query(`select count(*)::int as n from inventory.stock_levels where reserved > on_hand or on_hand < 0`);
  t.is(rows[0]!.n, 0);
  // What the kits held is exactly their components × qty (the ledger invariants check the rest).
  const { rows: mismatch } = await db.query(`
    with asked as (
      select k.reservation_id, c.component_id, sum(k.qty * c.qty) as qty
      from inventory.reservation_kits k join inventory.kit_components c on c.kit_id = k.kit_id group by 1, 2)
    select a.* from asked a
    where a.qty > (select coalesce(sum(l.qty), 0) from inventory.reservation_lines l
                   where l.reservation_id = a.reservation_id and l.product_id = a.component_id)`);
  t.deepEqual(mismatch, []);
});
