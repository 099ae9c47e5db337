// Catalog functions: upsert_product(sku, name), upsert_warehouse(code, name,
// region, priority) and set_policy(sku, warehouse, safety_stock, low_stock_threshold).
import anyTest, { type TestFn } from 'ava';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { movedAt, queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function count(db: Queryable, table: string): Promise<number> {
  return (await queryOne<{ n: number }>(db, `select count(*)::int as n from inventory.${table}`)).n;
}

async function stockRow(db: Queryable, sku: string, warehouse: string): Promise<Record<string, any> | undefined> {
  const { rows } = await db.query(
    `select s.* from inventory.stock_levels s
     join inventory.products p on p.id = s.product_id join inventory.warehouses w on w.id = s.warehouse_id
     where p.sku = $1 and w.code = $2`, [sku, warehouse]);
  return rows[0];
}

// upsert_product

test('upsert_product creates a product and returns its products row', async (t) => {
  const { db } = t.context;
  const product = await queryOne(db, `select * from inventory.upsert_product('A-1', 'Widget')`);
  t.deepEqual(Object.keys(product), ['id', 'sku', 'name', 'created_at', 'updated_at', 'is_kit']);
  t.regex(product.id, UUID);
  t.like(product, { sku: 'A-1', name: 'Widget' });
  t.deepEqual(await queryOne(db, `select * from inventory.products`), product);

  const unnamed = await queryOne(db, `select * from inventory.upsert_product('B-1')`);
  t.like(unnamed, { sku: 'B-1', name: null });
});

test('upsert_product renames an existing product, keeping its id', async (t) => {
  const { db } = t.context;
  const first = await queryOne(db, `select * from inventory.upsert_product('A-1', 'Widget')`);
  const renamed = await queryOne(db, `select * from inventory.upsert_product('A-1', 'Widget Pro')`);
  t.is(renamed.id, first.id);
  t.is(renamed.name, 'Widget Pro');
  t.deepEqual(renamed.created_at, first.created_at);
  t.true(renamed.updated_at > first.updated_at);
  t.is(await count(db, 'products'), 1);
});

test('upsert_product with a null or the same name keeps the product as it is', async (t) => {
  const { db } = t.context;
  const first = await queryOne(db, `select * from inventory.upsert_product('A-1', 'Widget')`);
  t.deepEqual(await queryOne(db, `select * from inventory.upsert_product('A-1', null)`), first);
  t.deepEqual(await queryOne(db, `select * from inventory.upsert_product('A-1')`), first);
  t.deepEqual(await queryOne(db, `select * from inventory.upsert_product('A-1', 'Widget')`), first);
});

test('upsert_product refuses a blank, null, padded or too long sku with IV005', async (t) => {
  const { db } = t.context;
  for (const sku of [null, '', '   ', ' A', 'A ', 'x'.repeat(129)]) {
    const error = await rejectsWithCode(t, db.query('select inventory.upsert_product($1, $2)', [sku, 'name']), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), sku?.length === 129 ? { argument: 'sku', max_length: 128 } : { argument: 'sku' },
      `sku ${JSON.stringify(sku)}`);
  }
  t.is(await count(db, 'products'), 0);
  t.like(await queryOne(db, 'select * from inventory.upsert_product($1)', ['x'.repeat(128)]), { sku: 'x'.repeat(128) });
  t.like(await queryOne(db, 'select * from inventory.upsert_product($1)', ['with inner space']), { sku: 'with inner space' });
});

// upsert_warehouse

test('upsert_warehouse creates a warehouse; priority is 100 when left out', async (t) => {
  const { db } = t.context;
  const wh1 = await queryOne(db, `select * from inventory.upsert_warehouse('WH1', 'Main', 'eu-west', 5)`);
  t.regex(wh1.id, UUID);
  t.like(wh1, { code: 'WH1', name: 'Main', region: 'eu-west', priority: 5 });
  t.deepEqual(await queryOne(db, `select * from inventory.warehouses where code = 'WH1'`), wh1);
  t.like(await queryOne(db, `select * from inventory.upsert_warehouse('WH2')`), { code: 'WH2', name: null, region: null, priority: 100 });
});

test('upsert_warehouse updates: a null name or region keeps the value, priority always takes the one given', async (t) => {
  const { db } = t.context;
  const first = await queryOne(db, `select * from inventory.upsert_warehouse('WH1', 'Main', 'eu-west', 5)`);

  const renamed = await queryOne(db, `select * from inventory.upsert_warehouse('WH1', 'Main DC', null, 5)`);
  t.like(renamed, { id: first.id, name: 'Main DC', region: 'eu-west', priority: 5 });
  t.true(renamed.updated_at > first.updated_at);

  t.like(await queryOne(db, `select * from inventory.upsert_warehouse('WH1', null, 'us-east', 7)`),
    { id: first.id, name: 'Main DC', region: 'us-east', priority: 7 });
  t.like(await queryOne(db, `select * from inventory.upsert_warehouse('WH1', null, null)`),
    { id: first.id, name: 'Main DC', region: 'us-east', priority: 100 }, 'priority left out means 100');

  const same = await queryOne(db, `select * from inventory.warehouses where code = 'WH1'`);
  t.deepEqual(await queryOne(db, `select * from inventory.upsert_warehouse('WH1', null, null, 100)`), same, 'no change, no update');
  t.is(await count(db, 'warehouses'), 1);
});

test('upsert_warehouse refuses a null priority and a blank, padded or too long code with IV005', async (t) => {
  const { db } = t.context;
  await db.query(`select inventory.upsert_warehouse('WH1', 'Main', 'eu-west', 5)`);
  const before = await db.query('select * from inventory.warehouses');

  const priority = await rejectsWithCode(t, db.query(`select inventory.upsert_warehouse('WH1', 'Main', 'eu-west', null)`), 'IV005');
  t.deepEqual(JSON.parse(priority.detail!), { argument: 'priority' });
  await rejectsWithCode(t, db.query(`select inventory.upsert_warehouse('WH2', null, null, null)`), 'IV005');

  for (const code of [null, '', ' ', ' WH3', 'WH3 ', 'w'.repeat(65)]) {
    const error = await rejectsWithCode(t, db.query('select inventory.upsert_warehouse($1)', [code]), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), code?.length === 65 ? { argument: 'code', max_length: 64 } : { argument: 'code' },
      `code ${JSON.stringify(code)}`);
  }
  t.deepEqual((await db.query('select * from inventory.warehouses')).rows, before.rows);
  t.like(await queryOne(db, 'select * from inventory.upsert_warehouse($1)', ['w'.repeat(64)]), { code: 'w'.repeat(64) });
});

// set_policy

test('set_policy sets safety_stock and low_stock_threshold, bumps version and writes no movement', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const before = await stockRow(db, 'A', 'WH1');
  const beforeAt = await movedAt(db, 'A', 'WH1');
  const movements = await count(db, 'movements');

  const row = await queryOne(db, `select * from inventory.set_policy('A', 'WH1', 4, 6)`);
  t.like(row, { on_hand: 10, reserved: 0, safety_stock: 4, low_stock_threshold: 6, version: String(Number(before!.version) + 1) });
  t.true(await movedAt(db, 'A', 'WH1') > beforeAt, 'the incremental sync sees the change');
  t.deepEqual(await stockRow(db, 'A', 'WH1'), row);
  t.like(await stockOf(db, 'A', 'WH1'), { available: 6 });
  t.is(await count(db, 'movements'), movements);
});

test('set_policy leaves a null value as it is', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  await db.query(`select inventory.set_policy('A', 'WH1', 4, 6)`);
  t.like(await queryOne(db, `select * from inventory.set_policy('A', 'WH1', 2)`), { safety_stock: 2, low_stock_threshold: 6 });
  t.like(await queryOne(db, `select * from inventory.set_policy('A', 'WH1', null, 3)`), { safety_stock: 2, low_stock_threshold: 3 });
  t.like(await queryOne(db, `select * from inventory.set_policy('A', 'WH1', 0, 0)`), { safety_stock: 0, low_stock_threshold: 0 });

  const unchanged = await stockRow(db, 'A', 'WH1');
  t.deepEqual(await queryOne(db, `select * from inventory.set_policy('A', 'WH1')`), unchanged, 'both null: nothing changes');
  t.deepEqual(await stockRow(db, 'A', 'WH1'), unchanged);
});

test('set_policy refuses a negative value with IV005 and changes nothing', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const before = await stockRow(db, 'A', 'WH1');
  const safety = await rejectsWithCode(t, db.query(`select inventory.set_policy('A', 'WH1', -1, 5)`), 'IV005');
  t.deepEqual(JSON.parse(safety.detail!), { argument: 'safety_stock' });
  const threshold = await rejectsWithCode(t, db.query(`select inventory.set_policy('A', 'WH1', 5, -1)`), 'IV005');
  t.deepEqual(JSON.parse(threshold.detail!), { argument: 'low_stock_threshold' });
  t.deepEqual(await stockRow(db, 'A', 'WH1'), before);
});

test('set_policy creates a missing, empty stock row without a movement', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 0 } });
  const row = await queryOne(db, `select * from inventory.set_policy('A', 'WH1', 3, 2)`);
  t.like(row, { on_hand: 0, reserved: 0, safety_stock: 3, low_stock_threshold: 2 });
  t.deepEqual(await stockRow(db, 'A', 'WH1'), row);
  t.is(await count(db, 'movements'), 0);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 0, available: 0 });
});

test('set_policy on an unknown sku or warehouse is IV004', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  t.deepEqual(JSON.parse((await rejectsWithCode(t, db.query(`select inventory.set_policy('NOPE', 'WH1', 1)`), 'IV004')).detail!),
    { sku: 'NOPE' });
  t.deepEqual(JSON.parse((await rejectsWithCode(t, db.query(`select inventory.set_policy('A', 'WH9', 1)`), 'IV004')).detail!),
    { warehouse: 'WH9' });
  t.is(await count(db, 'stock_levels'), 1);
});
