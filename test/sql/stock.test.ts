// inventory.stock(skus): bulk read of stock rows, one per sku and warehouse.
import anyTest, { type TestFn } from 'ava';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

interface StockRow {
  sku: string; warehouse: string; on_hand: number; reserved: number; safety_stock: number;
  available: number; version: string; last_movement_at: Date;
}

async function stock(db: Queryable, skus: unknown): Promise<StockRow[]> {
  return (await db.query<StockRow>('select * from inventory.stock($1)', [skus])).rows;
}

/** (sku, warehouse, on_hand, reserved, safety_stock, available) per row, in the order returned. */
async function stockTable(db: Queryable, skus: unknown): Promise<Array<[string, string, number, number, number, number]>> {
  return (await stock(db, skus)).map((r) => [r.sku, r.warehouse, r.on_hand, r.reserved, r.safety_stock, r.available]);
}

test('returns every stock row of the skus with all columns, ordered by sku then warehouse code', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { B: { WH2: 2, WH1: 1 }, A: { WH3: 3, WH1: 4 }, C: { WH1: 9 } });
  const rows = await stock(db, ['B', 'A']);
  t.deepEqual(rows.map((r) => [r.sku, r.warehouse, r.on_hand]), [['A', 'WH1', 4], ['A', 'WH3', 3], ['B', 'WH1', 1], ['B', 'WH2', 2]]);
  t.deepEqual(Object.keys(rows[0]!), ['sku', 'warehouse', 'on_hand', 'reserved', 'safety_stock', 'available', 'version', 'last_movement_at', 'unavailable']);

  const stored = await queryOne(db,
    `select s.version::text as version, s.last_movement_at from inventory.stock_levels s
     join inventory.products p on p.id = s.product_id join inventory.warehouses w on w.id = s.warehouse_id
     where p.sku = 'A' and w.code = 'WH3'`);
  t.deepEqual(rows[1], {
    sku: 'A', warehouse: 'WH3', on_hand: 3, reserved: 0, safety_stock: 0, available: 3,
    version: stored.version, last_movement_at: stored.last_movement_at, unavailable: 0,
  });
});

test('available is on_hand - reserved - safety_stock, and zero when safety_stock exceeds what is left', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 10, WH3: 10 } });
  await db.query(`select inventory.reserve('o-1', '[{"sku":"A","warehouse":"WH1","qty":3},{"sku":"A","warehouse":"WH2","qty":3},{"sku":"A","warehouse":"WH3","qty":3}]')`);
  await db.query(`select inventory.set_policy('A', 'WH2', 5)`); // 10 - 3 - 5 = 2
  await db.query(`select inventory.set_policy('A', 'WH3', 8)`); // 10 - 3 - 8 < 0
  t.deepEqual(await stockTable(db, ['A']), [
    ['A', 'WH1', 10, 3, 0, 7],
    ['A', 'WH2', 10, 3, 5, 2],
    ['A', 'WH3', 10, 3, 8, 0],
  ]);
});

test('unknown skus, skus without stock rows and null elements are simply absent', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 1 }, EMPTY: { WH1: 0 } });
  t.deepEqual(await stockTable(db, ['NOPE', 'A', null, 'EMPTY', 'ALSO-NOPE']), [['A', 'WH1', 1, 0, 0, 1]]);
  t.deepEqual(await stock(db, ['NOPE']), []);
  t.deepEqual(await stock(db, []), []);
});

test('duplicate skus in the input give one set of rows', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 1, WH2: 2 }, B: { WH1: 3 } });
  t.deepEqual(await stockTable(db, ['B', 'A', 'B', 'A', 'A']), [
    ['A', 'WH1', 1, 0, 0, 1],
    ['A', 'WH2', 2, 0, 0, 2],
    ['B', 'WH1', 3, 0, 0, 3],
  ]);
});

test('a null array is IV005', async (t) => {
  const { db } = t.context;
  const error = await rejectsWithCode(t, db.query('select * from inventory.stock(null)'), 'IV005');
  t.deepEqual(JSON.parse(error.detail!), { argument: 'skus' });
});

test('reads 5,000 skus in one call', async (t) => {
  const { db } = t.context;
  const count = 5000;
  // Bulk load as the owner with plain SQL, ledger included so the invariants hold.
  await db.query(`
    with w as (insert into inventory.warehouses (code, priority) values ('BULK', 10) returning id),
    p as (insert into inventory.products (sku)
          select format('BULK-%s', lpad(i::text, 5, '0')) from generate_series(1, $1::int) i returning id, sku),
    s as (insert into inventory.stock_levels (product_id, warehouse_id, on_hand)
          select p.id, w.id, substr(p.sku, 6)::int from p cross join w returning product_id, warehouse_id, on_hand)
    insert into inventory.movements (product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after, reason, actor)
    select product_id, warehouse_id, 'RECEIVE', on_hand, 0, on_hand, 0, 'bulk load', 'test' from s`, [count]);

  const skus = Array.from({ length: count }, (_, i) => `BULK-${String(count - i).padStart(5, '0')}`); // reversed
  const rows = await stock(db, [...skus, 'NOPE-1', 'NOPE-2']);
  t.is(rows.length, count);
  t.deepEqual(rows.map((r) => r.sku), [...skus].reverse());
  t.true(rows.every((r) => r.warehouse === 'BULK' && r.on_hand === Number(r.sku.slice(5)) && r.available === r.on_hand));
});
