// Model-based property test of the SQL API: fast-check generates a small
// catalog and a program of reserve (named and open lines, idempotency keys),
// confirm, release, extend, "age" (make a hold due), adjust (+/-), set_count
// (with and without compare-and-set), transfer, set_policy and expire_due,
// with some steps run as concurrent batches on separate connections.
//
// Sequential steps: the database must do exactly what a small in-memory model
// says (same outcome or SQLSTATE, same returned values, same stock rows,
// reservation states and lines). Concurrent batches: only allowed SQLSTATEs,
// and — when no due reservation makes SKIP LOCKED expiry legitimately
// nondeterministic — the result must equal the model run in SOME serial order
// of the batch. After every step or batch, the ledger invariants hold.
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import type pg from 'pg';
import { cacheKeys } from '../../src/cache/keys.ts';
import { loadKitDefinitions, loadSkus } from '../../src/cache/loader.ts';
import { encodeRow, kitState, preorderDate, skuTotals } from '../../src/cache/row.ts';
import { CacheWriter } from '../../src/cache/writer.ts';
import { cacheMismatches, testRedis, uniqueNames } from '../helpers/cache.ts';
import { openTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { invariantViolations } from '../helpers/invariants.ts';

const SKUS = ['A', 'B', 'C'] as const;
// W2 and W3 share a priority: open lines then prefer the most available, then the code.
const WAREHOUSES = ['W1', 'W2', 'W3'] as const;
const PRIORITY: Record<Warehouse, number> = { W1: 10, W2: 20, W3: 20 };
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';
const RELEASE_REASONS = ['CANCELLED', 'PAYMENT_FAILED', 'TTL_EXPIRED'] as const;

type Sku = typeof SKUS[number];
type Warehouse = typeof WAREHOUSES[number];
type Status = 'HELD' | 'CONFIRMED' | 'RELEASED' | 'EXPIRED';
interface ReqLine { sku: Sku; warehouse: Warehouse | null; qty: number }

// Generated steps refer to reservations by index (taken modulo those that exist);
// they are resolved to concrete arguments against the model just before they run.
type Op =
  | { kind: 'reserve'; lines: ReqLine[]; orderRef: string; key: string | null }
  | { kind: 'confirm' | 'extend' | 'age'; ref: number }
  // Reserve the rows of a recent hold, more than they have free: short unless that hold (if due) expires.
  | { kind: 'rebuy'; ref: number }
  | { kind: 'release'; ref: number; reason: string }
  | { kind: 'adjust'; sku: Sku; warehouse: Warehouse; delta: number }
  | { kind: 'set_count'; sku: Sku; warehouse: Warehouse; counted: number; expected: 'none' | 'current' | 'stale' }
  | { kind: 'transfer'; sku: Sku; from: Warehouse; to: Warehouse; qty: number }
  | { kind: 'set_policy'; sku: Sku; warehouse: Warehouse; safety: number }
  | { kind: 'expire_due' };
type Step = Op | { kind: 'batch'; ops: Op[] };

type Concrete =
  | { kind: 'reserve'; lines: ReqLine[]; orderRef: string; key: string | null }
  | { kind: 'confirm' | 'extend' | 'age'; id: string }
  | { kind: 'release'; id: string; reason: string }
  | { kind: 'adjust'; sku: Sku; warehouse: Warehouse; delta: number }
  | { kind: 'set_count'; sku: Sku; warehouse: Warehouse; counted: number; expected: number | null }
  | { kind: 'transfer'; sku: Sku; from: Warehouse; to: Warehouse; qty: number }
  | { kind: 'set_policy'; sku: Sku; warehouse: Warehouse; safety: number }
  | { kind: 'expire_due' };

type Outcome = { ok: true; value: string } | { ok: false; code: string };
const ok = (value: string | number): Outcome => ({ ok: true, value: String(value) });
const err = (code: string): Outcome => ({ ok: false, code });
const show = (o: Outcome) => (o.ok ? `ok ${o.value}` : `error ${o.code}`);
const sameOutcome = (a: Outcome, b: Outcome) => show(a) === show(b);

// ---------------------------------------------------------------------------
// The model

interface Row { onHand: number; reserved: number; safety: number }
interface Reservation { id: string; status: Status; lines: Map<string, number>; due: boolean }

const rowKey = (sku: string, warehouse: string) => `${sku}@${warehouse}`;
const splitKey = (key: string) => key.split('@') as [Sku, Warehouse];

/** Lines summed per (sku, warehouse or none), as reserve() does before anything else. */
function groupLines(lines: ReqLine[]): Map<string, ReqLine> {
  const grouped = new Map<string, ReqLine>();
  for (const l of lines) {
    const k = `${l.sku}|${l.warehouse ?? ''}`;
    const g = grouped.get(k);
    grouped.set(k, g ? { ...g, qty: g.qty + l.qty } : { ...l });
  }
  return grouped;
}

/** What tells a retry from a reused idempotency key: order_ref, ttl (always 1 hour here) and the summed lines. */
function requestHash(op: { orderRef: string; lines: ReqLine[] }): string {
  return JSON.stringify([op.orderRef, [...groupLines(op.lines)].map(([k, l]) => `${k}|${l.qty}`).sort()]);
}

class Model {
  rows = new Map<string, Row>();
  reservations = new Map<string, Reservation>();
  order: string[] = []; // reservation ids in creation order
  keys = new Map<string, { id: string; hash: string }>();
  lazyExpiries = 0;

  clone(): Model {
    const m = new Model();
    for (const [k, r] of this.rows) m.rows.set(k, { ...r });
    for (const [k, r] of this.reservations) m.reservations.set(k, { ...r, lines: new Map(r.lines) });
    m.order = [...this.order];
    m.keys = new Map(this.keys);
    m.lazyExpiries = this.lazyExpiries;
    return m;
  }

  available(key: string): number {
    const r = this.rows.get(key);
    return r ? Math.max(r.onHand - r.reserved - r.safety, 0) : 0;
  }

  resolve(op: Op): Concrete {
    const id = (ref: number) => this.order[ref % Math.max(this.order.length, 1)] ?? UNKNOWN_ID;
    // age and rebuy count back from the newest hold (likely still HELD), the others pick any.
    const recent = (ref: number) => this.order[this.order.length - 1 - (ref % Math.max(this.order.length, 1))];
    switch (op.kind) {
      case 'age': return { kind: 'age', id: recent(op.ref) ?? UNKNOWN_ID };
      case 'rebuy': {
        const held = this.reservations.get(recent(op.ref) ?? UNKNOWN_ID);
        const lines: ReqLine[] = held
          ? [...held.lines].map(([key, qty]) => ({ sku: splitKey(key)[0], warehouse: splitKey(key)[1], qty: qty + this.available(key) }))
          : [{ sku: 'A', warehouse: 'W1', qty: 1 }];
        return { kind: 'reserve', lines, orderRef: 'order-rebuy', key: null };
      }
      case 'confirm': case 'extend': return { kind: op.kind, id: id(op.ref) };
      case 'release': return { kind: 'release', id: id(op.ref), reason: op.reason };
      case 'set_count': {
        const current = this.rows.get(rowKey(op.sku, op.warehouse))?.onHand ?? 0;
        const expected = op.expected === 'none' ? null : op.expected === 'current' ? current : current + 1;
        return { ...op, expected };
      }
      default: return op;
    }
  }

  /** Applies one operation as one transaction: all of it, or (on an error) none of it. */
  apply(op: Concrete, newId: string | undefined): Outcome {
    const next = this.clone();
    const outcome = next.step(op, newId);
    if (outcome.ok) Object.assign(this, next);
    return outcome;
  }

  private settle(r: Reservation, status: Exclude<Status, 'HELD'>): void {
    for (const [key, qty] of r.lines) {
      const row = this.rows.get(key)!;
      row.reserved -= qty;
      if (status === 'CONFIRMED') row.onHand -= qty;
    }
    r.status = status;
  }

  /** What reserve() takes from each row, or null when a line is short (mirrors _allocate). */
  private allocate(lines: ReqLine[], slot: string[]): Map<string, number> | null {
    const named = new Map<string, number>();
    for (const l of lines) if (l.warehouse) named.set(rowKey(l.sku, l.warehouse), l.qty);
    const free = (key: string) => Math.max(this.available(key) - (named.get(key) ?? 0), 0);
    let short = false;
    for (const [key, qty] of named) if (qty > (slot.includes(key) ? this.available(key) : 0)) short = true;
    for (const l of lines) {
      if (l.warehouse) continue;
      const total = slot.filter((k) => splitKey(k)[0] === l.sku).reduce((sum, k) => sum + free(k), 0);
      if (l.qty > total) short = true;
    }
    if (short) return null;
    const take = new Map<string, number>();
    for (const key of slot) take.set(key, named.get(key) ?? 0);
    for (const l of lines) {
      if (l.warehouse) continue;
      const candidates = slot.filter((k) => splitKey(k)[0] === l.sku).sort((a, b) => {
        const [, wa] = splitKey(a);
        const [, wb] = splitKey(b);
        return PRIORITY[wa] - PRIORITY[wb] || free(b) - free(a) || (wa < wb ? -1 : wa > wb ? 1 : 0);
      });
      let filledBefore = 0;
      for (const key of candidates) {
        const f = free(key);
        take.set(key, take.get(key)! + Math.min(f, Math.max(l.qty - filledBefore, 0)));
        filledBefore += f;
      }
    }
    for (const [key, qty] of take) if (qty === 0) take.delete(key);
    return take;
  }

  private step(op: Concrete, newId: string | undefined): Outcome {
    switch (op.kind) {
      case 'reserve': {
        const grouped = groupLines(op.lines);
        const hash = requestHash(op);
        if (op.key !== null) {
          const first = this.keys.get(op.key);
          if (first) return first.hash === hash ? ok(first.id) : err('IV006');
        }
        const lines = [...grouped.values()];
        const slot = [...this.rows.keys()].filter((key) => {
          const [sku, warehouse] = splitKey(key);
          return lines.some((l) => l.sku === sku && (l.warehouse === null || l.warehouse === warehouse));
        });
        let take = this.allocate(lines, slot);
        if (!take) {
          // Lazy expiry: due HELD reservations on these rows give their stock back first.
          const due = [...this.reservations.values()].filter((r) => r.status === 'HELD' && r.due
            && [...r.lines.keys()].some((k) => slot.includes(k)));
          for (const r of due) this.settle(r, 'EXPIRED');
          if (due.length > 0) {
            this.lazyExpiries++;
            take = this.allocate(lines, slot);
          }
        }
        if (!take) return err('IV001');
        const id = newId ?? 'id-the-database-did-not-return';
        for (const [key, qty] of take) this.rows.get(key)!.reserved += qty;
        this.reservations.set(id, { id, status: 'HELD', lines: take, due: false });
        this.order.push(id);
        if (op.key !== null) this.keys.set(op.key, { id, hash });
        return ok(id);
      }
      case 'confirm': {
        const r = this.reservations.get(op.id);
        if (!r) return err('IV004');
        if (r.status === 'CONFIRMED') return ok('CONFIRMED');
        if (r.status !== 'HELD' || r.due) return err('IV003');
        this.settle(r, 'CONFIRMED');
        return ok(r.status);
      }
      case 'release': {
        const r = this.reservations.get(op.id);
        if (!r) return err('IV004');
        if (r.status === 'RELEASED' || r.status === 'EXPIRED') return ok(r.status);
        if (r.status === 'CONFIRMED') return err('IV003');
        this.settle(r, op.reason === 'TTL_EXPIRED' ? 'EXPIRED' : 'RELEASED');
        return ok(r.status);
      }
      case 'extend': {
        const r = this.reservations.get(op.id);
        if (!r) return err('IV004');
        if (r.status !== 'HELD' || r.due) return err('IV003');
        return ok('HELD');
      }
      case 'age': {
        const r = this.reservations.get(op.id);
        if (r) r.due = true;
        return ok('');
      }
      case 'adjust': {
        const key = rowKey(op.sku, op.warehouse);
        const row = this.rows.get(key) ?? { onHand: 0, reserved: 0, safety: 0 };
        if (row.onHand + op.delta < row.reserved) return err('IV002');
        row.onHand += op.delta;
        this.rows.set(key, row);
        return ok(`${row.onHand}/${row.reserved}`);
      }
      case 'set_count': {
        const key = rowKey(op.sku, op.warehouse);
        const row = this.rows.get(key) ?? { onHand: 0, reserved: 0, safety: 0 };
        this.rows.set(key, row);
        if (op.expected !== null && row.onHand !== op.expected) return err('IV007');
        if (op.counted < row.reserved) return err('IV002');
        row.onHand = op.counted;
        return ok(`${row.onHand}/${row.reserved}`);
      }
      case 'transfer': {
        const from = this.rows.get(rowKey(op.sku, op.from));
        if (!from || from.onHand - op.qty < from.reserved) return err('IV002');
        const to = this.rows.get(rowKey(op.sku, op.to)) ?? { onHand: 0, reserved: 0, safety: 0 };
        this.rows.set(rowKey(op.sku, op.to), to);
        from.onHand -= op.qty;
        to.onHand += op.qty;
        return ok(`${from.onHand}/${to.onHand}`);
      }
      case 'set_policy': {
        const key = rowKey(op.sku, op.warehouse);
        const row = this.rows.get(key) ?? { onHand: 0, reserved: 0, safety: 0 };
        row.safety = op.safety;
        this.rows.set(key, row);
        return ok(`${row.onHand}/${row.reserved}`);
      }
      case 'expire_due': {
        const due = [...this.reservations.values()].filter((r) => r.status === 'HELD' && r.due);
        for (const r of due) this.settle(r, 'EXPIRED');
        return ok(due.length);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// The database side

function sqlstate(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : `NO_SQLSTATE(${(error as Error)?.message ?? String(error)})`;
}

async function execute(client: pg.PoolClient, ns: string, op: Concrete): Promise<Outcome> {
  const sku = (name: Sku) => ns + name;
  const row = async (sql: string, args: unknown[]) => {
    const { rows } = await client.query(sql, args);
    return rows[0] as Record<string, unknown>;
  };
  try {
    switch (op.kind) {
      case 'reserve': {
        const lines = op.lines.map((l) => (l.warehouse ? { sku: sku(l.sku), warehouse: l.warehouse, qty: l.qty } : { sku: sku(l.sku), qty: l.qty }));
        return ok(String((await row(`select id from inventory.reserve($1, $2::jsonb, '1 hour', $3)`,
          [op.orderRef, JSON.stringify(lines), op.key === null ? null : ns + op.key])).id));
      }
      case 'confirm': return ok(String((await row('select status from inventory.confirm($1)', [op.id])).status));
      case 'release': return ok(String((await row('select status from inventory.release($1, $2)', [op.id, op.reason])).status));
      case 'extend': return ok(String((await row(`select status from inventory.extend($1, '1 hour')`, [op.id])).status));
      case 'age':
        // Time travel for the test: the hold is now past its expires_at.
        await client.query(`update inventory.reservations set expires_at = now() - interval '1 minute' where id = $1`, [op.id]);
        return ok('');
      case 'adjust': {
        const r = await row(`select on_hand, reserved from inventory.adjust($1, $2, $3, 'model')`, [sku(op.sku), op.warehouse, op.delta]);
        return ok(`${r.on_hand}/${r.reserved}`);
      }
      case 'set_count': {
        const r = await row(`select on_hand, reserved from inventory.set_count($1, $2, $3, 'model', $4)`, [sku(op.sku), op.warehouse, op.counted, op.expected]);
        return ok(`${r.on_hand}/${r.reserved}`);
      }
      case 'transfer': {
        const { rows } = await client.query<{ on_hand: number }>(`select on_hand from inventory.transfer($1, $2, $3, $4, 'model')`, [sku(op.sku), op.from, op.to, op.qty]);
        return ok(rows.map((r) => r.on_hand).join('/'));
      }
      case 'set_policy': {
        const r = await row('select on_hand, reserved from inventory.set_policy($1, $2, $3)', [sku(op.sku), op.warehouse, op.safety]);
        return ok(`${r.on_hand}/${r.reserved}`);
      }
      case 'expire_due': return ok(String((await row('select inventory.expire_due() as n', [])).n));
    }
  } catch (error) {
    return err(sqlstate(error));
  }
}

interface DbState {
  rows: Map<string, Row>;
  reservations: Map<string, { status: Status; due: boolean; lines: Map<string, number> }>;
}

/** This run's stock rows and reservations (its SKUs are named ns + A, B, C). */
async function readState(client: pg.PoolClient, ns: string): Promise<DbState> {
  const rows = await client.query<{ sku: string; code: string; on_hand: number; reserved: number; safety_stock: number }>(`
    select substr(p.sku, length($1) + 1) as sku, w.code, s.on_hand, s.reserved, s.safety_stock
    from inventory.stock_levels s join inventory.products p on p.id = s.product_id
    join inventory.warehouses w on w.id = s.warehouse_id
    where starts_with(p.sku, $1)`, [ns]);
  const reservations = await client.query<{ id: string; status: Status; due: boolean; lines: Record<string, number> | null }>(`
    select r.id, r.status, r.expires_at <= now() as due,
           (select json_object_agg(substr(p.sku, length($1) + 1) || '@' || w.code, l.qty)
            from inventory.reservation_lines l join inventory.products p on p.id = l.product_id
            join inventory.warehouses w on w.id = l.warehouse_id where l.reservation_id = r.id) as lines
    from inventory.reservations r
    where exists (select from inventory.reservation_lines l join inventory.products p on p.id = l.product_id
                  where l.reservation_id = r.id and starts_with(p.sku, $1))`, [ns]);
  return {
    rows: new Map(rows.rows.map((r) => [rowKey(r.sku, r.code), { onHand: r.on_hand, reserved: r.reserved, safety: r.safety_stock }])),
    reservations: new Map(reservations.rows.map((r) => [r.id, { status: r.status, due: r.due, lines: new Map(Object.entries(r.lines ?? {})) }])),
  };
}

/** Differences between the model and the database, empty when they agree. */
function differences(model: Model, db: DbState): string[] {
  const out: string[] = [];
  const fmtRow = (r: Row | undefined) => (r ? `on_hand ${r.onHand} reserved ${r.reserved} safety ${r.safety}` : 'no row');
  for (const key of new Set([...model.rows.keys(), ...db.rows.keys()])) {
    const m = model.rows.get(key);
    const d = db.rows.get(key);
    if (fmtRow(m) !== fmtRow(d)) out.push(`${key}: model ${fmtRow(m)}, database ${fmtRow(d)}`);
  }
  const fmtRes = (r: { status: Status; due: boolean; lines: Map<string, number> } | undefined) => (r
    ? `${r.status}${r.due ? ' due' : ''} ${[...r.lines].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, q]) => `${k}×${q}`).join(',')}`
    : 'absent');
  for (const id of new Set([...model.reservations.keys(), ...db.reservations.keys()])) {
    const m = fmtRes(model.reservations.get(id));
    const d = fmtRes(db.reservations.get(id));
    if (m !== d) out.push(`reservation ${id}: model ${m}, database ${d}`);
  }
  return out;
}

// SQLSTATEs an operation may raise when it races others (beyond what a serial order would give).
const ALLOWED: Record<Concrete['kind'], string[]> = {
  reserve: ['IV001', 'IV006'], confirm: ['IV003', 'IV004'], release: ['IV003', 'IV004'], extend: ['IV003', 'IV004'],
  age: [], adjust: ['IV002'], set_count: ['IV002', 'IV007'], transfer: ['IV002'], set_policy: [], expire_due: [],
};

function* permutations<T>(items: T[]): Generator<T[]> {
  if (items.length <= 1) { yield items; return; }
  for (let i = 0; i < items.length; i++) {
    for (const rest of permutations([...items.slice(0, i), ...items.slice(i + 1)])) yield [items[i]!, ...rest];
  }
}

// ---------------------------------------------------------------------------
// Generators

const sku = fc.constantFrom(...SKUS);
const warehouse = fc.constantFrom(...WAREHOUSES);
const reserveOp = fc.record({
  kind: fc.constant('reserve' as const),
  lines: fc.array(fc.record({ sku, warehouse: fc.option(warehouse, { nil: null, freq: 3 }), qty: fc.integer({ min: 1, max: 6 }) }),
    { minLength: 1, maxLength: 4 }),
  orderRef: fc.constantFrom('order-1', 'order-2'),
  key: fc.option(fc.constantFrom('key-1', 'key-2', 'key-3'), { nil: null, freq: 2 }),
});
const ref = fc.nat({ max: 1000 });
const concurrentOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: reserveOp },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('confirm' as const), ref }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), ref, reason: fc.constantFrom(...RELEASE_REASONS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('extend' as const), ref }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('adjust' as const), sku, warehouse,
    delta: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.integer({ min: -6, max: -1 })) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('set_count' as const), sku, warehouse, counted: fc.integer({ min: 0, max: 8 }),
    expected: fc.constantFrom('none' as const, 'current' as const, 'stale' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('transfer' as const), sku,
    from: warehouse, to: warehouse, qty: fc.integer({ min: 1, max: 5 }) }).filter((t) => t.from !== t.to) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('set_policy' as const), sku, warehouse, safety: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'expire_due' as const }) },
);
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 12, arbitrary: concurrentOp },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('age' as const), ref: fc.nat({ max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('batch' as const), ops: fc.array(concurrentOp, { minLength: 2, maxLength: 4 }) }) },
);
// Units per stock row of the initial catalog (0: no row), in SKUS × WAREHOUSES order.
const initialStock = fc.array(fc.integer({ min: 0, max: 10 }), { minLength: SKUS.length * WAREHOUSES.length, maxLength: SKUS.length * WAREHOUSES.length });
// Now and then: make a recent hold due, then ask for its rows' stock (reserve's lazy expiry).
const ageAndRebuy = fc.nat({ max: 3 }).map((r): Step[] => [{ kind: 'age', ref: r }, { kind: 'rebuy', ref: r }]);
const program = fc.array(fc.oneof({ weight: 12, arbitrary: step.map((s) => [s]) }, { weight: 1, arbitrary: ageAndRebuy }),
  { minLength: 5, maxLength: 35 }).map((chunks) => chunks.flat());

// ---------------------------------------------------------------------------
// The property

interface Stats { outcomes: Map<string, number>; lazyExpiries: number; batchesSerialized: number; batchesResynced: number; runs: number }

// One database for all runs (creating one costs more than a whole run): each run has its own
// SKUs and idempotency keys, and leaves no HELD hold behind (expire_due counts every due hold).
// After a failed run the database may be tainted, so the next run starts on a fresh one.
let shared: (TestDatabase & { close(): Promise<void> }) | undefined;
let runCounter = 0;

async function runProgram(initial: number[], steps: Step[], stats: Stats): Promise<void> {
  shared ??= await openTestDatabase('model', { max: 6 });
  const db = shared;
  const ns = `r${++runCounter}-`;
  const clients: pg.PoolClient[] = [];
  const count = (o: Outcome, kind: string) => {
    const key = `${kind} ${o.ok ? 'ok' : o.code}`;
    stats.outcomes.set(key, (stats.outcomes.get(key) ?? 0) + 1);
  };
  let passed = false;
  try {
    for (let i = 0; i < 4; i++) clients.push(await db.pool.connect());
    const main = clients[0]!;
    const model = new Model();
    for (const code of WAREHOUSES) await main.query('select inventory.upsert_warehouse($1, null, null, $2)', [code, PRIORITY[code]]);
    for (const [i, s] of SKUS.entries()) {
      await main.query('select inventory.upsert_product($1)', [ns + s]);
      for (const [j, w] of WAREHOUSES.entries()) {
        const units = initial[i * WAREHOUSES.length + j] ?? 0;
        if (units === 0) continue;
        await main.query(`select inventory.adjust($1, $2, $3, 'receipt')`, [ns + s, w, units]);
        model.rows.set(rowKey(s, w), { onHand: units, reserved: 0, safety: 0 });
      }
    }
    const checkInvariants = async (where: string) => {
      const problems = await invariantViolations(main);
      if (problems.length > 0) throw new Error(`${where}: ledger invariants broken:\n${problems.join('\n')}`);
    };

    for (const [n, s] of steps.entries()) {
      if (s.kind !== 'batch') {
        const op = model.resolve(s);
        const actual = await execute(main, ns, op);
        const expected = model.apply(op, actual.ok ? actual.value : undefined);
        count(actual, op.kind);
        if (!sameOutcome(actual, expected)) {
          throw new Error(`step ${n} ${JSON.stringify(op)}: model says ${show(expected)}, database says ${show(actual)}`);
        }
        const diff = differences(model, await readState(main, ns));
        if (diff.length > 0) throw new Error(`step ${n} ${JSON.stringify(op)}: state differs:\n${diff.join('\n')}`);
        await checkInvariants(`step ${n} ${JSON.stringify(op)}`);
        continue;
      }

      // A concurrent batch: each operation on its own connection, all started together.
      const ops = s.ops.map((o) => model.resolve(o));
      const outcomes = await Promise.all(ops.map((op, i) => execute(clients[i]!, ns, op)));
      ops.forEach((op, i) => count(outcomes[i]!, `${op.kind} (batch)`));
      const where = `step ${n} batch ${JSON.stringify(ops)} → ${outcomes.map(show).join(' | ')}`;
      await checkInvariants(where);
      ops.forEach((op, i) => {
        const o = outcomes[i]!;
        if (!o.ok && !ALLOWED[op.kind].includes(o.code)) throw new Error(`${where}: ${op.kind} may not raise ${o.code}`);
      });
      const state = await readState(main, ns);

      // Lazy expiry takes a due hold's other rows with SKIP LOCKED (waiting there could deadlock),
      // so with due holds around no serial order has to match.
      const dueHeld = [...model.reservations.values()].some((r) => r.status === 'HELD' && r.due);
      if (!dueHeld) {
        let matched: Model | undefined;
        const tried: string[] = [];
        for (const order of permutations(ops.map((_, i) => i))) {
          const candidate = model.clone();
          const predicted = order.map((i) => {
            const actual = outcomes[i]!;
            return candidate.apply(ops[i]!, actual.ok ? actual.value : undefined);
          });
          const outcomesMatch = order.every((i, k) => sameOutcome(predicted[k]!, outcomes[i]!));
          const diff = outcomesMatch ? differences(candidate, state) : [];
          if (outcomesMatch && diff.length === 0) { matched = candidate; break; }
          if (tried.length < 6) {
            tried.push(`order ${order.join(',')}: ${predicted.map(show).join(' | ')}${diff.length ? `; ${diff.join('; ')}` : ''}`);
          }
        }
        if (!matched) throw new Error(`${where}: matches no serial order of the batch:\n${tried.join('\n')}`);
        Object.assign(model, matched);
        stats.batchesSerialized++;
      } else {
        // Take the database's word for it, keeping the idempotency keys the batch claimed.
        model.rows = new Map([...state.rows].map(([k, r]) => [k, { ...r }]));
        for (const [id, r] of state.reservations) {
          model.reservations.set(id, { id, status: r.status, due: r.due, lines: new Map(r.lines) });
          if (!model.order.includes(id)) model.order.push(id);
        }
        ops.forEach((op, i) => {
          const o = outcomes[i]!;
          if (op.kind === 'reserve' && o.ok && op.key !== null && !model.keys.has(op.key)) {
            model.keys.set(op.key, { id: o.value, hash: requestHash(op) });
          }
        });
        stats.batchesResynced++;
      }
    }
    stats.lazyExpiries += model.lazyExpiries;
    stats.runs++;
    // Leave nothing HELD for the next run's expire_due to find.
    await main.query(`select inventory.release(id) from inventory.reservations where status = 'HELD' and id = any ($1::uuid[])`,
      [[...model.reservations.keys()]]);
    passed = true;
  } finally {
    for (const c of clients) c.release();
    if (!passed) {
      shared = undefined;
      await db.close();
    }
  }
}

test('the SQL API behaves like the model, sequentially and in concurrent batches', async (t) => {
  const stats: Stats = { outcomes: new Map(), lazyExpiries: 0, batchesSerialized: 0, batchesResynced: 0, runs: 0 };
  const started = Date.now();
  try {
    await fc.assert(fc.asyncProperty(initialStock, program, (initial, steps) => runProgram(initial, steps, stats)), {
      numRuns: 80,
      includeErrorInReport: true, // the report then says what differed, not only the counterexample
      // Shrinking may make a fresh database per attempt: stop it before ava's timeout does.
      plugins: [fc.interruptAfterTimeLimit(80_000)],
    });
  } finally {
    await shared?.close();
    shared = undefined;
  }
  const outcomes = [...stats.outcomes].sort(([a], [b]) => (a < b ? -1 : 1));
  t.log(`${stats.runs} runs in ${((Date.now() - started) / 1000).toFixed(1)} s; ${stats.batchesSerialized} batches matched a serial order, `
    + `${stats.batchesResynced} resynced; ${stats.lazyExpiries} lazy expiries`);
  t.log(outcomes.map(([k, v]) => `${k}: ${v}`).join(', '));
  // The generators must actually reach the interesting paths.
  const seen = (key: string) => (stats.outcomes.get(key) ?? 0) > 0;
  for (const key of ['reserve ok', 'reserve IV001', 'reserve IV006', 'confirm ok', 'confirm IV003', 'release ok', 'adjust IV002',
    'set_count IV007', 'transfer ok', 'expire_due ok']) {
    t.true(seen(key), `reached "${key}"`);
  }
  t.true(stats.lazyExpiries > 0, 'reserve expired due holds lazily at least once');
  t.true(stats.batchesSerialized > 0, 'some concurrent batches were checked against serial orders');
});

// ---------------------------------------------------------------------------
// The kit rule, stated three times: in SQL (inventory._kit_rows, what stock()
// and kit_stock() show), in TypeScript (row.ts kitState) and in the Lua the
// cache recomputes kits with (row.ts LUA_KIT_FUNCTIONS, run by the apply
// script). Random kits over random component rows (some warehouses without a
// row, safety stock, versions) must get one answer from all three: per
// warehouse and in total, on_hand, available, version, and the status.

const KIT_WAREHOUSES = ['KW1', 'KW2', 'KW3'];
const componentRow = fc.record({ onHand: fc.nat(30), reserved: fc.nat(30), safety: fc.nat(6), version: fc.integer({ min: 1, max: 10_000 }) });
const kitCase = fc.record({
  threshold: fc.nat(12),
  components: fc.array(fc.record({
    qty: fc.integer({ min: 1, max: 5 }),
    rows: fc.tuple(...KIT_WAREHOUSES.map(() => fc.option(componentRow, { nil: undefined }))),
  }), { minLength: 1, maxLength: 3 }),
});

/** A database with the KIT_WAREHOUSES and a cache writer of its own prefix, both gone when the test ends. */
async function cacheRuleFixture(t: ExecutionContext, label: string) {
  const db = await openTestDatabase(label);
  const redis = testRedis();
  const names = uniqueNames(label);
  const writer = new CacheWriter(redis, cacheKeys(names.prefix), { name: names.stream, maxLength: 100 });
  t.teardown(async () => {
    const doomed = await redis.keys(`${names.prefix}*`);
    if (doomed.length) await redis.del(...doomed);
    redis.disconnect();
    await db.close();
  });
  for (const code of KIT_WAREHOUSES) await db.query(`select inventory.upsert_warehouse($1, $1, null, 10)`, [code]);
  return { db, redis, writer };
}

test('the kit rule of the cache (TypeScript and Lua) gives what inventory._kit_rows and kit_stock give', async (t) => {
  const { db, redis, writer } = await cacheRuleFixture(t, 'kit_rule');
  let run = 0;
  let checked = 0;
  await fc.assert(fc.asyncProperty(kitCase, async ({ threshold, components }) => {
    run++;
    const kit = `KIT${run}`;
    const skus = components.map((_, i) => `KC${run}-${i}`);
    for (const sku of [kit, ...skus]) await db.query('select inventory.upsert_product($1, $1)', [sku]);
    for (const [i, c] of components.entries()) {
      for (const [w, row] of c.rows.entries()) {
        if (!row) continue;
        await db.query(`
          insert into inventory.stock_levels (product_id, warehouse_id, on_hand, reserved, safety_stock, version)
          select p.id, w.id, $3, $4, $5, $6 from inventory.products p, inventory.warehouses w where p.sku = $1 and w.code = $2`,
        [skus[i], KIT_WAREHOUSES[w], row.onHand, Math.min(row.reserved, row.onHand), row.safety, row.version]);
      }
    }
    await db.query('select inventory.set_kit($1, $2::jsonb, $3)', [kit, JSON.stringify(skus.map((sku, i) => ({ sku, qty: components[i]!.qty }))), threshold]);

    // SQL
    const { rows: sql } = await db.query<{ warehouse: string | null; on_hand: number; available: number; version: string }>(`
      select w.code as warehouse, r.on_hand, r.available, r.version::text as version
      from inventory.products p cross join lateral inventory._kit_rows(array[p.id]) r left join inventory.warehouses w on w.id = r.warehouse_id
      where p.sku = $1 order by w.code nulls first`, [kit]);
    const { rows: [sqlTotal] } = await db.query<{ status: string }>(`select status from inventory.kit_stock(array[$1]) where warehouse is null`, [kit]);
    const expectedRows = sql.filter((r) => r.warehouse !== null).map((r) => [r.warehouse, `${r.version}:${r.on_hand}:${r.available}`]);
    const expectedTotal = { onHand: sql[0]!.on_hand, available: sql[0]!.available, version: sql[0]!.version, status: sqlTotal!.status };

    // TypeScript, from the component rows as the cache loads them
    const [definition] = await loadKitDefinitions(db.pool, { kits: [kit] });
    const loaded = await loadSkus(db.pool, skus);
    const rowsOf = (sku: string) => new Map((loaded.get(sku) ?? []).map((r) => [r.warehouse, r]));
    const ts = kitState(definition!, definition!.components.map((c) => ({ qty: c.qty, rows: rowsOf(c.sku) })));
    const tsRows = [...ts.rows].map(([code, r]) => [code, `${r.version}:${r.onHand}:${r.available}`]);
    const tsTotal = { onHand: ts.totals.total, available: ts.totals.available, version: ts.mark.split(':')[1], status: ts.totals.status };

    // Lua, from the same rows written to Redis
    await writer.apply([...loaded.values()].flat(), []);
    await writer.recomputeKits([definition!], { force: true });
    const k = writer.keys;
    const hash = await redis.hgetall(k.rows(kit));
    const luaRows = Object.entries(hash).sort(([a], [b]) => (a < b ? -1 : 1)).map(([code, entry]) => {
      const [version, onHand, , available] = entry.split(':');
      return [code, `${version}:${onHand}:${available}`];
    });
    const [total, available, status, lowStock, sums, mark] = await redis.mget(k.total(kit), k.available(kit), k.status(kit), k.lowStock(kit), k.sums(kit), k.kit(kit));
    const luaTotal = { onHand: Number(total), available: Number(available), version: mark?.split(':')[1], status };
    for (const [code, entry] of Object.entries(hash)) {
      if (await redis.get(k.warehouse(kit, code)) !== entry.split(':')[3]) throw new Error(`${kit} ${code}: warehouse key differs from its entry`);
      if (entry !== encodeRow(ts.rows.get(code)!)) throw new Error(`${kit} ${code}: Lua entry ${entry}, TypeScript ${encodeRow(ts.rows.get(code)!)}`);
    }

    const show = (x: unknown) => JSON.stringify(x);
    if (show(tsRows) !== show(expectedRows) || show(tsTotal) !== show(expectedTotal)) {
      throw new Error(`TypeScript ${show({ tsRows, tsTotal })} differs from SQL ${show({ expectedRows, expectedTotal })}`);
    }
    if (show(luaRows) !== show(expectedRows) || show(luaTotal) !== show(expectedTotal)) {
      throw new Error(`Lua ${show({ luaRows, luaTotal })} differs from SQL ${show({ expectedRows, expectedTotal })}`);
    }
    if (lowStock !== (status === 'low_stock' ? '1' : '0') || sums !== `${total}:${available}:${threshold}:0:0:0:0`) throw new Error(`${kit}: low_stock ${lowStock}, sums ${sums}`);
    checked++;
  }), { numRuns: 25 });
  t.is(checked, 25);
});

// Preorder dates: leap days, a century that is not a leap year, the last
// second of a year, and fractions of a second (the cache keeps whole seconds).
const PREORDER_DATES = ['2028-02-29 23:59:59.999+00', '2100-03-01 00:00:00.5+00', '2031-12-31 23:59:59+00', '2400-02-29 12:00:00+00', '2027-06-15 08:30:00+02'];
const policyRow = fc.record({
  onHand: fc.nat(4), reserved: fc.nat(4), safety: fc.nat(2), threshold: fc.nat(3),
  policy: fc.constantFrom('DENY', 'BACKORDER', 'PREORDER'), limit: fc.nat(4), waiting: fc.nat(4), date: fc.constantFrom(...PREORDER_DATES.keys()),
});
const statusCase = fc.record({
  before: fc.tuple(...KIT_WAREHOUSES.map(() => fc.option(policyRow, { nil: undefined }))),
  after: fc.tuple(...KIT_WAREHOUSES.map(() => fc.option(policyRow, { nil: undefined }))),
});

// One case per status besides the random ones (random rows met all five in most runs, not all).
const statusRow = (onHand: number, threshold: number, policy: 'DENY' | 'BACKORDER' | 'PREORDER', limit = 0) =>
  ({ onHand, reserved: 0, safety: 0, threshold, policy, limit, waiting: 0, date: 0 });
type StatusCase = typeof statusCase extends fc.Arbitrary<infer T> ? T : never;
// Rows in KW1 only (KIT_WAREHOUSES: three).
const inKw1 = (row: ReturnType<typeof statusRow>): StatusCase['before'] => [row, undefined, undefined];
const STATUS_EXAMPLES: Array<[StatusCase]> = [
  [{ before: inKw1(statusRow(4, 0, 'DENY')), after: inKw1(statusRow(0, 0, 'BACKORDER', 3)) }],   // in_stock, then backorder
  [{ before: inKw1(statusRow(2, 3, 'DENY')), after: inKw1(statusRow(0, 0, 'PREORDER', 2)) }],    // low_stock, then preorder
  [{ before: inKw1(statusRow(0, 0, 'DENY')), after: inKw1(statusRow(0, 0, 'DENY')) }],           // out_of_stock
  [{ before: [undefined, undefined, undefined], after: [undefined, undefined, undefined] }],        // no rows: no keys
];

test('the catalog status and preorder date (TypeScript, Lua recomputing, Lua moved by the stream) are what rows with backorder policies make of them', async (t) => {
  const { db, redis, writer } = await cacheRuleFixture(t, 'status_rule');
  type PolicyRow = typeof policyRow extends fc.Arbitrary<infer T> ? T : never;
  const write = async (sku: string, rows: ReadonlyArray<PolicyRow | undefined>, version: number) => {
    for (const [w, row] of rows.entries()) {
      if (!row) continue;
      const waiting = row.policy === 'DENY' ? 0 : Math.min(row.waiting, row.limit);
      await db.query(`
        insert into inventory.stock_levels (product_id, warehouse_id, on_hand, reserved, safety_stock, low_stock_threshold, version,
                                            backorder_policy, backorder_limit, backordered, preorder_until)
        select p.id, w.id, $3, $4, $5, $6, $7, $8, $9, $10, $11 from inventory.products p, inventory.warehouses w where p.sku = $1 and w.code = $2
        on conflict (product_id, warehouse_id) do update set on_hand = excluded.on_hand, reserved = excluded.reserved, safety_stock = excluded.safety_stock,
          low_stock_threshold = excluded.low_stock_threshold, version = excluded.version, backorder_policy = excluded.backorder_policy,
          backorder_limit = excluded.backorder_limit, backordered = excluded.backordered, preorder_until = excluded.preorder_until`,
      [sku, KIT_WAREHOUSES[w], row.onHand, Math.min(row.reserved, row.onHand), row.safety, row.threshold, version,
        row.policy, row.policy === 'DENY' ? 0 : row.limit, waiting, row.policy === 'PREORDER' ? PREORDER_DATES[row.date] : null]);
    }
  };
  const statuses = new Set<string>();
  let run = 0;
  await fc.assert(fc.asyncProperty(statusCase, async ({ before, after }) => {
    run++;
    const sku = `ST${run}`;
    await db.query('select inventory.upsert_product($1, $1)', [sku]);
    // Lua recomputing (a sku's first write has no sums to move), then moved by a change as the stream moves it.
    for (const [rows, version, shiftSums] of [[before, 1, false], [after, 2, true]] as const) {
      await write(sku, rows, version);
      const loaded = (await loadSkus(db.pool, [sku])).get(sku)!;
      await writer.apply(loaded, [], undefined, undefined, { shiftSums });
      const problems = (await cacheMismatches(db, redis, writer.keys)).filter((p) => p.includes(`:${sku}:`));
      if (problems.length > 0) throw new Error(`${sku} (${shiftSums ? 'moved' : 'recomputed'}): ${problems.join('; ')}`);
      const k = writer.keys;
      const [status, date, sums] = await redis.mget(k.status(sku), k.preorderUntil(sku), k.sums(sku));
      if (loaded.length === 0) {
        // No stock rows (both phases may leave every warehouse out): no keys, as for any such product.
        if (status !== null || date !== null || sums !== null) throw new Error(`${sku}: keys without rows: ${status} ${date} ${sums}`);
        continue;
      }
      // TypeScript (cachedStock's fallback and verify): the same keys.
      const ts = skuTotals(loaded);
      if (ts.status !== status || ts.preorderUntil !== date || ts.sums !== sums) {
        throw new Error(`${sku}: TypeScript ${JSON.stringify(ts)}, Lua ${JSON.stringify({ status, date, sums })}`);
      }
      statuses.add(ts.status);
    }
  }), { numRuns: 30, examples: STATUS_EXAMPLES });
  t.true(run >= 30);
  t.deepEqual([...statuses].sort(), ['backorder', 'in_stock', 'low_stock', 'out_of_stock', 'preorder'], 'every status was met');
  // The Lua date for years JavaScript's toISOString writes differently.
  const far = Date.UTC(12_000, 0, 1, 0, 0, 1) / 1000;
  await writer.apply([{ sku: 'FAR', warehouse: 'W1', version: '1', onHand: 0, reserved: 0, available: 0, lowStockThreshold: 0, room: 1, preorderUntil: far, unavailable: 0 }], []);
  t.is(await redis.get(writer.keys.preorderUntil('FAR')), preorderDate(far));
  t.is(preorderDate(far), '12000-01-01T00:00:01Z');
});
