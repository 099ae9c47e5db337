// inventory.reserve_many: many reserve() requests in one transaction, each
// all-or-nothing on its own, one answer per request in input order. A failed
// request (bad input, unknown sku, short stock, reused key) writes nothing and
// fails no other; later requests see what earlier ones took; keys are shared
// with reserve(); the call as a whole is refused only for a malformed argument.
import anyTest, { type TestFn } from 'ava';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';
import { lastMovementId, movements, reserve, sessionUser, snapshotOfWrites } from '../helpers/ledger.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

interface Result {
  request: number;
  id: string | null;
  status: string | null;
  order_ref: string | null;
  expires_at: Date | null;
  sqlstate: string | null;
  message: string | null;
  detail: Record<string, unknown> | null;
  hint: string | null;
}

async function reserveMany(db: Queryable, requests: unknown): Promise<Result[]> {
  const { rows } = await db.query<Result>(`
    select r.request, (r.reservation).id, (r.reservation).status, (r.reservation).order_ref, (r.reservation).expires_at,
           r.sqlstate, r.message, r.detail, r.hint
    from inventory.reserve_many($1::jsonb) r`, [requests === null ? null : JSON.stringify(requests)]);
  return rows;
}

const line = (sku: string, qty: number, warehouse?: string) => (warehouse ? { sku, warehouse, qty } : { sku, qty });

/** The outcome of each request: its status, or its SQLSTATE. */
const outcomes = (results: Result[]) => results.map((r) => r.status ?? r.sqlstate);

test('each request gets its own answer in input order; the failed ones write nothing and fail no other', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 }, B: { WH1: 2 } });
  await reserve(db, 'earlier', [line('A', 1, 'WH1')], '15 minutes', 'used-key');
  const before = await lastMovementId(db);
  const results = await reserveMany(db, [
    { order_ref: 'ok-1', lines: [line('A', 2, 'WH1')] },
    { order_ref: 'short', lines: [line('A', 1, 'WH1'), line('B', 3, 'WH1')] },
    { order_ref: 'unknown', lines: [line('NOPE', 1, 'WH1')] },
    { order_ref: 'reused', lines: [line('A', 2, 'WH1')], idempotency_key: 'used-key' },
    { order_ref: 'bad-line', lines: [{ sku: 'A', qty: 0 }] },
    { order_ref: 'ok-2', lines: [line('B', 2, 'WH1'), line('A', 1)] },
  ]);
  t.deepEqual(results.map((r) => r.request), [1, 2, 3, 4, 5, 6]);
  t.deepEqual(outcomes(results), ['HELD', 'IV001', 'IV004', 'IV006', 'IV005', 'HELD']);
  t.deepEqual(results.map((r) => r.order_ref), ['ok-1', null, null, null, null, 'ok-2']);
  // The same messages and details reserve() raises.
  t.like(results[1], { message: 'insufficient stock for 1 of 2 line(s): B at WH1 requested 3, available 2' });
  t.deepEqual(results[1]!.detail, { order_ref: 'short', lines: [{ sku: 'B', warehouse: 'WH1', requested: 3, available: 2 }] });
  t.like(results[2], { message: "unknown sku 'NOPE'" });
  t.deepEqual(results[2]!.detail, { unknown_skus: ['NOPE'], unknown_warehouses: [] });
  t.regex(results[3]!.message!, /idempotency key 'used-key' was already used for reservation/);
  t.regex(results[4]!.message!, /invalid reservation line 1: "qty" must be a positive integer, got 0/);

  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 4, available: 1 }, 'earlier 1, ok-1 2, ok-2 1');
  t.like(await stockOf(db, 'B', 'WH1'), { reserved: 2, available: 0 });
  // In request order; within a request in key order (product ids are random).
  const written = (await movements(db, { after: before }, ['kind', 'sku', 'reserved_delta', 'reserved_after', 'reference']))
    .sort((a, b) => (a.reference ?? '').localeCompare(b.reference ?? '') || a.sku.localeCompare(b.sku));
  t.deepEqual(written, [
    { kind: 'RESERVE', sku: 'A', reserved_delta: 2, reserved_after: 3, reference: 'ok-1' },
    { kind: 'RESERVE', sku: 'A', reserved_delta: 1, reserved_after: 4, reference: 'ok-2' },
    { kind: 'RESERVE', sku: 'B', reserved_delta: 2, reserved_after: 2, reference: 'ok-2' },
  ], 'one movement per hold, each with the row as it stood after it');
  const { rows } = await db.query(`select order_ref from inventory.reservations order by order_ref`);
  t.deepEqual(rows.map((r) => r.order_ref), ['earlier', 'ok-1', 'ok-2'], 'no reservation row for a failed request');
});

test('later requests see what earlier ones took: the last units go to the first request that asks', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 3, WH2: 2 } });
  const results = await reserveMany(db, [
    { order_ref: 'r1', lines: [line('A', 2, 'WH1')] },
    { order_ref: 'r2', lines: [line('A', 2, 'WH1')] },
    { order_ref: 'r3', lines: [line('A', 3)] },
    { order_ref: 'r4', lines: [line('A', 1)] },
  ]);
  t.deepEqual(outcomes(results), ['HELD', 'IV001', 'HELD', 'IV001']);
  t.deepEqual(results[1]!.detail, { order_ref: 'r2', lines: [{ sku: 'A', warehouse: 'WH1', requested: 2, available: 1 }] }, 'available after r1');
  t.deepEqual(results[3]!.detail, { order_ref: 'r4', lines: [{ sku: 'A', warehouse: null, requested: 1, available: 0 }] });
  const { rows } = await db.query(`
    select r.order_ref, w.code, l.qty from inventory.reservation_lines l
    join inventory.reservations r on r.id = l.reservation_id join inventory.warehouses w on w.id = l.warehouse_id
    order by r.order_ref, w.code`);
  t.deepEqual(rows, [{ order_ref: 'r1', code: 'WH1', qty: 2 }, { order_ref: 'r3', code: 'WH1', qty: 1 }, { order_ref: 'r3', code: 'WH2', qty: 2 }],
    'r3 is allocated across warehouses from what r1 left');
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 3, available: 0 });
  t.like(await stockOf(db, 'A', 'WH2'), { reserved: 2, available: 0 });
});

test('idempotency keys: shared with reserve(), repeated within a batch, and not burnt by a failure', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const first = await reserve(db, 'o1', [line('A', 1, 'WH1')], '15 minutes', 'k1');
  const results = await reserveMany(db, [
    { order_ref: 'o1', lines: [line('A', 1, 'WH1')], ttl: 900, idempotency_key: 'k1' }, // a retry of reserve()'s request
    { order_ref: 'o2', lines: [line('A', 2, 'WH1')], idempotency_key: 'k2' },
    { order_ref: 'o2', lines: [line('A', 2, 'WH1')], idempotency_key: 'k2' }, // the same request twice in one batch
    { order_ref: 'o3', lines: [line('A', 3, 'WH1')], idempotency_key: 'k2' }, // k2 with another request
    { order_ref: 'o4', lines: [line('A', 50, 'WH1')], idempotency_key: 'k4' }, // short: k4 stays free
    { order_ref: 'o4', lines: [line('A', 5, 'WH1')], idempotency_key: 'k4' },
  ]);
  t.deepEqual(outcomes(results), ['HELD', 'HELD', 'HELD', 'IV006', 'IV001', 'HELD']);
  t.is(results[0]!.id, first.id, 'the reservation reserve() made');
  t.is(results[2]!.id, results[1]!.id, 'the first answer, not a second hold');
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 8 }, '1 + 2 + 5');
  const again = await reserve(db, 'o4', [line('A', 5, 'WH1')], '15 minutes', 'k4');
  t.is(again.id, results[5]!.id as string, 'reserve() recognises a key reserve_many claimed');
  await rejectsWithCode(t, reserve(db, 'o4', [line('A', 6, 'WH1')], '15 minutes', 'k4'), 'IV006');
});

test('ttl: seconds or interval text per request, 15 minutes when left out; a bad one is IV005 for that request', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const { now } = await queryOne<{ now: Date }>(db, 'select now()');
  const results = await reserveMany(db, [
    { order_ref: 'a', lines: [line('A', 1, 'WH1')] },
    { order_ref: 'b', lines: [line('A', 1, 'WH1')], ttl: 90 },
    { order_ref: 'c', lines: [line('A', 1, 'WH1')], ttl: '2 hours 30 minutes' },
    { order_ref: 'd', lines: [line('A', 1, 'WH1')], ttl: '00:05:00' },
    { order_ref: 'e', lines: [line('A', 1, 'WH1')], ttl: 'next tuesday' },
    { order_ref: 'f', lines: [line('A', 1, 'WH1')], ttl: 0 },
    { order_ref: 'g', lines: [line('A', 1, 'WH1')], ttl: '400 days' },
    { order_ref: 'h', lines: [line('A', 1, 'WH1')], ttl: true },
  ]);
  t.deepEqual(outcomes(results), ['HELD', 'HELD', 'HELD', 'HELD', 'IV005', 'IV005', 'IV005', 'IV005']);
  const seconds = results.slice(0, 4).map((r) => Math.round((r.expires_at!.getTime() - now.getTime()) / 1000));
  t.true(seconds.every((s, i) => Math.abs(s - [900, 90, 9000, 300][i]!) <= 2), `expires_at ${seconds} s from now`);
  t.regex(results[4]!.message!, /^request 5: "ttl" must be a number of seconds or a text such as "15 minutes", got "next tuesday"$/);
  t.regex(results[5]!.message!, /^ttl must be a positive interval of at most 1 year/);
  t.regex(results[6]!.message!, /^ttl must be a positive interval of at most 1 year/);
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 4 });
});

test('requests that are not reserve() requests are answered IV005 one by one', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const results = await reserveMany(db, [
    'not an object',
    { order_ref: 'x', lines: [line('A', 1, 'WH1')], colour: 'red' },
    { lines: [line('A', 1, 'WH1')] },
    { order_ref: 7, lines: [line('A', 1, 'WH1')] },
    { order_ref: 'x', lines: [line('A', 1, 'WH1')], idempotency_key: 12 },
    { order_ref: 'x', lines: [line('A', 1, 'WH1')], actor: ['me'] },
    { order_ref: '  ', lines: [line('A', 1, 'WH1')] },
    { order_ref: 'x', lines: [] },
    { order_ref: 'fine', lines: [line('A', 1, 'WH1')] },
  ]);
  t.deepEqual(outcomes(results), ['IV005', 'IV005', 'IV005', 'IV005', 'IV005', 'IV005', 'IV005', 'IV005', 'HELD']);
  t.regex(results[0]!.message!, /^request 1: must be an object/);
  t.regex(results[1]!.message!, /^request 2: unknown field\(s\) colour/);
  t.like(results[1]!.detail, { argument: 'requests', request: 2 });
  t.regex(results[2]!.message!, /^request 3: "order_ref" must be a string/);
  t.regex(results[6]!.message!, /^order_ref must be a non-empty text/);
  t.regex(results[7]!.message!, /^lines must be a non-empty JSON array/);
});

test('a malformed call is refused whole with IV005 and writes nothing; no requests, no answers', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const before = await snapshotOfWrites(db);
  for (const requests of [null, { order_ref: 'x' }, 'x', 5]) {
    const error = await rejectsWithCode(t, reserveMany(db, requests), 'IV005');
    t.regex(error.message, /^requests must be a JSON array/);
  }
  const many = Array.from({ length: 1001 }, (_, i) => ({ order_ref: `o${i}`, lines: [line('A', 1, 'WH1')] }));
  t.regex((await rejectsWithCode(t, reserveMany(db, many), 'IV005')).message, /requests holds 1001 entries; at most 1000/);
  const wide = Array.from({ length: 11 }, (_, i) => ({ order_ref: `o${i}`, lines: Array.from({ length: 1000 }, () => line('A', 1, 'WH1')) }));
  t.regex((await rejectsWithCode(t, reserveMany(db, wide), 'IV005')).message, /more than 10000 lines/);
  t.deepEqual(await reserveMany(db, []), []);
  t.deepEqual(await snapshotOfWrites(db), before);
});

test('the ledger\'s actor is each request\'s own, else the session\'s', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const before = await lastMovementId(db);
  await reserveMany(db, [
    { order_ref: 'a', lines: [line('A', 1, 'WH1')], actor: 'alice@example.com' },
    { order_ref: 'b', lines: [line('A', 1, 'WH1')] },
  ]);
  const written = await movements(db, { after: before }, ['reference', 'actor']);
  t.deepEqual(written, [{ reference: 'a', actor: 'alice@example.com' }, { reference: 'b', actor: await sessionUser(db) }]);
});

test('a due HELD reservation never blocks a request of the batch (lazy expiry), and counts what the batch took', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const due = await reserve(db, 'due', [line('A', 4, 'WH1')], '1 second');
  await db.query(`select pg_sleep(1.1)`);
  const results = await reserveMany(db, [
    { order_ref: 'first', lines: [line('A', 1, 'WH1')] },
    { order_ref: 'second', lines: [line('A', 3, 'WH1')] },
    { order_ref: 'third', lines: [line('A', 2, 'WH1')] },
  ]);
  t.deepEqual(outcomes(results), ['HELD', 'HELD', 'IV001']);
  t.deepEqual(results[2]!.detail, { order_ref: 'third', lines: [{ sku: 'A', warehouse: 'WH1', requested: 2, available: 1 }] });
  t.like(await queryOne(db, 'select status, release_reason from inventory.reservations where id = $1', [due.id]), { status: 'EXPIRED', release_reason: 'TTL_EXPIRED' });
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 5, reserved: 4, available: 1 });
});

test('a stock row created while the batch waited for its locks is taken in when a request needs it', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 1 } });
  await db.query(`select inventory.upsert_warehouse('WH2', 'two', null, 20)`);
  // A transaction holds A/WH1 and creates A/WH2: the batch's lock statement waits for WH1, and its
  // snapshot, older than the commit, cannot see WH2.
  const client = await db.pool.connect();
  try {
    await client.query('begin');
    await client.query(`select inventory.adjust('A', 'WH1', 1, 'receipt')`);
    await client.query(`select inventory.adjust('A', 'WH2', 5, 'receipt')`);
    const pending = reserveMany(db, [{ order_ref: 'early', lines: [line('A', 1, 'WH1')] }, { order_ref: 'open', lines: [line('A', 3)] }]);
    let blocked = false;
    for (let i = 0; i < 200 && !blocked; i++) {
      blocked = (await db.query(`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%reserve_many%'`)).rowCount === 1;
      if (!blocked) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    t.true(blocked, 'the batch waits for A/WH1');
    await client.query('commit');
    t.deepEqual(outcomes(await pending), ['HELD', 'HELD']);
  } finally {
    client.release();
  }
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 2, reserved: 2 }, 'early 1, open 1 (priority first)');
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 5, reserved: 2 }, 'open 2 from the new row');
});
