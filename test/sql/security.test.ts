// Roles, grants and search_path: stockroom_reader reads, stockroom_writer also
// changes stock and reservations, stockroom_admin also runs maintenance; PUBLIC
// executes nothing; SECURITY DEFINER functions pin search_path.
// Login roles are cluster-wide: each test makes its own with a random name and
// drops it when it ends.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

type Role = 'stockroom_public' | 'stockroom_reader' | 'stockroom_writer' | 'stockroom_admin';
const ROLES: Role[] = ['stockroom_public', 'stockroom_reader', 'stockroom_writer', 'stockroom_admin'];

const PUBLIC_FUNCTIONS = [
  'available_to_promise(text,text,timestamp with time zone)',
  'channel_stock(text[],text)',
  'channels()',
  'kit_stock(text[])',
  'recently_updated(timestamp with time zone,text,text,integer)',
  'stock(text[])',
  'stock_levels_available(stock_levels)',
];
const READER_FUNCTIONS = [
  ...PUBLIC_FUNCTIONS,
  'movement_history(text,text,text,timestamp with time zone,timestamp with time zone)',
  'reservation_holds(uuid)',
  'backorder_position(uuid)',
  'in_transit(text,text,text)',
  'inbound(text,text,boolean)',
  'stock_states(text[])',
].sort();
const WRITER_FUNCTIONS = [
  ...READER_FUNCTIONS,
  'adjust(text,text,integer,text,text)',
  'cancel_inbound(uuid,text)',
  'close_inbound(uuid,text,text,text)',
  'confirm(uuid)',
  'confirm_lines(uuid,jsonb,text)',
  'create_inbound(text,jsonb,text,text,timestamp with time zone)',
  'edit_reservation(uuid,jsonb,text)',
  'extend(uuid,interval)',
  'release(uuid,text)',
  'release_lines(uuid,jsonb,text,text)',
  'receive_inbound(uuid,jsonb,text,boolean,text)',
  'reserve(text,jsonb,interval,text)',
  'reserve_many(jsonb)',
  'set_backorder_policy(text,text,text,integer,timestamp with time zone)',
  'set_count(text,text,integer,text,integer)',
  'set_kit(text,jsonb,integer)',
  'set_policy(text,text,integer,integer)',
  'transfer(text,text,text,integer,text,text)',
  'ship_transfer(text,text,text,integer,text,text)',
  'receive_transfer(uuid,integer,text,text)',
  'write_off_transfer(uuid,text,integer,text)',
  'upsert_product(text,text)',
  'move_stock_state(text,text,integer,text,text,text,text)',
  'adjust_state(text,text,text,integer,text,text)',
];
const ADMIN_FUNCTIONS = [
  ...WRITER_FUNCTIONS,
  'define_quantity_state(text,text)',
  'end_preorders()',
  'expire_due(integer)',
  'set_channel_warehouses(text,jsonb)',
  'set_warehouse_region(text,text)',
  'upsert_channel(text,text,text,text)',
  'upsert_warehouse(text,text,text,integer)',
  'verify_counters(boolean)',
];

/** Creates a login role (optionally a member of a Stockroom role), dropped when the test ends; returns a client connected as it. */
async function connectAs(t: ExecutionContext<DatabaseContext>, member: Role | null): Promise<{ name: string; client: pg.Client }> {
  const { db } = t.context;
  const name = `t_${member ? member.replace('stockroom_', '') : 'nobody'}_${randomBytes(5).toString('hex')}`;
  await db.query(`create role ${name} login password 'x'${member ? ` in role ${member}` : ''}`);
  t.teardown(async () => {
    await db.query(`drop owned by ${name}`);
    await db.query(`drop role ${name}`);
  });
  const url = new URL(db.url);
  url.username = name;
  url.password = 'x';
  const client = new pg.Client({ connectionString: url.toString() });
  client.on('error', () => {});
  await client.connect();
  t.teardown(() => client.end()); // runs before the role is dropped (teardowns run last-in, first-out)
  return { name, client };
}

async function denied(t: ExecutionContext, db: Queryable, sql: string, values?: unknown[]): Promise<void> {
  const error = await rejectsWithCode(t, db.query(sql, values), '42501');
  t.regex(error.message, /permission denied/, sql);
}

test('the roles exist, cannot log in, and admin includes writer includes reader', async (t) => {
  const { db } = t.context;
  const { rows } = await db.query(
    'select rolname, rolcanlogin, rolsuper from pg_catalog.pg_roles where rolname = any($1) order by rolname', [ROLES]);
  t.deepEqual(rows, ROLES.slice().sort().map((rolname) => ({ rolname, rolcanlogin: false, rolsuper: false })));
  t.like(await queryOne(db, `
    select pg_has_role('stockroom_admin', 'stockroom_writer', 'usage') as admin_writer,
           pg_has_role('stockroom_writer', 'stockroom_reader', 'usage') as writer_reader,
           pg_has_role('stockroom_reader', 'stockroom_writer', 'member') as reader_writer,
           pg_has_role('stockroom_writer', 'stockroom_admin', 'member') as writer_admin`),
  { admin_writer: true, writer_reader: true, reader_writer: false, writer_admin: false });
});

test('each role may execute exactly its functions of the SQL API', async (t) => {
  const { db } = t.context;
  const expected: Record<Role, string[]> = {
    stockroom_public: PUBLIC_FUNCTIONS, stockroom_reader: READER_FUNCTIONS, stockroom_writer: WRITER_FUNCTIONS, stockroom_admin: ADMIN_FUNCTIONS,
  };
  for (const role of ROLES) {
    const { rows } = await db.query<{ fn: string }>(`
      select replace(replace(p.oid::regprocedure::text, 'inventory.', ''), ', ', ',') as fn
      from pg_catalog.pg_proc p
      where p.pronamespace = 'inventory'::regnamespace and has_function_privilege($1, p.oid, 'EXECUTE')
      order by 1`, [role]);
    t.deepEqual(rows.map((r) => r.fn).sort(), [...expected[role]].sort(), role);
  }
});

test('PUBLIC has no EXECUTE on any inventory function', async (t) => {
  const { db } = t.context;
  const { rows } = await db.query<{ fn: string; public_execute: boolean; acl: string | null }>(`
    select p.oid::regprocedure::text as fn, has_function_privilege('public', p.oid, 'EXECUTE') as public_execute,
           p.proacl::text as acl
    from pg_catalog.pg_proc p where p.pronamespace = 'inventory'::regnamespace order by 1`);
  t.true(rows.length >= 28, `only ${rows.length} functions found`);
  t.deepEqual(rows.filter((r) => r.public_execute).map((r) => r.fn), []);
  t.deepEqual(rows.filter((r) => r.acl === null).map((r) => r.fn), [], 'a null ACL would mean the default: EXECUTE for PUBLIC');
  const { rows: publicGrants } = await db.query(`
    select p.oid::regprocedure::text as fn from pg_catalog.pg_proc p, aclexplode(p.proacl) a
    where p.pronamespace = 'inventory'::regnamespace and a.grantee = 0 and a.privilege_type = 'EXECUTE'`);
  t.deepEqual(publicGrants, []);
});

test('a role without grants cannot execute inventory functions, even with USAGE on the schema', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const { name, client } = await connectAs(t, null);
  await denied(t, client, `select * from inventory.stock(array['A'])`); // no USAGE on the schema yet
  await db.query(`grant usage on schema inventory to ${name}`);
  for (const sql of [
    `select * from inventory.stock(array['A'])`,
    `select * from inventory.recently_updated(now() - interval '1 hour')`,
    `select inventory.adjust('A', 'WH1', 1, 'sneaky')`,
    `select inventory.reserve('o', '[{"sku":"A","qty":1}]')`,
    `select inventory.expire_due()`,
    `select * from inventory.stock_levels`,
  ]) {
    const error = await rejectsWithCode(t, client.query(sql), '42501');
    t.regex(error.message, /permission denied for (function|table)/, sql);
  }
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 10 });
});

test('every SECURITY DEFINER function in inventory pins search_path, with pg_temp last', async (t) => {
  const { db } = t.context;
  const { rows } = await db.query<{ proname: string; proconfig: string[] | null }>(`
    select p.proname, p.proconfig from pg_catalog.pg_proc p
    where p.pronamespace = 'inventory'::regnamespace and p.prosecdef order by p.proname`);
  // stock_levels_available (GraphQL's StockLevel.available) computes from the row it is given: it reads nothing, so it runs as the caller.
  const api = ADMIN_FUNCTIONS.map((f) => f.slice(0, f.indexOf('('))).filter((name) => name !== 'stock_levels_available').sort();
  t.deepEqual(api.filter((name) => !rows.some((r) => r.proname === name)), [], 'the whole SQL API runs as definer');
  for (const { proname, proconfig } of rows) {
    const setting = (proconfig ?? []).find((c) => c.startsWith('search_path='));
    t.truthy(setting, `${proname} has no search_path setting`);
    const path = (setting ?? '').slice('search_path='.length).split(',').map((s) => s.trim().replace(/^"|"$/g, ''));
    t.is(path[0], 'pg_catalog', `${proname}: ${setting}`);
    t.is(path.at(-1), 'pg_temp', `${proname}: ${setting}`);
    t.false(path.includes('public') || path.includes('$user'), `${proname}: ${setting}`);
  }
});

test('internal helpers inventory._* are executable by none of the roles', async (t) => {
  const { db } = t.context;
  const { rows } = await db.query<{ fn: string; role: string }>(`
    select p.oid::regprocedure::text as fn, r.role
    from pg_catalog.pg_proc p cross join unnest($1::text[]) r(role)
    where p.pronamespace = 'inventory'::regnamespace and p.proname like '\\_%' and has_function_privilege(r.role, p.oid, 'EXECUTE')`,
  [ROLES]);
  t.deepEqual(rows, []);
  const helpers = await queryOne(db, `select count(*)::int as n from pg_catalog.pg_proc
    where pronamespace = 'inventory'::regnamespace and proname like '\\_%'`);
  t.true(helpers.n >= 14);

  await setupCatalog(db, { A: { WH1: 10 } });
  const { client } = await connectAs(t, 'stockroom_admin');
  await denied(t, client, 'select inventory._actor()');
  await denied(t, client, `select inventory._raise('IV001', 'fake')`);
  await denied(t, client, `select inventory._product_id('A')`);
  await denied(t, client, `select inventory._settle(array[]::uuid[], 'CONFIRM', null)`);
});

test('a reader can read stock, recently_updated and every table, but change nothing', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const { client } = await connectAs(t, 'stockroom_reader');
  t.like((await client.query(`select * from inventory.stock(array['A'])`)).rows, [{ sku: 'A', warehouse: 'WH1', on_hand: 10 }]);
  t.like((await client.query(`select * from inventory.recently_updated(now() - interval '1 hour')`)).rows, [{ sku: 'A', on_hand: 10 }]);
  const { rows: tables } = await db.query<{ name: string }>(
    `select tablename as name from pg_catalog.pg_tables where schemaname = 'inventory' order by 1`);
  t.true(tables.length >= 7);
  for (const { name } of tables) await client.query(`select * from inventory.${name} limit 1`);

  const before = await stockOf(db, 'A', 'WH1');
  for (const sql of [
    `select inventory.reserve('o', '[{"sku":"A","warehouse":"WH1","qty":1}]')`,
    `select inventory.adjust('A', 'WH1', 1, 'reader')`,
    `select inventory.set_count('A', 'WH1', 1, 'reader')`,
    `select inventory.upsert_product('R')`,
    `update inventory.stock_levels set on_hand = 0`,
    `delete from inventory.products`,
  ]) await denied(t, client, sql);
  t.deepEqual(await stockOf(db, 'A', 'WH1'), before);
});

test('a writer can reserve, confirm, release, extend, adjust, transfer, set_count, upsert_product and set_policy', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 0 } });
  const mark = (await queryOne(db, 'select max(id)::int as id from inventory.movements')).id;
  const { name, client } = await connectAs(t, 'stockroom_writer');
  const one = async (sql: string, values?: unknown[]) => {
    const { rows } = await client.query(sql, values);
    if (rows.length !== 1) throw new Error(`expected one row from ${sql}`);
    return rows[0];
  };

  const confirmed = await one(`select * from inventory.reserve('w-1', '[{"sku":"A","warehouse":"WH1","qty":2}]')`);
  t.is((await one('select * from inventory.confirm($1)', [confirmed.id])).status, 'CONFIRMED');
  const released = await one(`select * from inventory.reserve('w-2', '[{"sku":"A","qty":1}]')`);
  t.is((await one('select * from inventory.release($1)', [released.id])).status, 'RELEASED');
  const held = await one(`select * from inventory.reserve('w-3', '[{"sku":"A","qty":1}]')`);
  const extended = await one(`select * from inventory.extend($1, interval '1 hour')`, [held.id]);
  t.true(extended.expires_at > held.expires_at);
  t.is((await one(`select * from inventory.adjust('A', 'WH1', 5, 'receipt')`)).on_hand, 13);
  t.deepEqual((await client.query(`select on_hand from inventory.transfer('A', 'WH1', 'WH2', 3, 'rebalance')`)).rows,
    [{ on_hand: 10 }, { on_hand: 3 }]);
  t.is((await one(`select * from inventory.set_count('A', 'WH2', 4, 'count')`)).on_hand, 4);
  t.is((await one(`select * from inventory.upsert_product('W', 'Written by a writer')`)).sku, 'W');
  t.is((await one(`select * from inventory.set_policy('A', 'WH1', 2, 3)`)).safety_stock, 2);

  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 10, reserved: 1, safety_stock: 2, available: 7 });
  const { rows: actors } = await db.query('select distinct actor from inventory.movements where id > $1', [mark]);
  t.deepEqual(actors, [{ actor: name }], 'movements record the login');
});

test('a writer can edit a reservation and confirm or release part of it', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const { name, client } = await connectAs(t, 'stockroom_writer');
  const { rows: [held] } = await client.query(`select * from inventory.reserve('w-1', '[{"sku":"A","warehouse":"WH1","qty":1}]')`);
  await client.query(`select inventory.edit_reservation($1, '[{"sku":"A","qty":3}]')`, [held.id]);
  await client.query(`select inventory.confirm_lines($1, '[{"sku":"A","qty":1}]')`, [held.id]);
  const { rows: [ended] } = await client.query(`select * from inventory.release_lines($1, '[{"sku":"A","qty":2}]')`, [held.id]);
  t.is(ended.status, 'CONFIRMED');
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 9, reserved: 0 });
  const { rows: actors } = await db.query(`select distinct actor from inventory.movements where reservation_id = $1`, [held.id]);
  t.deepEqual(actors, [{ actor: name }]);
});

test('a writer cannot write tables directly', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const { client } = await connectAs(t, 'stockroom_writer');
  const before = (await db.query('select * from inventory.stock_levels')).rows;
  for (const sql of [
    'update inventory.stock_levels set on_hand = on_hand + 100',
    `insert into inventory.products (sku) values ('X')`,
    'delete from inventory.reservations',
    `insert into inventory.movements (product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after, actor)
     select product_id, warehouse_id, 'RECEIVE', 100, 0, 110, 0, 'me' from inventory.stock_levels`,
    `insert into inventory.operation_keys (idempotency_key, operation, request_hash) values ('k', 'adjust', 'h')`,
    'truncate inventory.reservation_lines',
  ]) await denied(t, client, sql);
  t.deepEqual((await db.query('select * from inventory.stock_levels')).rows, before);
});

test('a writer cannot run expire_due, verify_counters or upsert_warehouse', async (t) => {
  const { db } = t.context;
  const { client } = await connectAs(t, 'stockroom_writer');
  await denied(t, client, 'select inventory.expire_due()');
  await denied(t, client, 'select * from inventory.verify_counters()');
  await denied(t, client, `select inventory.upsert_warehouse('WHX')`);
  t.is((await queryOne(db, 'select count(*)::int as n from inventory.warehouses')).n, 0);
});

test('an admin can run maintenance and everything a writer can, but not write tables directly', async (t) => {
  const { db } = t.context;
  const { client } = await connectAs(t, 'stockroom_admin');
  t.like((await client.query(`select * from inventory.upsert_warehouse('WH1', 'Main', null, 10)`)).rows, [{ code: 'WH1', priority: 10 }]);
  await client.query(`select inventory.upsert_product('A')`);
  await client.query(`select inventory.adjust('A', 'WH1', 5, 'receipt')`);
  await client.query(`select inventory.reserve('o', '[{"sku":"A","qty":2}]')`);
  t.deepEqual((await client.query('select inventory.expire_due(10) as n')).rows, [{ n: 0 }]);
  t.deepEqual((await client.query('select * from inventory.verify_counters(true)')).rows, []);
  await denied(t, client, 'update inventory.stock_levels set reserved = 0');
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 5, reserved: 2 });
});

test('SET ROLE stockroom_writer on one session works and the role is recorded as actor', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const client = await db.pool.connect();
  try {
    await client.query('set role stockroom_writer');
    await client.query(`select inventory.adjust('A', 'WH1', 1, 'as writer')`);
    await denied(t, client, 'select inventory.verify_counters()');
    await denied(t, client, 'update inventory.stock_levels set on_hand = 0');
  } finally {
    await client.query('reset role').catch(() => {});
    client.release(true);
  }
  t.deepEqual((await db.query(`select actor from inventory.movements where reason = 'as writer'`)).rows, [{ actor: 'stockroom_writer' }]);
});

test('temp tables that shadow inventory names cannot hijack the functions', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 0 } });
  const { client } = await connectAs(t, 'stockroom_writer');
  const decoy = '00000000-0000-0000-0000-00000000dead';
  await client.query(`
    create temp table products (id uuid, sku text, name text);
    create temp table warehouses (id uuid, code text, name text, region text, priority integer);
    create temp table stock_levels (product_id uuid, warehouse_id uuid, on_hand integer, reserved integer,
      safety_stock integer, low_stock_threshold integer, version bigint, last_movement_at timestamptz);
    create temp table movements (id bigint, product_id uuid, warehouse_id uuid, kind text, on_hand_delta integer,
      reserved_delta integer, on_hand_after integer, reserved_after integer, reason text, reservation_id uuid,
      reference text, idempotency_key text, actor text, occurred_at timestamptz);
    create temp table reservations (id uuid, order_ref text, status text, expires_at timestamptz,
      idempotency_key text, request_hash text, release_reason text);
    create temp table reservation_lines (reservation_id uuid, product_id uuid, warehouse_id uuid, qty integer);
    create temp table operation_keys (idempotency_key text, operation text, request_hash text, created_at timestamptz);
    insert into products values ('${decoy}', 'A', 'decoy');
    insert into warehouses values ('${decoy}', 'WH1', 'decoy', null, 0);
    set search_path = pg_temp, public;`);

  const reservation = (await client.query(`select * from inventory.reserve('hijack', '[{"sku":"A","warehouse":"WH1","qty":2}]')`)).rows[0];
  await client.query(`select inventory.adjust('A', 'WH1', 5, 'hijack', 'hijack-key')`);
  await client.query(`select inventory.transfer('A', 'WH1', 'WH2', 1, 'hijack')`);
  await client.query(`select inventory.set_count('A', 'WH2', 3, 'hijack')`);
  await client.query('select inventory.confirm($1)', [reservation.id]);
  t.like((await client.query(`select * from inventory.stock(array['A'])`)).rows,
    [{ warehouse: 'WH1', on_hand: 12, reserved: 0 }, { warehouse: 'WH2', on_hand: 3, reserved: 0 }]);

  const shadows = (await client.query(`
    select (select count(*) from pg_temp.stock_levels)::int as stock_levels, (select count(*) from pg_temp.movements)::int as movements,
           (select count(*) from pg_temp.reservations)::int as reservations, (select count(*) from pg_temp.reservation_lines)::int as lines,
           (select count(*) from pg_temp.operation_keys)::int as keys, (select count(*) from pg_temp.products)::int as products,
           (select count(*) from pg_temp.warehouses)::int as warehouses`)).rows[0];
  t.deepEqual(shadows, { stock_levels: 0, movements: 0, reservations: 0, lines: 0, keys: 0, products: 1, warehouses: 1 });
  await client.query('discard temp');

  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 12, reserved: 0 });
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 3 });
  t.deepEqual((await db.query(`select kind from inventory.movements where reason = 'hijack' or reference = 'hijack' order by id`)).rows
    .map((r) => r.kind), ['RESERVE', 'RECEIVE', 'TRANSFER_OUT', 'TRANSFER_IN', 'COUNT', 'CONFIRM']);
  t.is((await queryOne(db, `select count(*)::int as n from inventory.operation_keys where idempotency_key = 'hijack-key'`)).n, 1);
});

test('the public role (the API without a token) reads the catalog, and neither reservations nor the ledger', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  await db.query(`select inventory.reserve('order-secret', '[{"sku":"A","warehouse":"WH1","qty":1}]', interval '1 hour', 'key-secret')`);
  const { client } = await connectAs(t, 'stockroom_public');
  t.is((await client.query(`select sku from inventory.products`)).rows.length, 1);
  t.is((await client.query(`select code from inventory.warehouses`)).rows.length, 1);
  t.like((await client.query(`select on_hand, reserved from inventory.stock_levels`)).rows[0], { on_hand: 5, reserved: 1 });
  t.like((await client.query(`select * from inventory.stock(array['A'])`)).rows[0], { sku: 'A', available: 4 });
  t.is((await client.query(`select * from inventory.recently_updated(now() - interval '1 hour')`)).rows.length, 1);
  for (const sql of [
    'select order_ref from inventory.reservations', 'select qty from inventory.reservation_lines',
    'select actor from inventory.movements', 'select * from inventory.operation_keys',
    `select * from inventory.movement_history('A')`,
  ]) await denied(t, client, sql);
  const { rows: [membership] } = await db.query(`select pg_has_role('stockroom_reader', 'stockroom_public', 'usage') as reader_public`);
  t.deepEqual(membership, { reader_public: true }, 'a reader reads all the public does');
});

test('no role but the owner takes advisory locks: nobody can hold the locks the SQL API queues on', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  for (const role of ROLES) {
    const { client } = await connectAs(t, role);
    for (const sql of [
      'select pg_advisory_lock(1)', 'select pg_try_advisory_lock(1)', 'select pg_advisory_xact_lock(1, 2)',
      'select pg_try_advisory_xact_lock_shared(1)', 'select pg_advisory_lock_shared(1, 2)',
    ]) await denied(t, client, sql);
  }
  // The functions that queue on them run as the owner: a writer still reserves.
  const { client: writer } = await connectAs(t, 'stockroom_writer');
  const { rows: [reserved] } = await writer.query(`select status from inventory.reserve('order-1', '[{"sku":"A","qty":2}]', interval '1 hour', 'key-1')`);
  t.like(reserved, { status: 'HELD' });
});

test('inbound: a writer creates, receives, closes and cancels; a reader lists it; the public sees available_to_promise only', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const { name, client: writer } = await connectAs(t, 'stockroom_writer');
  const lines = `'[{"sku": "A", "warehouse": "WH1", "qty": 4}]'`;
  const { rows: [po] } = await writer.query(`select * from inventory.create_inbound('PO-1', ${lines}, expected_at => now() + interval '1 day')`);
  t.is((await writer.query(`select status from inventory.receive_inbound($1, '[{"sku": "A", "qty": 1}]')`, [po.id])).rows[0].status, 'PARTIAL');
  t.is((await writer.query(`select status from inventory.close_inbound($1, 'short')`, [po.id])).rows[0].status, 'CLOSED_SHORT');
  const { rows: [other] } = await writer.query(`select * from inventory.create_inbound('PO-2', ${lines}, expected_at => now() + interval '1 day')`);
  t.is((await writer.query('select status from inventory.cancel_inbound($1)', [other.id])).rows[0].status, 'CANCELLED');
  t.deepEqual((await db.query(`select distinct actor from inventory.movements where reference like 'inbound:%'`)).rows, [{ actor: name }]);
  t.deepEqual((await db.query('select distinct created_by from inventory.inbound_shipments')).rows, [{ created_by: name }]);

  const { client: reader } = await connectAs(t, 'stockroom_reader');
  t.is((await reader.query(`select * from inventory.inbound(include_closed => true)`)).rows.length, 2);
  t.is((await reader.query(`select * from inventory.inbound_lines`)).rows.length, 2);
  await denied(t, reader, `select inventory.create_inbound('PO-3', ${lines}, expected_at => now())`);
  await denied(t, reader, `select inventory.receive_inbound($1)`, [po.id]);
  await denied(t, reader, `select inventory.cancel_inbound($1)`, [other.id]);
  await denied(t, reader, `select inventory.close_inbound($1, 'x')`, [po.id]);

  const { client: anyone } = await connectAs(t, 'stockroom_public');
  t.like((await anyone.query(`select * from inventory.available_to_promise('A')`)).rows[0], { warehouse: null, atp: 6 });
  for (const sql of [
    'select * from inventory.inbound()', 'select reference from inventory.inbound_shipments', 'select qty_expected from inventory.inbound_lines',
  ]) await denied(t, anyone, sql);
  await denied(t, writer, `update inventory.inbound_lines set qty_received = 0`);
  await denied(t, writer, `delete from inventory.inbound_shipments`);
});
