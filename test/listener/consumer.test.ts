// The listener role in-process against a test database: every committed
// change reaches the Redis keys, and the events stream holds exactly the
// CloudEvents SPEC.md lists for every movement made after the listener
// started (movements before it are in the slot's snapshot, not the stream).
import { spawn, type ChildProcess } from 'node:child_process';
import test, { type ExecutionContext } from 'ava';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { EVENT_SOURCE } from '../../src/cache/events.ts';
import { findExecutable, freePort } from '../../src/harness/processes.ts';
import { redisAnswers } from '../../src/harness/redis.ts';
import { parseLsn } from '../../src/cache/lsn.ts';
import { openTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { cacheMismatches, eventProblems, readStream, testRedis, waitFor, waitForCache, type StreamEntry } from '../helpers/cache.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { invariantViolations } from '../helpers/invariants.ts';
import { queryOne, setupCatalog } from '../helpers/inventory.ts';
import { startTestListener, type TestListener } from '../helpers/listener.ts';
import { seededRandom } from './consumer-process.ts';

// ---------------------------------------------------------------------------
// Local helpers

type Db = TestDatabase & { close(): Promise<void> };

interface Setup { db: Db; redis: Redis; listener: TestListener; prefix: string; stream: string }

/** A database with the given stock (and policies), then a listener on it; all cleaned up by teardown. */
async function setup(t: ExecutionContext, label: string, stock: Record<string, Record<string, number>>,
  before?: (db: Db) => Promise<void>): Promise<Setup> {
  const db = await openTestDatabase(label);
  const redis = testRedis();
  let listener: TestListener | undefined;
  t.teardown(async () => {
    await listener?.stop();
    redis.disconnect();
    await db.close();
  });
  await setupCatalog(db, stock);
  await before?.(db);
  listener = await startTestListener(db.url, { label });
  return { db, redis, listener, prefix: listener.names.prefix, stream: listener.names.stream };
}

const TYPED: Record<string, string> = {
  RECEIVE: 'warehouse.stock.adjusted', ADJUST: 'warehouse.stock.adjusted', COUNT: 'warehouse.stock.adjusted',
  RESERVE: 'warehouse.stock.reserved', CONFIRM: 'warehouse.stock.confirmed',
  RELEASE: 'warehouse.stock.released', EXPIRE: 'warehouse.stock.released',
  TRANSFER_OUT: 'warehouse.stock.transferred', TRANSFER_IN: 'warehouse.stock.transferred',
  BACKORDER: 'warehouse.stock.backordered', FILL: 'warehouse.stock.backorder_filled',
  STATE_MOVE: 'warehouse.stock.state_changed',
};
const ALL_KINDS = Object.keys(TYPED);


async function lastMovementId(db: Queryable): Promise<number> {
  return Number((await queryOne<{ id: string }>(db, 'select coalesce(max(id), 0)::text as id from inventory.movements')).id);
}

/**
 * A receipt on a sentinel row, then waits until its event is in the stream:
 * everything committed before it has then been applied (the consumer applies
 * in commit order). Returns the sentinel's movement id.
 */
async function sentinel(db: Queryable, redis: Redis, stream: string, sku: string, warehouse: string, timeoutMs = 30_000): Promise<number> {
  await db.query(`select inventory.adjust($1, $2, 1, 'sentinel')`, [sku, warehouse]);
  const id = await lastMovementId(db);
  const seen = await waitFor(async () => {
    const tail = await redis.xrevrange(stream, '+', '-', 'COUNT', 20);
    return tail.some(([, fields]) => fields.includes(`${id}:updated`));
  }, timeoutMs);
  if (!seen) throw new Error(`movement ${id} never reached the stream ${stream}`);
  return id;
}

/** eventProblems() over the movements with id above `after` only (the earlier ones are in the snapshot). */
function movementsAfter(db: Queryable, after: number): Queryable {
  return {
    query: (text, values) => db.query(text.replace('from inventory.movements', `from inventory.movements where id > ${after}`), values),
  };
}

interface MovementRow {
  id: string; kind: string; sku: string; code: string; on_hand_delta: number; reserved_delta: number;
  on_hand_after: number; reserved_after: number; reason: string | null; reference: string | null;
  reservation_id: string | null; actor: string; occurred_at: Date; safety_stock: number;
  /** The quantity state the movement changed and by how much, and the row's units in states after it (the ledger's running Σ). */
  state: string | null; state_delta: number; unavailable_after: number;
}

async function movementRows(db: Queryable, after: number): Promise<MovementRow[]> {
  const { rows } = await db.query<MovementRow>(`
    select m.id::text, m.kind, p.sku, w.code, m.on_hand_delta, m.reserved_delta, m.on_hand_after, m.reserved_after,
           m.reason, m.reference, m.reservation_id, m.actor, m.occurred_at, s.safety_stock, m.state, m.state_delta,
           m.unavailable_after::int
    from (select *, sum(state_delta) over (partition by product_id, warehouse_id order by id) as unavailable_after
          from inventory.movements) m
    join inventory.products p on p.id = m.product_id
    join inventory.warehouses w on w.id = m.warehouse_id
    join inventory.stock_levels s on s.product_id = m.product_id and s.warehouse_id = m.warehouse_id
    where m.id > $1 order by m.id`, [after]);
  return rows;
}

const available = (onHand: number, reserved: number, safety: number, unavailable = 0) => Math.max(onHand - reserved - safety - unavailable, 0);

/**
 * Checks every stream entry of a movement against the ledger, as SPEC.md
 * describes it: CloudEvents 1.0 envelope, ids derived from the movement id,
 * the typed event by kind, data with old/new values. Assumes each row's
 * safety_stock did not change while the movements were made.
 */
function entryProblems(entries: StreamEntry[], movements: MovementRow[]): string[] {
  const problems: string[] = [];
  const byId = new Map(movements.map((m) => [m.id, m]));
  const push = (p: string) => {
    if (problems.length < 30) problems.push(p);
  };
  for (const e of entries) {
    const ce = e.event as Record<string, unknown> & { data: Record<string, any> };
    const mid = String(ce.data?.movement_id);
    const m = byId.get(mid);
    if (!m) {
      push(`${e.streamId}: movement ${mid} is not among the movements checked`);
      continue;
    }
    const where = `${e.streamId} ${e.type} of movement ${mid} (${m.kind})`;
    const suffix = e.type.split('.').pop();
    if (e.id !== `${mid}:${suffix}`) push(`${where}: entry id ${e.id}, expected ${mid}:${suffix}`);
    for (const [field, expected] of Object.entries({
      specversion: '1.0', id: e.id, source: EVENT_SOURCE, type: e.type, subject: `${m.sku}/${m.code}`,
      datacontenttype: 'application/json', time: m.occurred_at.toISOString(),
    })) {
      if (ce[field] !== expected) push(`${where}: ${field} ${JSON.stringify(ce[field])}, expected ${JSON.stringify(expected)}`);
    }
    if (e.subject !== `${m.sku}/${m.code}`) push(`${where}: entry subject ${e.subject}`);
    if (typeof ce.source !== 'string' || ce.source === '') push(`${where}: no source`);
    if (e.type === 'warehouse.inventory.low_stock') {
      const d = ce.data;
      const expected = {
        movement_id: Number(mid), sku: m.sku, warehouse: m.code,
        available: available(m.on_hand_after, m.reserved_after, m.safety_stock, m.unavailable_after),
        previous_available: available(m.on_hand_after - m.on_hand_delta, m.reserved_after - m.reserved_delta, m.safety_stock, m.unavailable_after - m.state_delta),
      };
      for (const [field, value] of Object.entries(expected)) {
        if (d[field] !== value) push(`${where}: data.${field} ${JSON.stringify(d[field])}, expected ${JSON.stringify(value)}`);
      }
      if (!(d.low_stock_threshold > 0 && d.previous_available > d.low_stock_threshold && d.available <= d.low_stock_threshold)) {
        push(`${where}: not a downward crossing: ${JSON.stringify(d)}`);
      }
      continue;
    }
    if (e.type !== 'warehouse.stock.updated' && e.type !== TYPED[m.kind]) push(`${where}: typed event should be ${TYPED[m.kind]}`);
    const oldOnHand = m.on_hand_after - m.on_hand_delta;
    const oldReserved = m.reserved_after - m.reserved_delta;
    const expected = {
      movement_id: Number(mid), sku: m.sku, warehouse: m.code, kind: m.kind, reason: m.reason, reference: m.reference,
      reservation_id: m.reservation_id,
      old: { on_hand: oldOnHand, reserved: oldReserved, available: available(oldOnHand, oldReserved, m.safety_stock, m.unavailable_after - m.state_delta) },
      new: { on_hand: m.on_hand_after, reserved: m.reserved_after, available: available(m.on_hand_after, m.reserved_after, m.safety_stock, m.unavailable_after) },
      state: m.state_delta !== 0 ? { name: m.state, delta: m.state_delta } : undefined,
    };
    for (const [field, value] of Object.entries(expected)) {
      if (JSON.stringify(ce.data[field]) !== JSON.stringify(value)) {
        push(`${where}: data.${field} ${JSON.stringify(ce.data[field])}, expected ${JSON.stringify(value)}`);
      }
    }
  }
  return problems;
}

/** Stream order: per stock row, movements in id order; per movement, updated before its typed event. */
function orderProblems(entries: StreamEntry[]): string[] {
  const problems: string[] = [];
  const lastPerSubject = new Map<string, number>();
  const updatedAt = new Map<string, number>();
  entries.forEach((e, i) => {
    const mid = Number(e.event.data.movement_id);
    if (e.type === 'warehouse.stock.updated') {
      const last = lastPerSubject.get(e.subject) ?? 0;
      if (mid <= last && problems.length < 10) problems.push(`${e.subject}: movement ${mid} after ${last} in the stream`);
      lastPerSubject.set(e.subject, mid);
      updatedAt.set(String(mid), i);
    } else if (!(updatedAt.get(String(mid))! < i) && problems.length < 10) {
      problems.push(`movement ${mid}: ${e.type} before its warehouse.stock.updated`);
    }
  });
  return problems;
}

const EXPECTED_ERRORS = ['IV001', 'IV002', 'IV003', 'IV007'];

/** One client's share of random SQL API traffic (deterministic choices from the seed). */
async function traffic(pool: pg.Pool, seed: number, ops: number, skus: string[], warehouses: string[], tally: Map<string, number>): Promise<void> {
  const rand = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const held: string[] = [];
  const takeHeld = () => held.splice(Math.floor(rand() * held.length), 1)[0];
  const client = await pool.connect(); // one connection per traffic stream: several sessions at once
  try {
    for (let i = 0; i < ops; i++) {
      const r = rand();
      let op = '';
      try {
        if (r < 0.22) {
          op = 'reserve';
          const lines = [{ sku: pick(skus), warehouse: pick(warehouses), qty: int(1, 3) }];
          if (rand() < 0.3) lines.push({ sku: pick(skus), warehouse: pick(warehouses), qty: int(1, 2) });
          const ttl = rand() < 0.15 ? '1 second' : '15 minutes';
          const { rows } = await client.query<{ id: string }>('select id from inventory.reserve($1, $2::jsonb, $3::interval)',
            [`order-${seed}-${i}`, JSON.stringify(lines), ttl]);
          held.push(rows[0]!.id);
        } else if (r < 0.32) {
          op = 'reserve_open';
          const lines: Array<{ sku: string; warehouse?: string; qty: number }> = [{ sku: pick(skus), qty: int(1, 6) }];
          if (rand() < 0.4) lines.push({ sku: pick(skus), warehouse: pick(warehouses), qty: 1 });
          const { rows } = await client.query<{ id: string }>('select id from inventory.reserve($1, $2::jsonb)',
            [`order-${seed}-${i}`, JSON.stringify(lines)]);
          held.push(rows[0]!.id);
        } else if (r < 0.42) {
          op = 'confirm';
          const id = takeHeld();
          if (id) await client.query('select inventory.confirm($1)', [id]);
        } else if (r < 0.50) {
          op = 'release';
          const id = takeHeld();
          if (id) await client.query('select inventory.release($1, $2)', [id, pick(['CANCELLED', 'PAYMENT_FAILED', 'TTL_EXPIRED'])]);
        } else if (r < 0.55) {
          op = 'extend';
          const id = held.length ? held[Math.floor(rand() * held.length)] : undefined;
          if (id) await client.query(`select inventory.extend($1, '10 minutes')`, [id]);
        } else if (r < 0.67) {
          op = 'receive';
          await client.query(`select inventory.adjust($1, $2, $3, 'receipt')`, [pick(skus), pick(warehouses), int(1, 6)]);
        } else if (r < 0.75) {
          op = 'remove';
          await client.query(`select inventory.adjust($1, $2, $3, 'damaged')`, [pick(skus), pick(warehouses), -int(1, 3)]);
        } else if (r < 0.81) {
          op = 'set_count';
          const sku = pick(skus);
          const warehouse = pick(warehouses);
          const { rows } = await client.query<{ on_hand: number; reserved: number }>(
            'select on_hand, reserved from inventory.stock(array[$1]) where warehouse = $2', [sku, warehouse]);
          const current = rows[0];
          if (current) {
            const counted = Math.max(current.reserved, current.on_hand + int(-4, 4));
            await client.query(`select inventory.set_count($1, $2, $3, 'cycle count', $4)`,
              [sku, warehouse, counted, rand() < 0.5 ? current.on_hand : null]);
          }
        } else if (r < 0.89) {
          op = 'transfer';
          const from = pick(warehouses);
          const to = pick(warehouses.filter((w) => w !== from));
          await client.query(`select * from inventory.transfer($1, $2, $3, $4, 'rebalance')`, [pick(skus), from, to, int(1, 3)]);
        } else if (r < 0.92) {
          op = 'state';
          // Units into DAMAGED, or back: IV002 when the row has nothing to move.
          const [from, to] = rand() < 0.5 ? [null, 'DAMAGED'] : ['DAMAGED', null];
          await client.query(`select inventory.move_stock_state($1, $2, $3, 'inspection', from_state => $4, to_state => $5)`,
            [pick(skus), pick(warehouses), int(1, 2), from, to]);
        } else if (r < 0.95) {
          op = 'set_policy';
          // Thresholds only: each row's safety_stock stays as set up, so event data can be checked exactly.
          await client.query('select inventory.set_policy($1, $2, null, $3)', [pick(skus), pick(warehouses), int(0, 10)]);
        } else {
          op = 'expire_due';
          await client.query('select inventory.expire_due(50)');
        }
        tally.set(op, (tally.get(op) ?? 0) + 1);
      } catch (error) {
        const code = (error as { code?: string }).code ?? '';
        if (!EXPECTED_ERRORS.includes(code)) throw new Error(`${op} failed unexpectedly: ${code} ${(error as Error).message}`);
        tally.set(`${op}:${code}`, (tally.get(`${op}:${code}`) ?? 0) + 1);
      }
    }
  } finally {
    client.release();
  }
}

// ---------------------------------------------------------------------------

test('after concurrent random SQL API traffic the cache equals Postgres and the stream holds exactly the events of every movement', async (t) => {
  const skus = ['R01', 'R02', 'R03', 'R04', 'R05', 'R06', 'R07', 'R08'];
  const warehouses = ['WH1', 'WH2', 'WH3', 'WH4'];
  const stock: Record<string, Record<string, number>> = { ZZ: { WH1: 1 } };
  skus.forEach((sku, i) => {
    stock[sku] = Object.fromEntries(warehouses.map((w, j) => [w, 20 + ((i * 7 + j * 5) % 25)]));
  });
  const { db, redis, listener, prefix, stream } = await setup(t, 'consumer_random', stock, async (db) => {
    // Safety stock on some rows (fixed from now on), thresholds on others.
    for (const [i, sku] of skus.entries()) {
      for (const [j, w] of warehouses.entries()) {
        await db.query('select inventory.set_policy($1, $2, $3, $4)', [sku, w, (i + j) % 3, (i * j) % 7]);
      }
    }
    // Backorders on a few rows: reserves beyond stock there backorder, receipts and releases fill.
    for (const sku of ['R01', 'R02']) await db.query(`select inventory.set_backorder_policy($1, 'WH1', 'BACKORDER', 30)`, [sku]);
  });
  const before = await lastMovementId(db);
  t.true(before > 0);
  t.deepEqual(await cacheMismatches(db, redis, prefix), [], 'the first build from the snapshot matches');

  const tally = new Map<string, number>();
  await Promise.all([1, 2, 3, 4, 5].map((n) => traffic(db.pool, 1000 + n, 500, skus, warehouses, tally)));
  // Short holds are due now: expire them (EXPIRE movements, reason TTL_EXPIRED).
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  const expired = (await queryOne<{ n: number }>(db, 'select inventory.expire_due(1000) as n')).n;
  t.log(`traffic: ${[...tally].map(([k, v]) => `${k} ${v}`).join(', ')}; expired at the end: ${expired}`);
  const last = await sentinel(db, redis, stream, 'ZZ', 'WH1');

  t.deepEqual(await waitForCache(db, redis, prefix, 20_000), [], 'every key equals what Postgres says');
  t.deepEqual(await invariantViolations(db), []);

  const movements = await movementRows(db, before);
  t.log(`${movements.length} movements since the listener started`);
  t.true(movements.length >= 2_000, `thousands of changes (${movements.length} movements)`);
  const kinds = new Set(movements.map((m) => m.kind));
  t.deepEqual(ALL_KINDS.filter((k) => !kinds.has(k)), [], 'the traffic made movements of every kind');
  t.true(movements.some((m) => m.kind === 'EXPIRE' && m.reason === 'TTL_EXPIRED'));
  t.is(Number(movements.at(-1)!.id), last);

  const entries = await readStream(redis, stream);
  t.deepEqual(await eventProblems(movementsAfter(db, before), entries), [], 'one updated and one typed event per movement');
  t.deepEqual(entries.filter((e) => Number(e.event.data.movement_id) <= before).map((e) => e.id), [],
    'no events for movements of the snapshot');
  const lowStock = entries.filter((e) => e.type === 'warehouse.inventory.low_stock');
  t.is(entries.length, 2 * movements.length + lowStock.length, 'nothing else in the stream');
  t.is(new Set(lowStock.map((e) => e.id)).size, lowStock.length, 'at most one low_stock event per movement');
  t.deepEqual(entryProblems(entries, movements), [], 'CloudEvents envelope, ids and data follow the ledger');
  t.deepEqual(orderProblems(entries), [], 'stream order follows commit order');
  const types = new Set(entries.map((e) => e.type));
  for (const type of new Set(Object.values(TYPED))) t.true(types.has(type), `${type} seen`);
  for (const e of entries.filter((x) => x.type === 'warehouse.stock.released')) {
    t.true(['CANCELLED', 'PAYMENT_FAILED', 'TTL_EXPIRED'].includes(String(e.event.data.reason)), `released with a reason: ${e.event.data.reason}`);
  }
  t.true(await listener.metric('stockroom_cache_changes_applied_total') >= movements.length / 2);
});

test('typed events by kind, with old/new values, reasons and references, and ids from the movement id', async (t) => {
  const { db, redis, prefix, stream } = await setup(t, 'consumer_kinds', { A: { WH1: 10, WH2: 4 }, ZZ: { WH1: 1 } });
  const before = await lastMovementId(db);
  await db.query('select inventory.set_policy($1, $2, 1, null)', ['A', 'WH1']); // safety 1: available is on_hand - reserved - 1
  const r1 = (await queryOne(db, `select id from inventory.reserve('order-1', '[{"sku":"A","warehouse":"WH1","qty":3}]')`)).id as string;
  await db.query('select inventory.confirm($1)', [r1]);
  const r2 = (await queryOne(db, `select id from inventory.reserve('order-2', '[{"sku":"A","qty":2}]')`)).id as string;
  await db.query(`select inventory.release($1, 'PAYMENT_FAILED')`, [r2]);
  const r3 = (await queryOne(db, `select id from inventory.reserve('order-3', '[{"sku":"A","warehouse":"WH2","qty":1}]', '1 second')`)).id as string;
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  t.is((await queryOne(db, 'select inventory.expire_due() as n')).n, 1);
  await db.query(`select inventory.adjust('A', 'WH2', 5, 'po-7')`);
  await db.query(`select inventory.adjust('A', 'WH2', -2, 'damaged')`);
  await db.query(`select inventory.set_count('A', 'WH1', 3, 'cycle count')`);
  await db.query(`select * from inventory.transfer('A', 'WH2', 'WH1', 2, 'rebalance')`);
  await sentinel(db, redis, stream, 'ZZ', 'WH1');
  t.deepEqual(await waitForCache(db, redis, prefix), []);

  const movements = await movementRows(db, before);
  const entries = (await readStream(redis, stream)).filter((e) => e.subject !== 'ZZ/WH1');
  t.deepEqual(entryProblems(entries, movements.filter((m) => m.sku === 'A')), []);
  const transferRef = movements.find((m) => m.kind === 'TRANSFER_OUT')!.reference;
  t.regex(transferRef ?? '', /^transfer:/);
  const id = (kind: string, n = 0) => movements.filter((m) => m.kind === kind)[n]!.id;
  t.deepEqual(entries.map((e) => [e.id, e.type, e.event.data.kind, e.event.data.reason, e.event.data.reference]), [
    [`${id('RESERVE')}:updated`, 'warehouse.stock.updated', 'RESERVE', null, 'order-1'],
    [`${id('RESERVE')}:reserved`, 'warehouse.stock.reserved', 'RESERVE', null, 'order-1'],
    [`${id('CONFIRM')}:updated`, 'warehouse.stock.updated', 'CONFIRM', null, 'order-1'],
    [`${id('CONFIRM')}:confirmed`, 'warehouse.stock.confirmed', 'CONFIRM', null, 'order-1'],
    [`${id('RESERVE', 1)}:updated`, 'warehouse.stock.updated', 'RESERVE', null, 'order-2'],
    [`${id('RESERVE', 1)}:reserved`, 'warehouse.stock.reserved', 'RESERVE', null, 'order-2'],
    [`${id('RELEASE')}:updated`, 'warehouse.stock.updated', 'RELEASE', 'PAYMENT_FAILED', 'order-2'],
    [`${id('RELEASE')}:released`, 'warehouse.stock.released', 'RELEASE', 'PAYMENT_FAILED', 'order-2'],
    [`${id('RESERVE', 2)}:updated`, 'warehouse.stock.updated', 'RESERVE', null, 'order-3'],
    [`${id('RESERVE', 2)}:reserved`, 'warehouse.stock.reserved', 'RESERVE', null, 'order-3'],
    [`${id('EXPIRE')}:updated`, 'warehouse.stock.updated', 'EXPIRE', 'TTL_EXPIRED', 'order-3'],
    [`${id('EXPIRE')}:released`, 'warehouse.stock.released', 'EXPIRE', 'TTL_EXPIRED', 'order-3'],
    [`${id('RECEIVE')}:updated`, 'warehouse.stock.updated', 'RECEIVE', 'po-7', null],
    [`${id('RECEIVE')}:adjusted`, 'warehouse.stock.adjusted', 'RECEIVE', 'po-7', null],
    [`${id('ADJUST')}:updated`, 'warehouse.stock.updated', 'ADJUST', 'damaged', null],
    [`${id('ADJUST')}:adjusted`, 'warehouse.stock.adjusted', 'ADJUST', 'damaged', null],
    [`${id('COUNT')}:updated`, 'warehouse.stock.updated', 'COUNT', 'cycle count', null],
    [`${id('COUNT')}:adjusted`, 'warehouse.stock.adjusted', 'COUNT', 'cycle count', null],
    [`${id('TRANSFER_OUT')}:updated`, 'warehouse.stock.updated', 'TRANSFER_OUT', 'rebalance', transferRef],
    [`${id('TRANSFER_OUT')}:transferred`, 'warehouse.stock.transferred', 'TRANSFER_OUT', 'rebalance', transferRef],
    [`${id('TRANSFER_IN')}:updated`, 'warehouse.stock.updated', 'TRANSFER_IN', 'rebalance', transferRef],
    [`${id('TRANSFER_IN')}:transferred`, 'warehouse.stock.transferred', 'TRANSFER_IN', 'rebalance', transferRef],
  ]);
  // Spot checks of the values (safety stock 1 at WH1).
  const confirm = entries.find((e) => e.id === `${id('CONFIRM')}:confirmed`)!.event;
  t.like(confirm, { specversion: '1.0', type: 'warehouse.stock.confirmed', subject: 'A/WH1', datacontenttype: 'application/json', source: EVENT_SOURCE });
  t.deepEqual(confirm.data.old, { on_hand: 10, reserved: 3, available: 6 });
  t.deepEqual(confirm.data.new, { on_hand: 7, reserved: 0, available: 6 });
  t.is(confirm.data.reservation_id, r1);
  const expire = entries.find((e) => e.id === `${id('EXPIRE')}:released`)!.event;
  t.deepEqual([expire.data.old, expire.data.new], [{ on_hand: 4, reserved: 1, available: 3 }, { on_hand: 4, reserved: 0, available: 4 }]);
  t.is(expire.data.reservation_id, r3);
  t.false(Number.isNaN(Date.parse(String(confirm.time))));
});

test('backorders: a BACKORDER event when a reserve goes beyond stock, a backorder_filled event when stock arrives, each with the backordered change', async (t) => {
  const { db, redis, prefix, stream } = await setup(t, 'consumer_backorders', { B: { WH1: 1 }, ZZ: { WH1: 1 } });
  await db.query(`select inventory.set_backorder_policy('B', 'WH1', 'BACKORDER', 5)`);
  const before = await lastMovementId(db);
  const held = (await queryOne(db, `select id from inventory.reserve('bo-1', '[{"sku":"B","warehouse":"WH1","qty":4}]')`)).id as string;
  await db.query(`select inventory.adjust('B', 'WH1', 2, 'po-9')`);
  await sentinel(db, redis, stream, 'ZZ', 'WH1');
  t.deepEqual(await waitForCache(db, redis, prefix), []);
  const movements = await movementRows(db, before);
  const entries = (await readStream(redis, stream)).filter((e) => e.subject === 'B/WH1');
  t.deepEqual(entryProblems(entries, movements.filter((m) => m.sku === 'B')), []);
  t.deepEqual(entries.filter((e) => e.type !== 'warehouse.stock.updated').map((e) => [e.type, e.event.data.kind, e.event.data.backordered ?? null]), [
    ['warehouse.stock.reserved', 'RESERVE', null],
    ['warehouse.stock.backordered', 'BACKORDER', { delta: 3, old: 0, new: 3 }],
    ['warehouse.stock.adjusted', 'RECEIVE', null],
    ['warehouse.stock.backorder_filled', 'FILL', { delta: -2, old: 3, new: 1 }],
  ]);
  const fill = entries.find((e) => e.type === 'warehouse.stock.backorder_filled')!.event;
  t.is(fill.data.reservation_id, held);
  t.deepEqual([fill.data.old, fill.data.new], [{ on_hand: 3, reserved: 1, available: 2 }, { on_hand: 3, reserved: 3, available: 0 }]);
});

test('warehouse.inventory.low_stock only when available crosses the threshold downward (threshold > 0)', async (t) => {
  const { db, redis, prefix, stream } = await setup(t, 'consumer_low', { A: { WH1: 10 }, B: { WH1: 3 }, C: { WH1: 10 }, ZZ: { WH1: 1 } });
  await db.query('select inventory.set_policy($1, $2, null, 5)', ['A', 'WH1']);
  await db.query('select inventory.set_policy($1, $2, 2, 4)', ['C', 'WH1']); // safety 2: available = on_hand - reserved - 2
  const before = await lastMovementId(db);
  const step = async (sql: string, crosses: boolean) => {
    await db.query(sql);
    return { id: await lastMovementId(db), crosses, sql };
  };
  const steps = [
    await step(`select inventory.adjust('A', 'WH1', -3, 'x')`, false), // 10 → 7: above 5
    await step(`select inventory.reserve('o1', '[{"sku":"A","warehouse":"WH1","qty":3}]')`, true), // 7 → 4: crosses
    await step(`select inventory.adjust('A', 'WH1', -1, 'x')`, false), // 4 → 3: stays below
    await step(`select inventory.adjust('A', 'WH1', 10, 'x')`, false), // 3 → 13: goes up
    await step(`select inventory.adjust('A', 'WH1', -8, 'x')`, true), // 13 → 5: at the threshold counts
    await step(`select inventory.adjust('A', 'WH1', 1, 'x')`, false), // 5 → 6: up
    await step(`select inventory.adjust('A', 'WH1', -6, 'x')`, true), // 6 → 0: crosses (and runs out)
    await step(`select inventory.adjust('B', 'WH1', -3, 'x')`, false), // threshold 0: running out is not low stock
    await step(`select inventory.adjust('C', 'WH1', -3, 'x')`, false), // available 8 → 5: above 4
    await step(`select inventory.set_count('C', 'WH1', 6, 'count')`, true), // available 5 → 4 (safety stock counted)
  ];
  await db.query('select inventory.set_policy($1, $2, null, 20)', ['B', 'WH1']); // no movement, no event
  await sentinel(db, redis, stream, 'ZZ', 'WH1');
  t.deepEqual(await waitForCache(db, redis, prefix), []);
  const entries = await readStream(redis, stream);
  const low = entries.filter((e) => e.type === 'warehouse.inventory.low_stock');
  t.deepEqual(low.map((e) => e.id), steps.filter((s) => s.crosses).map((s) => `${s.id}:low_stock`));
  t.deepEqual(entryProblems(entries.filter((e) => e.subject !== 'ZZ/WH1'), (await movementRows(db, before)).filter((m) => m.sku !== 'ZZ')), []);
  const crossing = low[0]!.event;
  t.like(crossing, { type: 'warehouse.inventory.low_stock', subject: 'A/WH1', specversion: '1.0', source: EVENT_SOURCE });
  t.deepEqual(crossing.data, { movement_id: steps[1]!.id, sku: 'A', warehouse: 'WH1', available: 4, low_stock_threshold: 5, previous_available: 7 });
  t.like(low[3]!.event.data, { sku: 'C', available: 4, previous_available: 5, low_stock_threshold: 4 });
  // The low_stock event follows the two events of its movement.
  const at = entries.findIndex((e) => e.id === `${steps[1]!.id}:low_stock`);
  t.deepEqual(entries.slice(at - 2, at).map((e) => e.id), [`${steps[1]!.id}:updated`, `${steps[1]!.id}:reserved`]);
});

test('one very large transaction is applied whole (seed-like bulk insert, then adjust() on 10,000 rows in one statement)', async (t) => {
  const { db, redis, listener, prefix, stream } = await setup(t, 'consumer_large', { ZZ: { WH1: 1 } });
  const codes = ['B1', 'B2', 'B3', 'B4', 'B5'];
  for (const code of codes) await db.query('select inventory.upsert_warehouse($1)', [code]);
  const before = await lastMovementId(db);
  // Like `stockroom seed`: products, stock rows and their RECEIVE movements in one transaction.
  await db.query(`
    with p as (
      insert into inventory.products (sku, name)
      select 'BULK-' || lpad(i::text, 5, '0'), 'Bulk ' || i from generate_series(1, 2000) i
      returning id),
    s as (
      insert into inventory.stock_levels (product_id, warehouse_id, on_hand, low_stock_threshold)
      select p.id, w.id, 20, 3 from p cross join inventory.warehouses w where w.code like 'B_'
      returning product_id, warehouse_id, on_hand)
    insert into inventory.movements (product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after, reason, actor)
    select product_id, warehouse_id, 'RECEIVE', on_hand, 0, on_hand, 0, 'seed', 'test' from s`);
  t.is((await queryOne(db, 'select count(*)::int as n from inventory.stock_levels')).n, 10_001);
  await sentinel(db, redis, stream, 'ZZ', 'WH1', 40_000);
  t.deepEqual(await waitForCache(db, redis, prefix, 20_000), [], 'the bulk insert is in the cache');

  // One statement, one transaction: 10,000 row updates and 10,000 movements.
  const adjusted = await queryOne<{ n: number }>(db, `
    select count(inventory.adjust(p.sku, w.code, -18, 'bulk correction'))::int as n
    from inventory.stock_levels s
    join inventory.products p on p.id = s.product_id
    join inventory.warehouses w on w.id = s.warehouse_id
    where p.sku like 'BULK-%'`);
  t.is(adjusted.n, 10_000);
  await sentinel(db, redis, stream, 'ZZ', 'WH1', 40_000);
  t.deepEqual(await waitForCache(db, redis, prefix, 20_000), [], 'every row of the large transaction is in the cache');
  t.is(await redis.get(`${prefix}stock:BULK-01234:total`), '10');
  t.is(await redis.get(`${prefix}stock:BULK-01234:status`), 'low_stock');
  t.is(await redis.get(`${prefix}stock:BULK-02000:warehouse:B5`), '2');

  const entries = await readStream(redis, stream);
  t.deepEqual(await eventProblems(movementsAfter(db, before), entries), []);
  const byType = new Map<string, number>();
  for (const e of entries) byType.set(e.type, (byType.get(e.type) ?? 0) + 1);
  t.deepEqual(Object.fromEntries(byType), {
    'warehouse.stock.updated': 20_002, 'warehouse.stock.adjusted': 20_002, 'warehouse.inventory.low_stock': 10_000,
  });
  t.true(await listener.metric('stockroom_cache_changes_applied_total') >= 20_000);
});

test('keys, product invalidation, set_policy without a movement, metrics and health while streaming', async (t) => {
  const { db, redis, listener, prefix, stream } = await setup(t, 'consumer_keys', { A: { WH1: 10, WH2: 6 }, B: { WH1: 5 } });
  t.true(await waitFor(() => listener.consumer.health().streaming, 10_000), 'health: streaming');
  t.is(await redis.get(`${prefix}stock:A:total`), '16', 'rows made before the start come from the snapshot');
  const k = (key: string) => `${prefix}${key}`;
  await redis.mset(k('product:A'), '{"name":"Product A"}', k('product:B'), '{"name":"Product B"}');
  const metricsBefore = {
    applied: await listener.metric('stockroom_cache_changes_applied_total'),
    latency: await listener.metric('stock_sync_latency_seconds'),
    events: await listener.metric('stock_events_processed_total'),
  };

  await db.query(`select inventory.reserve('o1', '[{"sku":"A","warehouse":"WH2","qty":2}]')`);
  t.true(await waitFor(async () => (await redis.get(k('stock:A:warehouse:WH2'))) === '4', 10_000));
  t.deepEqual(await waitForCache(db, redis, prefix), []);
  t.is(await redis.exists(k('product:A')), 0, 'catalog:product:{sku} is deleted when the sku changes');
  t.is(await redis.get(k('product:B')), '{"name":"Product B"}', 'an unchanged sku keeps its product document');
  t.deepEqual(await redis.mget(k('stock:A:total'), k('stock:A:available'), k('stock:A:status'), k('stock:A:low_stock')), ['16', '14', 'in_stock', '0']);

  // set_policy: no movement, yet available, status and low_stock follow.
  const entriesBefore = await redis.xlen(stream);
  await redis.set(k('product:A'), '{"name":"Product A"}');
  await db.query('select inventory.set_policy($1, $2, 3, 10)', ['A', 'WH1']); // WH1 available 10 → 7
  t.true(await waitFor(async () => (await redis.get(k('stock:A:warehouse:WH1'))) === '7', 10_000), 'safety stock lowers available');
  t.deepEqual(await redis.mget(k('stock:A:total'), k('stock:A:available'), k('stock:A:status'), k('stock:A:low_stock')), ['16', '11', 'in_stock', '0'],
    'Σ available 7 + 4 = 11 is above Σ thresholds 10 + 0');
  t.is(await redis.exists(k('product:A')), 0, 'a policy change invalidates the product too');
  await db.query('select inventory.set_policy($1, $2, null, 2)', ['A', 'WH2']); // Σ thresholds 12 ≥ Σ available 11
  t.true(await waitFor(async () => (await redis.get(k('stock:A:status'))) === 'low_stock', 10_000));
  t.is(await redis.get(k('stock:A:low_stock')), '1');
  await db.query('select inventory.set_policy($1, $2, 0, 0)', ['A', 'WH1']); // available 14 > 2
  t.true(await waitFor(async () => (await redis.get(k('stock:A:status'))) === 'in_stock', 10_000));
  t.deepEqual(await redis.mget(k('stock:A:warehouse:WH1'), k('stock:A:available'), k('stock:A:low_stock')), ['10', '14', '0']);
  t.deepEqual(await waitForCache(db, redis, prefix), []);
  t.is(await redis.xlen(stream), entriesBefore, 'set_policy makes no movement, so no event');

  t.true(await listener.metric('stockroom_cache_changes_applied_total') >= metricsBefore.applied + 4);
  t.true(await listener.metric('stock_sync_latency_seconds') > metricsBefore.latency, 'sync latency observed');
  t.is(await listener.metric('stock_events_processed_total'), metricsBefore.events + 2);
  const health = listener.consumer.health();
  t.true(health.streaming);
  t.false(health.rebuilding);
  t.truthy(health.appliedLsn);
  t.truthy(health.lastAppliedAt);
  await listener.stop();
  t.false(listener.consumer.health().streaming, 'not streaming once stopped');
});

test('exactly once across broken replication connections: killed mid-traffic, the consumer resumes without gaps or duplicates', async (t) => {
  const skus = ['K1', 'K2', 'K3', 'K4'];
  const warehouses = ['WH1', 'WH2', 'WH3'];
  const stock: Record<string, Record<string, number>> = { ZZ: { WH1: 1 } };
  for (const sku of skus) stock[sku] = { WH1: 40, WH2: 40, WH3: 40 };
  const { db, redis, listener, prefix, stream } = await setup(t, 'consumer_crash', stock);
  t.true(await waitFor(() => listener.consumer.health().streaming, 10_000));
  const before = await lastMovementId(db);
  const killWalsender = async () => (await db.query(`
    select pg_terminate_backend(pid) from pg_stat_activity
    where backend_type = 'walsender' and application_name = 'stockroom listener' and datname = current_database()`)).rowCount ?? 0;

  const tally = new Map<string, number>();
  let kills = 0;
  const killer = (async () => {
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 700));
      // Wait for the consumer to be back before killing it again.
      await waitFor(() => listener.consumer.health().streaming, 10_000);
      kills += await killWalsender();
    }
  })();
  await Promise.all([...[1, 2, 3].map((n) => traffic(db.pool, 2000 + n, 400, skus, warehouses, tally)), killer]);
  t.true(kills >= 3, `killed the replication connection ${kills} times`);
  await sentinel(db, redis, stream, 'ZZ', 'WH1');
  t.deepEqual(await waitForCache(db, redis, prefix, 20_000), []);
  const entries = await readStream(redis, stream);
  t.deepEqual(await eventProblems(movementsAfter(db, before), entries), [], 'exactly one of each event per movement');
  const movements = await movementRows(db, before);
  const low = entries.filter((e) => e.type === 'warehouse.inventory.low_stock').length;
  t.is(entries.length, 2 * movements.length + low);
  t.deepEqual(orderProblems(entries), []);
  t.true(await listener.metric('stockroom_replication_reconnects_total') >= 3);
  t.true(listener.consumer.health().streaming);
  t.log(`movements ${movements.length}; duplicates skipped on replay: ${await listener.metric('stockroom_events_duplicates_total')}; stale rows: ${await listener.metric('stockroom_cache_stale_writes_total')}`);
});

test('events of a multi-statement transaction use the policy in effect at each movement', async (t) => {
  // Each SQL API function is one transaction's worth of work, but a DBA may
  // wrap several in one transaction (psql: BEGIN; ...; COMMIT). Available, and
  // whether a row crossed its threshold, are facts of the moment of the movement.
  const { db, redis, prefix, stream } = await setup(t, 'consumer_policy_txn', { A: { WH1: 10 }, B: { WH1: 10 }, C: { WH1: 10 }, ZZ: { WH1: 1 } });
  await db.query('select inventory.set_policy($1, $2, null, 9)', ['C', 'WH1']);
  const before = await lastMovementId(db);
  const inOneTransaction = async (statements: string[]) => {
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      for (const sql of statements) await client.query(sql);
      await client.query('commit');
    } finally {
      client.release();
    }
  };
  await inOneTransaction([
    `select inventory.adjust('A', 'WH1', -2, 'first')`, // safety 0, threshold 0: available 10 → 8
    `select inventory.set_policy('A', 'WH1', 5, 9)`, // now safety 5, threshold 9: available 3
    `select inventory.adjust('A', 'WH1', -1, 'second')`, // available 3 → 2, already below 9
  ]);
  await inOneTransaction([
    `select inventory.adjust('B', 'WH1', -2, 'x')`, // threshold 0 at the time: 10 → 8 is no alert
    `select inventory.set_policy('B', 'WH1', null, 9)`,
  ]);
  await inOneTransaction([
    `select inventory.adjust('C', 'WH1', -2, 'x')`, // threshold 9 at the time: 10 → 8 crosses it
    `select inventory.set_policy('C', 'WH1', null, 0)`,
  ]);
  await sentinel(db, redis, stream, 'ZZ', 'WH1');
  t.deepEqual(await waitForCache(db, redis, prefix), [], 'the keys are right (they use the final state)');
  const entries = (await readStream(redis, stream)).filter((e) => e.subject !== 'ZZ/WH1');
  const [a1, a2, b, c] = [before + 1, before + 2, before + 3, before + 4];
  const data = (id: string) => entries.find((e) => e.id === id)?.event.data;
  t.deepEqual([data(`${a1}:updated`)?.old, data(`${a1}:updated`)?.new],
    [{ on_hand: 10, reserved: 0, available: 10 }, { on_hand: 8, reserved: 0, available: 8 }], 'A, before the policy change: safety 0');
  t.deepEqual([data(`${a2}:updated`)?.old, data(`${a2}:updated`)?.new],
    [{ on_hand: 8, reserved: 0, available: 3 }, { on_hand: 7, reserved: 0, available: 2 }], 'A, after it: safety 5');
  t.deepEqual(entries.filter((e) => e.type === 'warehouse.inventory.low_stock').map((e) => e.id), [`${c}:low_stock`],
    `low_stock for C (threshold 9 when it went 10 → 8), none for B (threshold 0 then; movement ${b}) nor A`);
});

/** A redis-server of this test's own, without persistence, that can crash and come back on the same port. */
async function crashableRedis(t: ExecutionContext): Promise<{ url: string; start(): Promise<void>; crash(): Promise<void> }> {
  const binary = findExecutable('redis-server');
  if (!binary) throw new Error('redis-server is needed for this test');
  const port = await freePort();
  let child: ChildProcess | undefined;
  const crash = async () => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  };
  t.teardown(crash);
  return {
    url: `redis://127.0.0.1:${port}`,
    crash,
    start: async () => {
      child = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      if (!(await waitFor(() => redisAnswers(port), 10_000))) throw new Error(`redis-server did not start on port ${port}`);
    },
  };
}

test('Redis crashing and coming back empty: nothing is acknowledged meanwhile, then the cache is rebuilt and the stream has every later movement once', async (t) => {
  const server = await crashableRedis(t);
  await server.start();
  const db = await openTestDatabase('consumer_redis_crash');
  const redis = testRedis(server.url);
  let listener: TestListener | undefined;
  t.teardown(async () => {
    await listener?.stop();
    redis.disconnect();
    await db.close();
  });
  await setupCatalog(db, { A: { WH1: 10, WH2: 10 }, B: { WH1: 5 } });
  listener = await startTestListener(db.url, { label: 'consumer_redis_crash', redisUrl: server.url });
  const { prefix, stream, slot } = listener.names;
  await db.query(`select inventory.adjust('A', 'WH1', 1, 'receipt')`);
  t.deepEqual(await waitForCache(db, redis, prefix), []);
  t.true(await waitFor(async () => (await redis.xlen(stream)) === 2, 5_000));

  await server.crash();
  const before = await lastMovementId(db);
  await db.query(`select inventory.adjust('A', 'WH2', -3, 'damaged')`);
  await db.query(`select inventory.reserve('while-down', '[{"sku":"B","warehouse":"WH1","qty":2}]')`);
  // The insert position, not pg_current_wal_lsn(): with synchronous_commit off the commits may not be written yet.
  const committed = parseLsn((await queryOne<{ lsn: string }>(db, 'select pg_current_wal_insert_lsn()::text as lsn')).lsn);
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const confirmed = async () => parseLsn((await queryOne<{ lsn: string }>(db,
    'select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1', [slot])).lsn);
  t.true(await confirmed() < committed, 'changes Redis never got are not acknowledged');
  t.false(listener.consumer.health().streaming);

  await server.start(); // empty: its data died with it
  t.deepEqual(await waitForCache(db, redis, prefix, 30_000), [], 'rebuilt from Postgres');
  t.true(await listener.metric('stockroom_cache_rebuilds_total') >= 2, 'the first build, then the rebuild of the lost data');
  t.true(await waitFor(async () => (await redis.xlen(stream)) === 4, 10_000), 'the events of the two movements made while Redis was down');
  t.deepEqual(await eventProblems(movementsAfter(db, before), await readStream(redis, stream)), []);
  t.true(await waitFor(async () => (await confirmed()) >= committed, 10_000), 'acknowledged once Redis has it');
  await db.query(`select inventory.adjust('B', 'WH1', 1, 'receipt')`);
  t.deepEqual(await waitForCache(db, redis, prefix), []);
  t.true(await waitFor(async () => (await redis.xlen(stream)) === 6, 10_000));
});
