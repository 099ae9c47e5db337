// inventory.movements is append-only: UPDATE, DELETE and TRUNCATE are refused
// (SQLSTATE 42501) for everyone, the table's owner included.
import anyTest, { type TestFn } from 'ava';
import { randomBytes } from 'node:crypto';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

async function ledger(db: Queryable): Promise<unknown[]> {
  return (await db.query('select * from inventory.movements order by id')).rows;
}

async function withMovements(db: Queryable): Promise<unknown[]> {
  await setupCatalog(db, { A: { WH1: 10, WH2: 5 } });
  await db.query(`select inventory.reserve('o-1', '[{"sku":"A","warehouse":"WH1","qty":2}]')`);
  await db.query(`select inventory.adjust('A', 'WH2', -1, 'damaged')`);
  const rows = await ledger(db);
  if (rows.length !== 4) throw new Error(`expected 4 movements, got ${rows.length}`);
  return rows;
}

const APPEND_ONLY = /inventory\.movements is an append-only ledger/;

test('the tests connect as the owner of inventory.movements, a superuser', async (t) => {
  const { db } = t.context;
  t.deepEqual(await queryOne(db,
    `select r.rolname = current_user as owner, r.rolsuper as superuser
     from pg_catalog.pg_class c join pg_catalog.pg_roles r on r.oid = c.relowner
     where c.oid = 'inventory.movements'::regclass`), { owner: true, superuser: true });
});

test('UPDATE of a movement fails with 42501 and leaves the ledger intact', async (t) => {
  const { db } = t.context;
  const before = await withMovements(db);
  const error = await rejectsWithCode(t, db.query(`update inventory.movements set on_hand_delta = 0, reason = 'rewritten'`), '42501');
  t.regex(error.message, APPEND_ONLY);
  t.regex(error.message, /UPDATE/);
  t.regex(error.hint ?? '', /adjust/);
  await rejectsWithCode(t, db.query(`update inventory.movements set reason = 'rewritten' where id = (select max(id) from inventory.movements)`), '42501');
  t.deepEqual(await ledger(db), before);
});

test('DELETE of a movement fails with 42501 and leaves the ledger intact', async (t) => {
  const { db } = t.context;
  const before = await withMovements(db);
  const error = await rejectsWithCode(t, db.query(`delete from inventory.movements where kind = 'ADJUST'`), '42501');
  t.regex(error.message, APPEND_ONLY);
  t.regex(error.message, /DELETE/);
  await rejectsWithCode(t, db.query('delete from inventory.movements'), '42501');
  t.deepEqual(await ledger(db), before);
});

test('TRUNCATE fails with 42501 and leaves the ledger intact', async (t) => {
  const { db } = t.context;
  const before = await withMovements(db);
  const error = await rejectsWithCode(t, db.query('truncate inventory.movements'), '42501');
  t.regex(error.message, APPEND_ONLY);
  t.regex(error.message, /TRUNCATE/);
  await rejectsWithCode(t, db.query('truncate inventory.movements restart identity'), '42501');
  await rejectsWithCode(t, db.query('truncate inventory.movements, inventory.operation_keys'), '42501');
  t.deepEqual(await ledger(db), before);
});

// The ledger refers to stock rows and reservations without FOREIGN KEY
// constraints; what stands in for them is that those rows are never deleted.
test('stock rows, reservations and their lines that the ledger points at cannot be deleted or truncated', async (t) => {
  const { db } = t.context;
  const before = await withMovements(db);
  const tables = ['stock_levels', 'reservations', 'reservation_lines'];
  const counts = async () => (await queryOne(db, `select ${tables.map((n) => `(select count(*)::int from inventory.${n}) as ${n}`).join(', ')}`));
  const rowsBefore = await counts();
  t.deepEqual(rowsBefore, { stock_levels: 2, reservations: 1, reservation_lines: 1 });
  for (const table of tables) {
    const error = await rejectsWithCode(t, db.query(`delete from inventory.${table}`), '42501');
    t.regex(error.message, new RegExp(`${table} rows are never deleted`));
    t.truthy(error.hint);
    await rejectsWithCode(t, db.query(`truncate inventory.${table}`), '42501');
  }
  // Nor through a cascade from the tables stock rows reference.
  await rejectsWithCode(t, db.query('truncate inventory.products, inventory.warehouses cascade'), '42501');
  t.deepEqual(await counts(), rowsBefore);
  t.deepEqual(await ledger(db), before);
});

test('an owner that is not a superuser cannot rewrite the ledger either', async (t) => {
  const { db } = t.context;
  const before = await withMovements(db);
  const owner = `t_ledger_owner_${randomBytes(4).toString('hex')}`;
  const client = await db.pool.connect();
  try {
    // All in one transaction, rolled back at the end: the role and the ownership change go with it.
    await client.query('begin');
    await client.query(`create role ${owner} nologin`);
    await client.query(`grant usage on schema inventory to ${owner}`);
    await client.query(`alter table inventory.movements owner to ${owner}`);
    await client.query(`set local role ${owner}`);
    for (const statement of [
      `update inventory.movements set reason = 'rewritten'`,
      'delete from inventory.movements',
      'truncate inventory.movements',
    ]) {
      await client.query('savepoint attempt');
      const error = await rejectsWithCode(t, client.query(statement), '42501');
      t.regex(error.message, APPEND_ONLY, statement);
      await client.query('rollback to savepoint attempt');
    }
    t.deepEqual(await ledger(client), before);
  } finally {
    await client.query('rollback');
    client.release();
  }
  t.deepEqual(await ledger(db), before);
});

test('corrections append: a new movement is written, earlier ones are untouched', async (t) => {
  const { db } = t.context;
  const before = await withMovements(db);
  await db.query(`select inventory.adjust('A', 'WH2', 1, 'undo damaged')`);
  const after = await ledger(db);
  t.deepEqual(after.slice(0, before.length), before);
  t.is(after.length, before.length + 1);
});
