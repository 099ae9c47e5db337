// Concurrency tests: many Postgres sessions racing through the SQL API. Each
// "client" is its own checked-out connection, all connected before any starts
// (a barrier), so Postgres really sees N sessions contending for the same rows.
// What must hold under any interleaving: no oversell, no deadlock (40P01), no
// check violation (23514), no serialization failure (40001), no double
// settlement, and the ledger invariants (checked after every test too).
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import type pg from 'pg';
import { useDatabase, type DatabaseContext, type TestDatabase } from '../helpers/database.ts';
import { queryOne, setupCatalog, stockOf } from '../helpers/inventory.ts';
import { invariantViolations, type Queryable } from '../helpers/invariants.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

// ---------------------------------------------------------------------------
// Local helpers

type Client = pg.PoolClient;
interface Line { sku: string; warehouse?: string; qty: number }
interface ReservationRow { id: string; status: string; release_reason: string | null; expires_at: Date }

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const randomInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
function pick<T>(items: readonly T[]): T {
  const item = items[Math.floor(Math.random() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}
function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** SQLSTATE of a failed query, or a marker for a non-database error. */
function sqlstate(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : `NO_SQLSTATE(${(error as Error)?.message ?? String(error)})`;
}

/** Counts error codes per operation and remembers any the operation may not raise. */
class ErrorTally {
  readonly counts = new Map<string, number>();
  readonly unexpected: string[] = [];
  readonly okCounts = new Map<string, number>();

  ok(operation: string): void {
    this.okCounts.set(operation, (this.okCounts.get(operation) ?? 0) + 1);
  }

  fail(operation: string, error: unknown, allowed: readonly string[]): string {
    const code = sqlstate(error);
    const key = `${operation}:${code}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    if (!allowed.includes(code) && this.unexpected.length < 20) {
      this.unexpected.push(`${operation} raised ${code}: ${(error as Error)?.message}`);
    }
    return code;
  }

  codes(): Set<string> {
    return new Set([...this.counts.keys()].map((k) => k.slice(k.indexOf(':') + 1)));
  }

  summary(): string {
    const ok = [...this.okCounts].map(([k, v]) => `${k} ok ${v}`).join(', ');
    const failed = [...this.counts].map(([k, v]) => `${k} ${v}`).join(', ');
    return `${ok}; errors: ${failed || 'none'}`;
  }
}

/** Checks out n separate connections and makes sure each is live. */
async function checkoutClients(db: TestDatabase, n: number): Promise<Client[]> {
  const clients = await Promise.all(Array.from({ length: n }, () => db.pool.connect()));
  await Promise.all(clients.map((c) => c.query('select 1')));
  return clients;
}

function releaseAll(clients: Client[], destroy = false): void {
  for (const c of clients) c.release(destroy);
}

/** Runs body on every client at once: no client starts before all have arrived at the barrier. */
async function race<T>(clients: Client[], body: (client: Client, index: number) => Promise<T>): Promise<T[]> {
  let arrived = 0;
  let open!: () => void;
  const barrier = new Promise<void>((resolve) => { open = resolve; });
  return Promise.all(clients.map(async (client, index) => {
    arrived++;
    if (arrived === clients.length) open();
    await barrier;
    return body(client, index);
  }));
}

async function reserve(client: Queryable, orderRef: string, lines: Line[], ttl = '1 hour', key: string | null = null): Promise<ReservationRow> {
  return queryOne<ReservationRow>(client, 'select * from inventory.reserve($1, $2::jsonb, $3::interval, $4)',
    [orderRef, JSON.stringify(lines), ttl, key]);
}

/** Waits until a backend is blocked on a lock (so the next step really races with it). */
async function waitUntilBlocked(db: Queryable, pid: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const { rows } = await db.query<{ wait_event_type: string | null }>(
      'select wait_event_type from pg_stat_activity where pid = $1', [pid]);
    if (rows[0]?.wait_event_type === 'Lock') return;
    await sleep(10);
  }
  throw new Error(`backend ${pid} never blocked on a lock`);
}

async function backendPid(client: Client): Promise<number> {
  return (await queryOne<{ pid: number }>(client, 'select pg_backend_pid() as pid')).pid;
}

/**
 * Reservation ↔ ledger consistency: every line has exactly one RESERVE movement;
 * a HELD reservation has no other movement; a settled one has exactly one
 * movement per line, all of the kind its status demands (CONFIRM for
 * CONFIRMED, RELEASE for RELEASED, EXPIRE for EXPIRED) with the right deltas
 * and reason; no reservation movement touches a row the reservation does not hold.
 */
async function reservationLedgerProblems(db: Queryable, reservationIds: string[] | null = null): Promise<string[]> {
  const { rows } = await db.query<{ problem: string }>(`
    with res as (
      select * from inventory.reservations r where $1::uuid[] is null or r.id = any ($1::uuid[])),
    line as (
      select l.*, r.status, r.release_reason,
             case r.status when 'CONFIRMED' then 'CONFIRM' when 'RELEASED' then 'RELEASE'
                           when 'EXPIRED' then 'EXPIRE' end as terminal_kind
      from inventory.reservation_lines l join res r on r.id = l.reservation_id),
    mv as (
      select m.* from inventory.movements m join res r on r.id = m.reservation_id)
    select format('reservation %s line %s/%s: %s RESERVE movements matching qty %s',
                  l.reservation_id, l.product_id, l.warehouse_id, x.n, l.qty) as problem
    from line l cross join lateral (
      select count(*) as n from mv m
      where m.reservation_id = l.reservation_id and m.product_id = l.product_id and m.warehouse_id = l.warehouse_id
        and m.kind = 'RESERVE' and m.reserved_delta = l.qty and m.on_hand_delta = 0) x
    where x.n <> 1
    union all
    select format('reservation %s (%s) line %s/%s: terminal movements %s, %s of them %s with the right deltas and reason',
                  l.reservation_id, l.status, l.product_id, l.warehouse_id, x.kinds, x.good, coalesce(l.terminal_kind, 'none'))
    from line l cross join lateral (
      select count(*) filter (where m.kind <> 'RESERVE') as n,
             coalesce(string_agg(m.kind, ',' order by m.id) filter (where m.kind <> 'RESERVE'), 'none') as kinds,
             count(*) filter (where m.kind = l.terminal_kind and m.reserved_delta = -l.qty
                               and m.on_hand_delta = case when m.kind = 'CONFIRM' then -l.qty else 0 end
                               and m.reason is not distinct from l.release_reason) as good
      from mv m
      where m.reservation_id = l.reservation_id and m.product_id = l.product_id and m.warehouse_id = l.warehouse_id) x
    where x.n <> (case when l.status = 'HELD' then 0 else 1 end)
       or x.good <> (case when l.status = 'HELD' then 0 else 1 end)
    union all
    select format('reservation %s has a %s movement on %s/%s, a row it holds no line on',
                  m.reservation_id, m.kind, m.product_id, m.warehouse_id)
    from mv m
    where not exists (select from inventory.reservation_lines l
                      where l.reservation_id = m.reservation_id and l.product_id = m.product_id
                        and l.warehouse_id = m.warehouse_id)
    union all
    select format('reservation %s is %s with release_reason %s', r.id, r.status, r.release_reason)
    from res r
    where (r.status = 'EXPIRED' and r.release_reason is distinct from 'TTL_EXPIRED')
       or (r.status = 'RELEASED' and r.release_reason = 'TTL_EXPIRED')
    union all
    select format('reservation %s holds no line', r.id)
    from res r where not exists (select from inventory.reservation_lines l where l.reservation_id = r.id)
    limit 20`, [reservationIds]);
  return rows.map((r) => r.problem);
}

async function assertConsistent(t: ExecutionContext, db: Queryable, reservationIds: string[] | null = null): Promise<void> {
  t.deepEqual(await invariantViolations(db), [], 'ledger invariants hold');
  t.deepEqual(await reservationLedgerProblems(db, reservationIds), [], 'every reservation has the movements its status demands');
}

// ---------------------------------------------------------------------------
// 1. The last units

test.serial('64 connections racing for the last 100 units reserve exactly 100 and only ever see IV001', async (t) => {
  const { db } = t.context;
  // One SKU, 100 units over two warehouses; a bystander SKU that must not move.
  await setupCatalog(db, { HOT: { WH1: 60, WH2: 40 }, COLD: { WH1: 7 } });
  const clients = await checkoutClients(db, 64);
  const sampler = await db.pool.connect();
  const tally = new ErrorTally();
  const granted: { id: string; qty: number }[] = [];
  const samplerProblems: string[] = [];
  let samples = 0;
  try {
    const rounds = 3;
    for (let round = 1; round <= rounds; round++) {
      if (round > 1) {
        // Another 100 units arrive, and the race starts again on rows that already hold reservations.
        await db.query(`select inventory.adjust('HOT', 'WH1', 60, 'restock')`);
        await db.query(`select inventory.adjust('HOT', 'WH2', 40, 'restock')`);
      }
      const limit = 100 * round;
      let done = false;
      // Stock is sampled from another session throughout the race.
      const sampling = (async () => {
        let lastReserved = -1;
        while (!done) {
          const { rows } = await sampler.query<{ warehouse: string; on_hand: number; reserved: number; safety_stock: number; available: number }>(
            `select warehouse, on_hand, reserved, safety_stock, available from inventory.stock(array['HOT'])`);
          samples++;
          let reserved = 0;
          for (const r of rows) {
            reserved += r.reserved;
            if (r.available < 0 || r.on_hand - r.reserved - r.safety_stock < 0 || r.reserved > r.on_hand || r.reserved < 0) {
              samplerProblems.push(`round ${round} ${r.warehouse}: on_hand ${r.on_hand} reserved ${r.reserved} available ${r.available}`);
            }
          }
          if (reserved > limit) samplerProblems.push(`round ${round}: ${reserved} reserved of ${limit} units`);
          if (reserved < lastReserved) samplerProblems.push(`round ${round}: reserved went back from ${lastReserved} to ${reserved}`);
          lastReserved = reserved;
        }
      })();
      await race(clients, async (client, i) => {
        let probe = false; // after a refusal, check whether anything at all is left
        for (let attempt = 0; attempt < 300; attempt++) {
          const mode = probe ? 'open' : pick(['open', 'WH1', 'WH2'] as const);
          const qty = probe ? 1 : randomInt(1, 3);
          const line: Line = mode === 'open' ? { sku: 'HOT', qty } : { sku: 'HOT', warehouse: mode, qty };
          try {
            const r = await reserve(client, `r${round}-c${i}-${attempt}`, [line]);
            tally.ok('reserve');
            granted.push({ id: r.id, qty });
            probe = false;
          } catch (error) {
            if (tally.fail('reserve', error, ['IV001']) !== 'IV001') return;
            if (probe) return; // one unit across all warehouses refused: none left, and none will come back
            probe = true;
          }
        }
      });
      done = true;
      await sampling;

      const totals = await queryOne<{ on_hand: number; reserved: number; held: number; available: number }>(db, `
        select (select sum(on_hand)::int from inventory.stock(array['HOT'])) as on_hand,
               (select sum(reserved)::int from inventory.stock(array['HOT'])) as reserved,
               (select sum(available)::int from inventory.stock(array['HOT'])) as available,
               (select coalesce(sum(l.qty), 0)::int from inventory.reservation_lines l
                  join inventory.reservations r on r.id = l.reservation_id
                  join inventory.products p on p.id = l.product_id
                where r.status = 'HELD' and p.sku = 'HOT') as held`);
      t.deepEqual(totals, { on_hand: limit, reserved: limit, held: limit, available: 0 }, `round ${round}: every unit reserved exactly once`);
      t.is(granted.reduce((sum, g) => sum + g.qty, 0), limit, `round ${round}: callers were granted exactly the stock there was`);
    }
    t.deepEqual(samplerProblems, [], 'no sample ever showed an oversold row');
    t.true(samples >= 3, `stock was sampled during the races (${samples} samples)`);
    const reservations = await queryOne<{ n: number }>(db, `select count(*)::int as n from inventory.reservations where status = 'HELD'`);
    t.is(reservations.n, granted.length, 'one HELD reservation per granted call');
    t.is(new Set(granted.map((g) => g.id)).size, granted.length, 'distinct reservations');
    t.like(await stockOf(db, 'COLD', 'WH1'), { on_hand: 7, reserved: 0 }, 'the bystander SKU is untouched');
    t.deepEqual(tally.unexpected, [], 'no error but IV001 (no 40P01, 23514, 40001)');
    t.deepEqual([...tally.codes()], ['IV001']);
    t.log(`${samples} samples; ${tally.summary()}`);
    await assertConsistent(t, db);
  } finally {
    sampler.release();
    releaseAll(clients);
  }
});

// ---------------------------------------------------------------------------
// 2. Mixed traffic on hot rows

test.serial('baskets in shuffled order (single calls and reserve_many batches), settlements, receipts and transfers on hot rows never deadlock', async (t) => {
  const { db } = t.context;
  const skus = ['H1', 'H2', 'H3', 'H4'];
  const warehouses = ['WH1', 'WH2', 'WH3'];
  await setupCatalog(db, Object.fromEntries(skus.map((s) => [s, { WH1: 150, WH2: 150, WH3: 150 }])));
  // A little safety stock on one row, so available and on_hand - reserved differ.
  await db.query(`select inventory.set_policy('H1', 'WH2', 5)`);

  const reservers = 32;
  const settlers = 10;
  const stockers = 4;
  const expirers = 1;
  const verifiers = 1;
  const clients = await checkoutClients(db, reservers + settlers + stockers + expirers + verifiers);
  const drift: string[] = [];
  const tally = new ErrorTally();
  const ids: string[] = [];
  const targetOps = 5000;
  const deadline = Date.now() + 15_000;
  let ops = 0;
  const more = () => ops < targetOps && Date.now() < deadline;
  const started = Date.now();
  try {
    await race(clients, async (client, i) => {
      if (i < reservers) {
        while (more()) {
          ops++;
          const lines: Line[] = Array.from({ length: randomInt(2, 5) }, () => {
            const sku = pick(skus);
            const qty = randomInt(1, 4);
            return Math.random() < 0.4 ? { sku, qty } : { sku, warehouse: pick(warehouses), qty };
          });
          // Short-lived holds feed expire_due() and reserve()'s lazy expiry.
          const ttl = Math.random() < 0.25 ? `${randomInt(50, 400)} milliseconds` : '1 hour';
          if (i % 3 === 0) {
            // A third of the reservers send batches: each request its own basket, in one transaction.
            const requests = Array.from({ length: randomInt(2, 6) }, (_, n) => ({
              order_ref: `batch-${i}-${ops}-${n}`, lines: shuffle(lines.map((l) => ({ ...l, qty: randomInt(1, 4) }))),
              ttl: ttl === '1 hour' ? 3600 : `${randomInt(50, 400)} milliseconds`,
            }));
            try {
              const { rows } = await client.query<{ id: string | null; sqlstate: string | null; message: string | null }>(
                'select (r.reservation).id, r.sqlstate, r.message from inventory.reserve_many($1::jsonb) r', [JSON.stringify(requests)]);
              ops += rows.length - 1; // each request of the batch is an operation (the call was counted once)
              for (const row of rows) {
                if (row.id) {
                  tally.ok('reserve_many request');
                  ids.push(row.id);
                } else {
                  tally.fail('reserve_many request', Object.assign(new Error(row.message ?? ''), { code: row.sqlstate }), ['IV001']);
                }
              }
            } catch (error) {
              tally.fail('reserve_many', error, []);
            }
            continue;
          }
          try {
            const r = await reserve(client, `basket-${i}-${ops}`, shuffle(lines), ttl);
            tally.ok('reserve');
            ids.push(r.id);
          } catch (error) {
            tally.fail('reserve', error, ['IV001']);
          }
        }
      } else if (i < reservers + settlers) {
        while (more()) {
          if (ids.length === 0) { await sleep(1); continue; }
          ops++;
          // Mostly recent reservations (likely HELD), sometimes any (likely settled: a state race).
          const id = Math.random() < 0.8 ? ids[Math.max(0, ids.length - 1 - randomInt(0, 60))]! : pick(ids);
          const roll = Math.random();
          const [operation, sql, args] = roll < 0.45
            ? ['confirm', 'select * from inventory.confirm($1)', [id]]
            : roll < 0.9
              ? ['release', 'select * from inventory.release($1, $2)', [id, pick(['CANCELLED', 'PAYMENT_FAILED', 'TTL_EXPIRED'])]]
              : ['extend', `select * from inventory.extend($1, '1 hour')`, [id]];
          try {
            await client.query(sql, args);
            tally.ok(operation);
          } catch (error) {
            tally.fail(operation, error, ['IV003']);
          }
        }
      } else if (i < reservers + settlers + stockers) {
        while (more()) {
          ops++;
          const sku = pick(skus);
          const roll = Math.random();
          try {
            if (roll < 0.45) {
              await client.query(`select inventory.adjust($1, $2, $3, 'receipt')`, [sku, pick(warehouses), randomInt(5, 40)]);
              tally.ok('adjust+');
            } else if (roll < 0.65) {
              await client.query(`select inventory.adjust($1, $2, $3, 'shrinkage')`, [sku, pick(warehouses), -randomInt(1, 4)]);
              tally.ok('adjust-');
            } else {
              const [from, to] = shuffle([...warehouses]);
              await client.query(`select * from inventory.transfer($1, $2, $3, $4, 'rebalance')`, [sku, from, to, randomInt(1, 6)]);
              tally.ok('transfer');
            }
          } catch (error) {
            tally.fail(roll < 0.45 ? 'adjust+' : roll < 0.65 ? 'adjust-' : 'transfer', error, roll < 0.45 ? [] : ['IV002']);
          }
        }
      } else if (i < reservers + settlers + stockers + expirers) {
        while (more()) {
          ops++;
          try {
            await client.query('select inventory.expire_due(25)');
            tally.ok('expire_due');
          } catch (error) {
            tally.fail('expire_due', error, []);
          }
          await sleep(15);
        }
      } else {
        // The nightly counter check may run during traffic: it must see no drift, and fix nothing.
        while (more()) {
          ops++;
          try {
            const { rows } = await client.query('select * from inventory.verify_counters(true)');
            tally.ok('verify_counters');
            for (const r of rows) drift.push(JSON.stringify(r));
          } catch (error) {
            tally.fail('verify_counters', error, []);
          }
          await sleep(25);
        }
      }
    });
  } finally {
    releaseAll(clients);
  }
  const seconds = (Date.now() - started) / 1000;
  t.log(`${ops} operations in ${seconds.toFixed(1)} s; ${tally.summary()}`);
  t.false(tally.codes().has('40P01'), 'no deadlock');
  t.deepEqual(tally.unexpected, [], 'only IV001 (reserve), IV002 (adjust-/transfer) and IV003 (state races)');
  t.deepEqual(drift.slice(0, 10), [], 'verify_counters(true) racing the traffic reports no drift');
  const corrections = await queryOne<{ n: number }>(db, `select count(*)::int as n from inventory.movements where reason = 'VERIFY_COUNTERS'`);
  t.is(corrections.n, 0, 'and writes no correction');
  // (Floors, not speeds: a loaded CI machine runs a third of what a quiet one does in the time.)
  t.true(ops >= 1000, `a meaningful amount of traffic ran (${ops} operations)`);
  t.true((tally.okCounts.get('reserve') ?? 0) >= 100, 'many reservations went through');
  t.true((tally.okCounts.get('reserve_many request') ?? 0) >= 100, 'batched ones too');
  t.true((tally.okCounts.get('confirm') ?? 0) > 0 && (tally.okCounts.get('release') ?? 0) > 0, 'settlements went through');
  await assertConsistent(t, db);
});

test.serial('single reserves and reserve_many batches racing for the last 100 units of one row reserve exactly 100', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { HOT: { WH1: 100 }, WARM: { WH1: 1000 } });
  const clients = await checkoutClients(db, 64);
  const tally = new ErrorTally();
  let held = 0;
  try {
    // Each session runs its own path once on another sku first, so neither side starts the race
    // paying for compiling its functions (on a loaded CI machine one side once took all 100).
    await Promise.all(clients.map((client, i) => (i % 2 === 0
      ? reserve(client, `warm-${i}`, [{ sku: 'WARM', warehouse: 'WH1', qty: 1 }])
      : client.query('select * from inventory.reserve_many($1::jsonb)', [JSON.stringify([{ order_ref: `warm-${i}`, lines: [{ sku: 'WARM', warehouse: 'WH1', qty: 1 }] }])]))));
    await race(clients, async (client, i) => {
      let soldOut = false;
      for (let n = 0; !soldOut; n++) {
        if (i % 2 === 0) {
          try {
            await reserve(client, `single-${i}-${n}`, [{ sku: 'HOT', warehouse: 'WH1', qty: 1 }]);
            tally.ok('reserve');
            held++;
          } catch (error) {
            soldOut = tally.fail('reserve', error, ['IV001']) === 'IV001';
          }
        } else {
          const requests = Array.from({ length: 4 }, (_, k) => ({ order_ref: `batch-${i}-${n}-${k}`, lines: [{ sku: 'HOT', warehouse: 'WH1', qty: 1 }] }));
          try {
            const { rows } = await client.query<{ id: string | null; sqlstate: string | null }>(
              'select (r.reservation).id, r.sqlstate from inventory.reserve_many($1::jsonb) r', [JSON.stringify(requests)]);
            for (const row of rows) {
              if (row.id) {
                tally.ok('reserve_many request');
                held++;
              } else {
                soldOut = tally.fail('reserve_many request', Object.assign(new Error(row.sqlstate ?? ''), { code: row.sqlstate }), ['IV001']) === 'IV001' || soldOut;
              }
            }
          } catch (error) {
            tally.fail('reserve_many', error, []);
            soldOut = true;
          }
        }
      }
    });
  } finally {
    releaseAll(clients);
  }
  t.log(tally.summary());
  t.deepEqual(tally.unexpected, [], 'only IV001: no deadlock, no check violation');
  t.is(held, 100, 'exactly the 100 units');
  t.true((tally.okCounts.get('reserve') ?? 0) > 0 && (tally.okCounts.get('reserve_many request') ?? 0) > 0, 'both paths took some');
  t.like(await stockOf(db, 'HOT', 'WH1'), { on_hand: 100, reserved: 100, available: 0 });
  await assertConsistent(t, db);
});

// ---------------------------------------------------------------------------
// 3. confirm, release and expiry racing on the same reservations

test.serial('confirm, release, expire_due and lazy expiry racing settle every reservation exactly once', async (t) => {
  const { db } = t.context;
  // N rows: reservations not yet due (confirm and release race). D rows: due
  // reservations that hold every unit (release, expire_due and reserve's lazy expiry race).
  await setupCatalog(db, {
    N1: { WH1: 1000, WH2: 1000 }, N2: { WH1: 1000, WH2: 1000 }, N3: { WH1: 1000 },
    D1: { WH1: 1000, WH2: 1000 }, D2: { WH1: 1000, WH2: 1000 },
  });
  const basket = (skus: string[], warehouses: string[]): Line[] => {
    const rows = shuffle(skus.flatMap((sku) => warehouses.map((warehouse) => ({ sku, warehouse }))))
      .filter((r) => !(r.sku === 'N3' && r.warehouse === 'WH2'));
    return rows.slice(0, randomInt(1, 3)).map((r) => ({ ...r, qty: randomInt(1, 3) }));
  };
  const due: string[] = [];
  const live: string[] = [];
  for (let i = 0; i < 100; i++) due.push((await reserve(db, `due-${i}`, basket(['D1', 'D2'], ['WH1', 'WH2']), '1500 milliseconds')).id);
  for (let i = 0; i < 100; i++) live.push((await reserve(db, `live-${i}`, basket(['N1', 'N2', 'N3'], ['WH1', 'WH2']), '1 hour')).id);
  // The due reservations hold every unit of their rows: a new reserve there is short and must expire them.
  await db.query(`
    select inventory.adjust(p.sku, w.code, s.reserved - s.on_hand, 'shrinkage')
    from inventory.stock_levels s join inventory.products p on p.id = s.product_id
    join inventory.warehouses w on w.id = s.warehouse_id
    where p.sku like 'D%' and s.on_hand > s.reserved`);
  const wait = await queryOne<{ ms: number }>(db,
    `select greatest(extract(epoch from max(expires_at) - clock_timestamp()) * 1000, 0)::int as ms
     from inventory.reservations where id = any ($1::uuid[])`, [due]);
  await sleep(wait.ms + 50);

  type Op = { kind: 'confirm' | 'release' | 'extend'; id: string; reason?: string } | { kind: 'expire_due' } | { kind: 'reserve'; lines: Line[] };
  const ops: Op[] = [];
  const reasons = ['CANCELLED', 'PAYMENT_FAILED', 'TTL_EXPIRED'];
  for (const id of live) {
    ops.push({ kind: 'confirm', id }, { kind: 'confirm', id }, { kind: 'release', id, reason: pick(reasons) },
      { kind: 'release', id, reason: pick(reasons) }, { kind: 'extend', id });
  }
  for (const id of due) ops.push({ kind: 'release', id, reason: pick(reasons) }, { kind: 'confirm', id });
  for (let i = 0; i < 40; i++) ops.push({ kind: 'expire_due' });
  for (let i = 0; i < 60; i++) {
    const sku = pick(['D1', 'D2']);
    ops.push({ kind: 'reserve', lines: [Math.random() < 0.5 ? { sku, qty: 1 } : { sku, warehouse: pick(['WH1', 'WH2']), qty: 1 }] });
  }
  shuffle(ops);

  const dueSet = new Set(due);
  const tally = new ErrorTally();
  const results = new Map<string, { op: string; status: string }[]>();
  const newReservations: string[] = [];
  const clients = await checkoutClients(db, 40);
  let next = 0;
  try {
    await race(clients, async (client) => {
      for (let op = ops[next++]; op; op = ops[next++]) {
        try {
          if (op.kind === 'expire_due') {
            await client.query('select inventory.expire_due(5)');
            tally.ok('expire_due');
          } else if (op.kind === 'reserve') {
            newReservations.push((await reserve(client, 'lazy', op.lines)).id);
            tally.ok('reserve');
          } else {
            const row = op.kind === 'confirm'
              ? await queryOne<ReservationRow>(client, 'select * from inventory.confirm($1)', [op.id])
              : op.kind === 'release'
                ? await queryOne<ReservationRow>(client, 'select * from inventory.release($1, $2)', [op.id, op.reason])
                : await queryOne<ReservationRow>(client, `select * from inventory.extend($1, '1 hour')`, [op.id]);
            const label = `${op.kind}${dueSet.has(op.id) ? ' (due)' : ''}`;
            tally.ok(label);
            results.set(op.id, [...results.get(op.id) ?? [], { op: op.kind, status: row.status }]);
          }
        } catch (error) {
          const label = 'id' in op ? `${op.kind}${dueSet.has(op.id) ? ' (due)' : ''}` : op.kind;
          // Lazy expiry skips due reservations another session holds locked; a reserve can then still be short.
          tally.fail(label, error, op.kind === 'reserve' ? ['IV001'] : op.kind === 'expire_due' ? [] : ['IV003']);
        }
      }
    });
  } finally {
    releaseAll(clients);
  }
  t.log(tally.summary());
  t.deepEqual(tally.unexpected, [], 'only IV003 from state changes (and IV001 from a short reserve)');
  t.is(tally.okCounts.get('confirm (due)'), undefined, 'a due reservation is never confirmed');

  const { rows } = await db.query<ReservationRow>('select id, status, release_reason from inventory.reservations where id = any ($1::uuid[])', [[...due, ...live]]);
  const final = new Map(rows.map((r) => [r.id, r]));
  const statuses = new Map<string, number>();
  for (const id of [...due, ...live]) {
    const status = final.get(id)?.status ?? 'missing';
    const key = `${dueSet.has(id) ? 'due' : 'live'}:${status}`;
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
  }
  t.log([...statuses].map(([k, v]) => `${k} ${v}`).join(', '));
  const problems: string[] = [];
  for (const id of [...live, ...due]) {
    const status = final.get(id)?.status;
    const terminal = dueSet.has(id) ? ['RELEASED', 'EXPIRED'] : ['CONFIRMED', 'RELEASED', 'EXPIRED'];
    if (!status || !terminal.includes(status)) problems.push(`${dueSet.has(id) ? 'due' : 'live'} ${id} ended ${status}`);
    for (const r of results.get(id) ?? []) {
      // A successful confirm or release returns the state it left; a later call cannot change it.
      if (r.op !== 'extend' && r.status !== status) problems.push(`${r.op} of ${id} returned ${r.status}, but it ended ${status}`);
    }
  }
  t.deepEqual(problems, [], 'every reservation ends in one terminal state, the one its successful calls reported');
  t.true((statuses.get('live:CONFIRMED') ?? 0) > 0, 'some confirms won');
  t.true((statuses.get('live:RELEASED') ?? 0) + (statuses.get('live:EXPIRED') ?? 0) > 0, 'some releases won');
  t.true((statuses.get('due:EXPIRED') ?? 0) > 0, 'some due reservations expired');
  await assertConsistent(t, db);
  t.deepEqual(await reservationLedgerProblems(db, [...due, ...live, ...newReservations]), []);
});

// ---------------------------------------------------------------------------
// 4. Idempotency keys under concurrency

/** One request through reserve_many, answered like reserve(): the reservation, or a rejection with its SQLSTATE. */
async function reserveInBatch(client: Queryable, orderRef: string, lines: Line[], ttlSeconds: number, key: string): Promise<ReservationRow> {
  const { rows } = await client.query<{ id: string | null; status: string; sqlstate: string | null; message: string | null }>(`
    select (r.reservation).id, (r.reservation).status, r.sqlstate, r.message
    from inventory.reserve_many($1::jsonb) r`, [JSON.stringify([
    { order_ref: 'filler', lines: [{ sku: 'A', warehouse: 'WH1', qty: 1 }] }, // rides along: must not change the answer
    { order_ref: orderRef, lines, ttl: ttlSeconds, idempotency_key: key },
  ])]);
  const mine = rows[1]!;
  if (!mine.id) throw Object.assign(new Error(mine.message ?? ''), { code: mine.sqlstate });
  return { id: mine.id, status: mine.status, release_reason: null, expires_at: new Date() };
}

test.serial('20 concurrent reserves with one idempotency key, through reserve() and reserve_many, make one reservation and one set of movements', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 50 }, B: { WH1: 3, WH2: 30 } });
  const lines: Line[] = [{ sku: 'A', warehouse: 'WH1', qty: 4 }, { sku: 'B', qty: 5 }];
  const clients = await checkoutClients(db, 20);
  try {
    const outcomes = await race(clients, (client, i) => (i % 2
      ? reserveInBatch(client, 'order-42', lines, 3600, 'idem-reserve')
      : reserve(client, 'order-42', lines, '1 hour', 'idem-reserve'))
      .then((r) => r.id, (error: unknown) => `error ${sqlstate(error)}`));
    t.is(new Set(outcomes).size, 1, `every caller got the same answer: ${[...new Set(outcomes)].join(', ')}`);
    const id = outcomes[0]!;
    t.regex(id, /^[0-9a-f-]{36}$/, 'and it is a reservation id');
    const counts = await queryOne(db, `
      select (select count(*)::int from inventory.reservations) as reservations,
             (select count(*)::int from inventory.reservations where idempotency_key = 'idem-reserve') as keyed,
             (select count(*)::int from inventory.movements where kind = 'RESERVE') as reserve_movements,
             (select count(*)::int from inventory.movements where kind = 'RESERVE' and reservation_id = $1) as own_movements,
             (select sum(reserved)::int from inventory.stock_levels) as reserved`, [id]);
    // A: one row; B: WH1 has 3 (priority 10), the other 2 come from WH2.
    // Each batch also reserved one unit of A for its filler request.
    t.deepEqual(counts, { reservations: 11, keyed: 1, reserve_movements: 13, own_movements: 3, reserved: 19 });

    // Second wave on the same key: the same payload gets the first result, another payload IV006.
    const other: Line[] = [{ sku: 'A', warehouse: 'WH1', qty: 5 }];
    const wave = await race(clients, (client, i) => reserve(client, 'order-42', i % 2 ? other : lines, '1 hour', 'idem-reserve')
      .then((r) => `${i % 2}:${r.id}`, (error: unknown) => `${i % 2}:error ${sqlstate(error)}`));
    t.deepEqual(new Set(wave), new Set([`0:${id}`, '1:error IV006']));

    // A fresh key raced by two different payloads: one payload wins, its callers share one
    // reservation, every caller of the other payload gets IV006.
    const contested = await race(clients, (client, i) => reserve(client, 'order-43', i % 2 ? other : [{ sku: 'A', qty: 1 }], '1 hour', 'idem-contested')
      .then((r) => `${i % 2}:${r.id}`, (error: unknown) => `${i % 2}:error ${sqlstate(error)}`));
    const distinct = [...new Set(contested)].sort();
    t.is(distinct.length, 2, `two answers, one per payload: ${distinct.join(', ')}`);
    t.is(distinct.filter((d) => d.endsWith('error IV006')).length, 1, 'the losing payload gets IV006');
    const keyed = await queryOne<{ n: number; movements: number }>(db, `
      select count(*)::int as n,
             (select count(*)::int from inventory.movements m join inventory.reservations r on r.id = m.reservation_id
              where r.idempotency_key = 'idem-contested') as movements
      from inventory.reservations where idempotency_key = 'idem-contested'`);
    t.deepEqual(keyed, { n: 1, movements: 1 });
  } finally {
    releaseAll(clients);
  }
});

test.serial('20 concurrent adjusts and transfers with one idempotency key apply once', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 50, WH2: 10 }, B: { WH3: 1 } });
  const clients = await checkoutClients(db, 20);
  try {
    const adjusted = await race(clients, (client) => queryOne<{ on_hand: number }>(client,
      `select on_hand from inventory.adjust('A', 'WH1', 7, 'receipt', 'idem-adjust')`)
      .then((r) => r.on_hand, (error: unknown) => `error ${sqlstate(error)}`));
    t.deepEqual([...new Set(adjusted)], [57], 'every caller sees the one receipt');
    t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 57 });

    // To a warehouse where A has no row yet: the row is created once too.
    const moved = await race(clients, (client) => client.query<{ on_hand: number }>(
      `select on_hand from inventory.transfer('A', 'WH1', 'WH3', 6, 'rebalance', 'idem-transfer')`)
      .then((r) => r.rows.map((row) => row.on_hand).join('/'), (error: unknown) => `error ${sqlstate(error)}`));
    t.deepEqual([...new Set(moved)], ['51/6'], 'every caller sees the one transfer (source/destination)');
    t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 51 });
    t.like(await stockOf(db, 'A', 'WH3'), { on_hand: 6 });

    const { rows } = await db.query<{ idempotency_key: string; kind: string; n: number }>(`
      select idempotency_key, kind, count(*)::int as n from inventory.movements
      where idempotency_key is not null group by 1, 2 order by 1, 2`);
    t.deepEqual(rows, [
      { idempotency_key: 'idem-adjust', kind: 'RECEIVE', n: 1 },
      { idempotency_key: 'idem-transfer', kind: 'TRANSFER_IN', n: 1 },
      { idempotency_key: 'idem-transfer', kind: 'TRANSFER_OUT', n: 1 },
    ]);
    const keys = await queryOne<{ n: number }>(db, 'select count(*)::int as n from inventory.operation_keys');
    t.is(keys.n, 2);
  } finally {
    releaseAll(clients);
  }
});

// ---------------------------------------------------------------------------
// 5. Deterministic interleavings (a session is parked on a lock, then released)

// READ COMMITTED re-reads the rows a statement locks but never finds rows created
// after its snapshot. A transfer into a warehouse where the product had no row
// yet commits such a row while reserve waits for the emptied source row:
// reserve must take the new row in rather than see half the transfer and
// answer IV001 for a product that had the units throughout.
test.serial('an open line is not refused while a concurrent transfer moves its stock to a new warehouse row', async (t) => {
  const { db } = t.context;
  // A has 5 units, all at WH1; it has no row at WH2 yet.
  await setupCatalog(db, { A: { WH1: 5 }, B: { WH2: 1 } });
  const [mover, buyer] = await checkoutClients(db, 2) as [Client, Client];
  let destroy = false;
  try {
    const buyerPid = await backendPid(buyer);
    await mover.query('begin');
    await mover.query(`select * from inventory.transfer('A', 'WH1', 'WH2', 5, 'rebalance')`);
    const pending = reserve(buyer, 'order-1', [{ sku: 'A', qty: 5 }]).then(
      (r) => ({ ok: true as const, id: r.id }), (error: unknown) => ({ ok: false as const, error: error as Error }));
    await waitUntilBlocked(db, buyerPid); // waiting for WH1, which the transfer holds
    await mover.query('commit');
    const outcome = await pending;
    // Either order of the two is fine (reserve first: it holds WH1's 5; transfer first: it takes
    // WH2's 5), but A had 5 units throughout, so "insufficient stock" is never a correct answer.
    t.true(outcome.ok, outcome.ok ? '' : `reserve failed with ${sqlstate(outcome.error)}: ${outcome.error.message}`);
    if (outcome.ok) t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 5, reserved: 5 });
  } catch (error) {
    destroy = true;
    throw error;
  } finally {
    releaseAll([mover, buyer], destroy);
  }
});

// Every function locks stock rows (key order) before a reservation, so a
// reservation lock is only held by someone who needs nothing more, and
// reserve's lazy expiry can wait for it. A due hold the expiry job is about to
// expire must not make the buyer fail (SPEC: "A HELD reservation past its
// expires_at never blocks a new one, whether or not the expiry job ran").
test.serial('a due reservation held up by a running expire_due does not make reserve fail', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 3 } });
  const old = await reserve(db, 'old-order', [{ sku: 'A', warehouse: 'WH1', qty: 3 }], '100 milliseconds');
  await sleep(200); // due now: every unit of A@WH1 is held by a reservation that no longer counts
  const [holder, buyer, sweeper] = await checkoutClients(db, 3) as [Client, Client, Client];
  let destroy = false;
  try {
    // Any session touching A@WH1 (here a cycle count) keeps the row busy for a moment.
    const [buyerPid, sweeperPid] = [await backendPid(buyer), await backendPid(sweeper)];
    await holder.query('begin');
    await holder.query(`select inventory.set_count('A', 'WH1', 3, 'cycle count')`);
    const pending = reserve(buyer, 'new-order', [{ sku: 'A', warehouse: 'WH1', qty: 1 }]).then(
      (r) => ({ ok: true as const, id: r.id }), (error: unknown) => ({ ok: false as const, error: error as Error }));
    await waitUntilBlocked(db, buyerPid);
    // The expiry job runs now: it locks the due reservation, then waits for the row too.
    const sweeping = sweeper.query('select inventory.expire_due() as n');
    await waitUntilBlocked(db, sweeperPid);
    await holder.query('commit');
    const outcome = await pending;
    const swept = await sweeping;
    t.log(`expire_due expired ${swept.rows[0]?.n}; reserve ${outcome.ok ? 'succeeded' : `failed with ${sqlstate(outcome.error)}`}`);
    // Whether the buyer or the job goes first, the due reservation must not block the buyer
    // (SPEC: "A HELD reservation past its expires_at never blocks a new one, whether or not the expiry job ran").
    t.true(outcome.ok, outcome.ok ? '' : `reserve failed with ${sqlstate(outcome.error)}: ${outcome.error.message}`);
    const status = await queryOne<{ status: string }>(db, 'select status from inventory.reservations where id = $1', [old.id]);
    t.is(status.status, 'EXPIRED');
  } catch (error) {
    destroy = true;
    throw error;
  } finally {
    releaseAll([holder, buyer, sweeper], destroy);
  }
});
