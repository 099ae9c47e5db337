// Argument limits (issue 10): every text argument of the SQL API has a
// maximum length (README "Argument limits"; sql/functions/_arguments.sql),
// and beyond it the call is IV005 with detail {"argument", "max_length"} and
// writes nothing, where PostgreSQL used to fail with its internals (54000
// for a key too long for a btree). And errors quote at most a short prefix of
// any argument, so a huge argument cannot make a huge message, detail or
// server log entry.
import { readdirSync, readFileSync } from 'node:fs';
import anyTest, { type TestFn } from 'ava';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';
import { movements, snapshotOfWrites } from '../helpers/ledger.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

const MAX = { sku: 128, warehouse: 64, order_ref: 200, idempotency_key: 200, reason: 500, name: 200, actor: 200, cursor: 128 } as const;
type Kind = keyof typeof MAX;

/** A text one character longer than its kind allows. */
const over = (kind: Kind) => 'x'.repeat(MAX[kind] + 1);
/** A text exactly as long as its kind allows. */
const exactly = (kind: Kind, letter = 'y') => letter.repeat(MAX[kind]);
const ONE_MB = 'M'.repeat(1 << 20);
/** What an error may quote of an argument: its first 64 characters, then "…". */
const clipped = (text: string) => (text.length > 64 ? `${text.slice(0, 64)}…` : text);

/** The longest message or detail an error about a huge argument may have. */
const SHORT = 300;

const line = (sku: string, qty: number, warehouse?: string) => (warehouse === undefined ? { sku, qty } : { sku, warehouse, qty });
const json = (value: unknown) => JSON.stringify(value);

interface Case { fn: string; argument: string; kind: Kind; call: (value: string) => [string, unknown[]]; detail?: Record<string, unknown> }

// Every text argument of every function (release's reason is one of a set: release.test.ts).
const CASES: Case[] = [
  // reserve's lean path (one line naming its warehouse) and its general path.
  { fn: 'reserve (one line)', argument: 'order_ref', kind: 'order_ref',
    call: (v) => ['select * from inventory.reserve($1, $2::jsonb)', [v, json([line('A', 1, 'WH1')])]] },
  { fn: 'reserve (one line)', argument: 'idempotency_key', kind: 'idempotency_key',
    call: (v) => [`select * from inventory.reserve('o', $1::jsonb, idempotency_key => $2)`, [json([line('A', 1, 'WH1')]), v]] },
  { fn: 'reserve (one line)', argument: 'lines', kind: 'sku', detail: { argument: 'lines', line: 1, field: 'sku', max_length: MAX.sku },
    call: (v) => [`select * from inventory.reserve('o', $1::jsonb)`, [json([line(v, 1, 'WH1')])]] },
  { fn: 'reserve (one line)', argument: 'lines', kind: 'warehouse', detail: { argument: 'lines', line: 1, field: 'warehouse', max_length: MAX.warehouse },
    call: (v) => [`select * from inventory.reserve('o', $1::jsonb)`, [json([line('A', 1, v)])]] },
  { fn: 'reserve (two lines)', argument: 'order_ref', kind: 'order_ref',
    call: (v) => ['select * from inventory.reserve($1, $2::jsonb)', [v, json([line('A', 1, 'WH1'), line('A', 1)])]] },
  { fn: 'reserve (any warehouse)', argument: 'idempotency_key', kind: 'idempotency_key',
    call: (v) => [`select * from inventory.reserve('o', $1::jsonb, idempotency_key => $2)`, [json([line('A', 1)]), v]] },
  { fn: 'reserve (two lines)', argument: 'lines', kind: 'sku', detail: { argument: 'lines', line: 2, field: 'sku', max_length: MAX.sku },
    call: (v) => [`select * from inventory.reserve('o', $1::jsonb)`, [json([line('A', 1, 'WH1'), line(v, 1)])]] },
  { fn: 'reserve (two lines)', argument: 'lines', kind: 'warehouse', detail: { argument: 'lines', line: 2, field: 'warehouse', max_length: MAX.warehouse },
    call: (v) => [`select * from inventory.reserve('o', $1::jsonb)`, [json([line('A', 1, 'WH1'), line('A', 1, v)])]] },

  { fn: 'adjust', argument: 'sku', kind: 'sku', call: (v) => [`select inventory.adjust($1, 'WH1', 1, 'receipt')`, [v]] },
  { fn: 'adjust', argument: 'warehouse', kind: 'warehouse', call: (v) => [`select inventory.adjust('A', $1, 1, 'receipt')`, [v]] },
  { fn: 'adjust', argument: 'reason', kind: 'reason', call: (v) => [`select inventory.adjust('A', 'WH1', 1, $1)`, [v]] },
  { fn: 'adjust', argument: 'idempotency_key', kind: 'idempotency_key', call: (v) => [`select inventory.adjust('A', 'WH1', 1, 'receipt', $1)`, [v]] },

  { fn: 'set_count', argument: 'sku', kind: 'sku', call: (v) => [`select inventory.set_count($1, 'WH1', 3, 'count')`, [v]] },
  { fn: 'set_count', argument: 'warehouse', kind: 'warehouse', call: (v) => [`select inventory.set_count('A', $1, 3, 'count')`, [v]] },
  { fn: 'set_count', argument: 'reason', kind: 'reason', call: (v) => [`select inventory.set_count('A', 'WH1', 3, $1)`, [v]] },

  { fn: 'transfer', argument: 'sku', kind: 'sku', call: (v) => [`select inventory.transfer($1, 'WH1', 'WH2', 1, 'move')`, [v]] },
  { fn: 'transfer', argument: 'from_warehouse', kind: 'warehouse', call: (v) => [`select inventory.transfer('A', $1, 'WH2', 1, 'move')`, [v]] },
  { fn: 'transfer', argument: 'to_warehouse', kind: 'warehouse', call: (v) => [`select inventory.transfer('A', 'WH1', $1, 1, 'move')`, [v]] },
  { fn: 'transfer', argument: 'reason', kind: 'reason', call: (v) => [`select inventory.transfer('A', 'WH1', 'WH2', 1, $1)`, [v]] },
  { fn: 'transfer', argument: 'idempotency_key', kind: 'idempotency_key',
    call: (v) => [`select inventory.transfer('A', 'WH1', 'WH2', 1, 'move', $1)`, [v]] },

  { fn: 'ship_transfer', argument: 'sku', kind: 'sku', call: (v) => [`select inventory.ship_transfer($1, 'WH1', 'WH2', 1, 'move')`, [v]] },
  { fn: 'ship_transfer', argument: 'from_warehouse', kind: 'warehouse', call: (v) => [`select inventory.ship_transfer('A', $1, 'WH2', 1, 'move')`, [v]] },
  { fn: 'ship_transfer', argument: 'to_warehouse', kind: 'warehouse', call: (v) => [`select inventory.ship_transfer('A', 'WH1', $1, 1, 'move')`, [v]] },
  { fn: 'ship_transfer', argument: 'reason', kind: 'reason', call: (v) => [`select inventory.ship_transfer('A', 'WH1', 'WH2', 1, $1)`, [v]] },
  { fn: 'ship_transfer', argument: 'idempotency_key', kind: 'idempotency_key',
    call: (v) => [`select inventory.ship_transfer('A', 'WH1', 'WH2', 1, 'move', $1)`, [v]] },
  { fn: 'receive_transfer', argument: 'reason', kind: 'reason',
    call: (v) => [`select inventory.receive_transfer((select id from inventory.ship_transfer('A', 'WH1', 'WH2', 1, 'move')), 1, $1)`, [v]] },
  { fn: 'receive_transfer', argument: 'idempotency_key', kind: 'idempotency_key',
    call: (v) => [`select inventory.receive_transfer((select id from inventory.ship_transfer('A', 'WH1', 'WH2', 1, 'move')), 1, 'in', $1)`, [v]] },
  { fn: 'write_off_transfer', argument: 'reason', kind: 'reason',
    call: (v) => [`select inventory.write_off_transfer((select id from inventory.ship_transfer('A', 'WH1', 'WH2', 1, 'move')), $1)`, [v]] },
  { fn: 'write_off_transfer', argument: 'idempotency_key', kind: 'idempotency_key',
    call: (v) => [`select inventory.write_off_transfer((select id from inventory.ship_transfer('A', 'WH1', 'WH2', 1, 'move')), 'lost', null, $1)`, [v]] },
  { fn: 'in_transit', argument: 'sku', kind: 'sku', call: (v) => ['select * from inventory.in_transit($1)', [v]] },
  { fn: 'in_transit', argument: 'from_warehouse', kind: 'warehouse', call: (v) => ['select * from inventory.in_transit(null, $1)', [v]] },
  { fn: 'in_transit', argument: 'to_warehouse', kind: 'warehouse', call: (v) => ['select * from inventory.in_transit(null, null, $1)', [v]] },

  { fn: 'set_policy', argument: 'sku', kind: 'sku', call: (v) => [`select inventory.set_policy($1, 'WH1', 1)`, [v]] },
  { fn: 'set_policy', argument: 'warehouse', kind: 'warehouse', call: (v) => [`select inventory.set_policy('A', $1, 1)`, [v]] },

  { fn: 'upsert_product', argument: 'sku', kind: 'sku', call: (v) => ['select inventory.upsert_product($1)', [v]] },
  { fn: 'upsert_product', argument: 'name', kind: 'name', call: (v) => [`select inventory.upsert_product('A', $1)`, [v]] },
  { fn: 'upsert_warehouse', argument: 'code', kind: 'warehouse', call: (v) => ['select inventory.upsert_warehouse($1)', [v]] },
  { fn: 'upsert_warehouse', argument: 'name', kind: 'name', call: (v) => [`select inventory.upsert_warehouse('WH1', $1)`, [v]] },
  { fn: 'upsert_warehouse', argument: 'region', kind: 'name', call: (v) => [`select inventory.upsert_warehouse('WH1', null, $1)`, [v]] },

  { fn: 'movement_history', argument: 'sku', kind: 'sku', call: (v) => ['select * from inventory.movement_history($1)', [v]] },
  { fn: 'movement_history', argument: 'warehouse', kind: 'warehouse', call: (v) => ['select * from inventory.movement_history(null, $1)', [v]] },
  { fn: 'recently_updated', argument: 'warehouse', kind: 'warehouse',
    call: (v) => [`select * from inventory.recently_updated(now() - interval '1 day', $1)`, [v]] },
  { fn: 'recently_updated', argument: 'after', kind: 'cursor',
    call: (v) => [`select * from inventory.recently_updated(now() - interval '1 day', null, $1)`, [v]] },
];

for (const c of CASES) {
  const expected = c.detail ?? { argument: c.argument, max_length: MAX[c.kind] };
  const what = c.detail?.field ? `a line's ${c.detail.field as string}` : c.argument;

  test(`${c.fn}: ${what} one character over its maximum is IV005 naming it and the maximum; nothing written`, async (t) => {
    const { db } = t.context;
    await setupCatalog(db, { A: { WH1: 10, WH2: 5 } });
    const before = await snapshotOfWrites(db);
    const [sql, values] = c.call(over(c.kind));
    const error = await rejectsWithCode(t, db.query(sql, values), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), expected);
    t.regex(error.message, new RegExp(`must be at most ${MAX[c.kind]} characters, got ${MAX[c.kind] + 1}`));
    t.deepEqual(await snapshotOfWrites(db), before);
  });

  test(`${c.fn}: ${what} of 1 MB is IV005 with a short message and detail; nothing written`, async (t) => {
    const { db } = t.context;
    await setupCatalog(db, { A: { WH1: 10, WH2: 5 } });
    const before = await snapshotOfWrites(db);
    const [sql, values] = c.call(ONE_MB);
    const error = await rejectsWithCode(t, db.query(sql, values), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), expected);
    t.true(error.message.length < SHORT, `message of ${error.message.length} characters`);
    t.false(error.message.includes('MMMMMMMM'), 'the message does not quote the argument');
    t.deepEqual(await snapshotOfWrites(db), before);
  });
}

test('reserve_many: an over-long text answers IV005 for its request alone; the others are held', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  for (const size of ['over', '1 MB'] as const) {
    const text = (kind: Kind) => (size === 'over' ? over(kind) : ONE_MB);
    const ok = (ref: string) => ({ order_ref: `${ref}-${size}`, lines: [line('A', 1, 'WH1')] });
    const { rows } = await db.query(`
      select r.request, (r.reservation).status, r.sqlstate, r.message, r.detail
      from inventory.reserve_many($1::jsonb) r order by r.request`, [json([
      ok('first'),
      { order_ref: text('order_ref'), lines: [line('A', 1, 'WH1')] },
      { order_ref: 'o', lines: [line('A', 1, 'WH1')], idempotency_key: text('idempotency_key') },
      { order_ref: 'o', lines: [line(text('sku'), 1, 'WH1')] },
      { order_ref: 'o', lines: [line('A', 1, 'WH1'), line('A', 1, text('warehouse'))] },
      { order_ref: 'o', lines: [line('A', 1, 'WH1')], actor: text('actor') },
      ok('last'),
    ])]);
    t.deepEqual(rows.map((r) => r.status ?? r.sqlstate), ['HELD', 'IV005', 'IV005', 'IV005', 'IV005', 'IV005', 'HELD'], size);
    t.deepEqual(rows.slice(1, 6).map((r) => r.detail), [
      { argument: 'order_ref', max_length: MAX.order_ref },
      { argument: 'idempotency_key', max_length: MAX.idempotency_key },
      { argument: 'lines', line: 1, field: 'sku', max_length: MAX.sku },
      { argument: 'lines', line: 2, field: 'warehouse', max_length: MAX.warehouse },
      { argument: 'requests', request: 6, field: 'actor', max_length: MAX.actor },
    ], size);
    for (const r of rows.slice(1, 6)) t.true(r.message.length < SHORT, `${size}: message of ${r.message.length} characters`);
  }
  const { rows } = await db.query('select order_ref from inventory.reservations order by order_ref');
  t.deepEqual(rows.map((r) => r.order_ref), ['first-1 MB', 'first-over', 'last-1 MB', 'last-over'], 'only the valid requests wrote');
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 4 });
});

test('stock(): a sku over the maximum is unknown like any other: no rows, no error', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const { rows } = await db.query('select sku, warehouse, on_hand from inventory.stock($1)', [['A', over('sku'), ONE_MB]]);
  t.deepEqual(rows, [{ sku: 'A', warehouse: 'WH1', on_hand: 10 }]);
});

test('texts exactly at their maximum are accepted everywhere', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const sku = exactly('sku', 's');
  const code = exactly('warehouse', 'w');
  const reason = exactly('reason', 'r');
  t.like(await queryOne(db, 'select * from inventory.upsert_product($1, $2)', [sku, exactly('name')]), { sku, name: exactly('name') });
  t.like(await queryOne(db, 'select * from inventory.upsert_warehouse($1, $2, $3, 5)', [code, exactly('name'), exactly('name', 'z')]),
    { code, name: exactly('name'), region: exactly('name', 'z') });
  await db.query('select inventory.adjust($1, $2, 20, $3, $4)', [sku, code, reason, exactly('idempotency_key', 'a')]);
  await db.query('select inventory.set_count($1, $2, 20, $3)', [sku, code, reason]);
  await db.query('select inventory.set_policy($1, $2, 0)', [sku, code]);
  await db.query(`select inventory.transfer($1, $2, 'WH1', 2, $3, $4)`, [sku, code, reason, exactly('idempotency_key', 't')]);

  const lean = await queryOne(db, 'select * from inventory.reserve($1, $2::jsonb, idempotency_key => $3)',
    [exactly('order_ref', 'o'), json([line(sku, 1, code)]), exactly('idempotency_key', 'k')]);
  t.like(lean, { status: 'HELD', order_ref: exactly('order_ref', 'o'), idempotency_key: exactly('idempotency_key', 'k') });
  const general = await queryOne(db, 'select * from inventory.reserve($1, $2::jsonb, idempotency_key => $3)',
    [exactly('order_ref', 'p'), json([line(sku, 1), line(sku, 1, code)]), exactly('idempotency_key', 'l')]);
  t.like(general, { status: 'HELD', idempotency_key: exactly('idempotency_key', 'l') });
  const [many] = (await db.query(`select r.sqlstate, (r.reservation).status from inventory.reserve_many($1::jsonb) r`, [json([
    { order_ref: exactly('order_ref', 'q'), lines: [line(sku, 1, code)], idempotency_key: exactly('idempotency_key', 'm'), actor: exactly('actor') },
  ])])).rows;
  t.deepEqual(many, { sqlstate: null, status: 'HELD' });
  t.true((await movements(db, { kinds: ['RESERVE'] }, ['actor'])).some((m) => m.actor === exactly('actor')));

  t.true((await db.query('select * from inventory.movement_history($1, $2)', [sku, code])).rows.length > 0);
  const { cursor } = await queryOne(db, `select cursor from inventory.recently_updated(now() - interval '1 day', $1)`, [code]);
  await db.query(`select * from inventory.recently_updated(now() - interval '1 day', $1, $2)`, [code, cursor]);
  t.like(await stockOf(db, sku, code), { on_hand: 18, reserved: 4 }, 'the open line goes to the priority 5 warehouse too');
});

// ------------------------------------------------------------ quoting arguments

test('IV004 quotes at most 64 characters of an unknown sku or warehouse, in message and detail', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const sku = 'u'.repeat(100);
  const code = 'v'.repeat(64);
  const adjust = await rejectsWithCode(t, db.query(`select inventory.adjust($1, 'WH1', 1, 'receipt')`, [sku]), 'IV004');
  t.is(adjust.message, `unknown sku '${clipped(sku)}'`);
  t.deepEqual(JSON.parse(adjust.detail!), { sku: clipped(sku) });
  const warehouse = await rejectsWithCode(t, db.query(`select inventory.adjust('A', $1, 1, 'receipt')`, [code]), 'IV004');
  t.is(warehouse.message, `unknown warehouse '${code}'`, '64 characters are quoted whole');
  t.deepEqual(JSON.parse(warehouse.detail!), { warehouse: code });

  for (const lines of [[line(sku, 1, 'WH9')], [line(sku, 1, 'WH9'), line('A', 1)]]) {
    const error = await rejectsWithCode(t, db.query(`select inventory.reserve('o', $1::jsonb)`, [json(lines)]), 'IV004');
    t.is(error.message, `unknown sku '${clipped(sku)}'; unknown warehouse 'WH9'`);
    t.deepEqual(JSON.parse(error.detail!), { unknown_skus: [clipped(sku)], unknown_warehouses: ['WH9'] });
  }
});

test('IV006 quotes at most 64 characters of the idempotency key and order_ref', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const key = exactly('idempotency_key', 'k');
  const orderRef = exactly('order_ref', 'o');
  await db.query('select inventory.reserve($1, $2::jsonb, idempotency_key => $3)', [orderRef, json([line('A', 1, 'WH1')]), key]);
  const reserve = await rejectsWithCode(t,
    db.query('select inventory.reserve($1, $2::jsonb, idempotency_key => $3)', [orderRef, json([line('A', 2, 'WH1')]), key]), 'IV006');
  t.true(reserve.message.startsWith(`idempotency key '${clipped(key)}' was already used for reservation `), reserve.message);
  t.like(JSON.parse(reserve.detail!), { idempotency_key: clipped(key), order_ref: clipped(orderRef) });

  await db.query(`select inventory.adjust('A', 'WH1', 1, 'receipt', $1)`, [key]);
  const adjust = await rejectsWithCode(t, db.query(`select inventory.adjust('A', 'WH1', 2, 'receipt', $1)`, [key]), 'IV006');
  t.is(adjust.message, `idempotency key '${clipped(key)}' was already used for another adjust request`);
  t.like(JSON.parse(adjust.detail!), { idempotency_key: clipped(key), operation: 'adjust' });

  const batch = await queryOne(db, `select r.message, r.detail from inventory.reserve_many($1::jsonb) r where r.request = 2`, [json([
    { order_ref: 'b', lines: [line('A', 1, 'WH1')], idempotency_key: `${key.slice(1)}b` },
    { order_ref: 'b', lines: [line('A', 2, 'WH1')], idempotency_key: `${key.slice(1)}b` },
  ])]);
  t.true(batch.message.startsWith(`idempotency key '${clipped(`${key.slice(1)}b`)}' was already used by an earlier request`), batch.message);
  t.deepEqual(batch.detail, { idempotency_key: clipped(`${key.slice(1)}b`), request: 1 });
});

test('IV001, IV002 and IV007 quote at most 64 characters of a sku or order_ref; IV001 lines keep the stored sku', async (t) => {
  const { db } = t.context;
  const sku = exactly('sku', 's');
  await setupCatalog(db, { [sku]: { WH1: 2 } });
  const orderRef = exactly('order_ref', 'o');
  const short = await rejectsWithCode(t, db.query('select inventory.reserve($1, $2::jsonb)', [orderRef, json([line(sku, 3, 'WH1')])]), 'IV001');
  t.is(short.message, `insufficient stock for 1 of 1 line(s): ${clipped(sku)} at WH1 requested 3, available 2`);
  t.deepEqual(JSON.parse(short.detail!), { order_ref: clipped(orderRef), lines: [{ sku, warehouse: 'WH1', requested: 3, available: 2 }] });

  await db.query('select inventory.reserve($1, $2::jsonb)', ['o', json([line(sku, 1, 'WH1')])]);
  const below = await rejectsWithCode(t, db.query(`select inventory.adjust($1, 'WH1', -2, 'shrink')`, [sku]), 'IV002');
  t.regex(below.message, new RegExp(`^adjusting ${clipped(sku)} at WH1 by -2 would take`));
  t.like(JSON.parse(below.detail!), { sku: clipped(sku), warehouse: 'WH1' });
  const stale = await rejectsWithCode(t, db.query(`select inventory.set_count($1, 'WH1', 5, 'count', 7)`, [sku]), 'IV007');
  t.regex(stale.message, new RegExp(`^count of ${clipped(sku)} at WH1 expected`));
  t.like(JSON.parse(stale.detail!), { sku: clipped(sku) });
});

// Texts no maximum applies to (a field name, a qty, a kind, a whole argument
// of the wrong type) are still quoted short.
const HUGE_JUNK: Array<[string, string, unknown[]]> = [
  ['an unknown field of 1 MB in a line', `select * from inventory.reserve('o', $1::jsonb)`, [json([{ sku: 'A', warehouse: 'WH1', qty: 1, [ONE_MB]: 1 }])]],
  ['a qty of 1 MB of text', `select * from inventory.reserve('o', $1::jsonb)`, [json([{ sku: 'A', warehouse: 'WH1', qty: ONE_MB }])]],
  ['lines of 1 MB of text instead of an array', `select * from inventory.reserve('o', $1::jsonb)`, [json(ONE_MB)]],
  ['a movement kind of 1 MB', 'select * from inventory.movement_history(kind => $1)', [ONE_MB]],
  ['requests of 1 MB of text instead of an array', 'select * from inventory.reserve_many($1::jsonb)', [json(ONE_MB)]],
];

for (const [title, sql, values] of HUGE_JUNK) {
  test(`IV005 for ${title} has a short message and detail`, async (t) => {
    const { db } = t.context;
    await setupCatalog(db, { A: { WH1: 10 } });
    const before = await snapshotOfWrites(db);
    const error = await rejectsWithCode(t, db.query(sql, values), 'IV005');
    t.true(error.message.length < SHORT, `message of ${error.message.length} characters`);
    t.true((error.detail ?? '').length < SHORT, `detail of ${(error.detail ?? '').length} characters`);
    t.deepEqual(await snapshotOfWrites(db), before);
  });
}

test('reserve_many answers a request with a 1 MB unknown field or ttl text in a short message and detail', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const { rows } = await db.query(`select r.sqlstate, r.message, r.detail::text as detail from inventory.reserve_many($1::jsonb) r order by r.request`, [json([
    { order_ref: 'o', lines: [line('A', 1, 'WH1')], [ONE_MB]: 1 },
    { order_ref: 'o', lines: [line('A', 1, 'WH1')], ttl: ONE_MB },
  ])]);
  t.deepEqual(rows.map((r) => r.sqlstate), ['IV005', 'IV005']);
  for (const r of rows) t.true(r.message.length < SHORT && r.detail.length < SHORT, `${r.message.length} / ${r.detail.length} characters`);
});

test('sql/functions quote arguments only through _quote and _clip (sql/functions/_arguments.sql)', (t) => {
  const dir = new URL('../../sql/functions/', import.meta.url);
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.sql') && f !== '_arguments.sql')) {
    const code = readFileSync(new URL(file, dir), 'utf8').split('\n').filter((l) => !/^\s*--/.test(l)).join('\n');
    t.notRegex(code, /%L|quote_literal\(|quote_nullable\(/, `${file} quotes text itself`);
    t.notRegex(code, /\bleft\(/, `${file} cuts text itself`);
  }
});
