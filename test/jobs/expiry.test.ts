// Reservation expiry by the worker (graphile-worker in this process): the one
// self-scheduling expire_sweep job expires each reservation within 3 s of its
// expires_at, with no job of its own and nobody calling expire_due; extend()
// moves that, confirm() prevents it; a burst of due reservations is expired
// once each; the release reaches the events stream as warehouse.stock.released
// (TTL_EXPIRED); the sweep chain survives a lost job; a graceful stop lets a
// running sweep finish.
import anyTest, { type TestFn } from 'ava';
import pg from 'pg';
import { readStream, testRedis, waitFor, waitForCache } from '../helpers/cache.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import { queryOne, setupCatalog, stockOf } from '../helpers/inventory.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { startTestListener } from '../helpers/listener.ts';
import { SWEEP_INTERVAL_MS, nextSweepAt } from '../../src/jobs/expire_sweep.ts';
import {
  jobsOf, startTestWorker, statusOf, waitForMetric, waitForStatus, waitUntilDatabaseTime,
  type TestWorker, type TestWorkerOptions,
} from './worker-harness.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

const TTL_EXPIRED = 'inventory_ttl_expired_total';

async function worker(t: { teardown(fn: () => Promise<void>): void }, url: string, options?: TestWorkerOptions): Promise<TestWorker> {
  const started = await startTestWorker(url, options);
  t.teardown(() => started.stop());
  return started;
}

interface Reserved { id: string; expires_at: Date }

function reserve(db: Queryable, order: string, lines: unknown[], ttl: string): Promise<Reserved> {
  return queryOne<Reserved>(db, 'select id, expires_at from inventory.reserve($1, $2::jsonb, $3::interval)', [order, JSON.stringify(lines), ttl]);
}

async function movementsOf(db: Queryable, reservationId: string) {
  const { rows } = await db.query<{ kind: string; reason: string | null; sku: string; warehouse: string; reserved_delta: number; on_hand_delta: number; occurred_at: Date }>(`
    select m.kind, m.reason, p.sku, w.code as warehouse, m.reserved_delta, m.on_hand_delta, m.occurred_at
    from inventory.movements m
    join inventory.products p on p.id = m.product_id
    join inventory.warehouses w on w.id = m.warehouse_id
    where m.reservation_id = $1 order by m.kind <> 'RESERVE', p.sku, w.code`, [reservationId]);
  return rows;
}

test('a reservation with a 1-second ttl is expired within 3 s of expires_at by the sweeper, with no job of its own', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH1: 5 } });
  // The production poll interval: the 3 s promise holds with it.
  const w = await worker(t, db.url, { pollIntervalMs: 1_000 });
  t.true(await waitFor(async () => (await jobsOf(db, 'expire_sweep')).some((j) => j.key === 'expire_sweep'), 5_000), 'the worker started the sweep chain');
  const r = await reserve(db, 'order-1', [{ sku: 'A', warehouse: 'WH1', qty: 3 }, { sku: 'B', warehouse: 'WH1', qty: 2 }], '1 second');
  const jobsAfter = await jobsOf(db);
  t.deepEqual(jobsAfter.filter((j) => !['expire_sweep', 'unlock_dead_workers'].includes(j.task_identifier)), [],
    'reserve added no job: only the sweep chain and the crontab\'s own are there');
  t.true(jobsAfter.filter((j) => j.key === 'expire_sweep').length <= 1, 'one pending sweep at most');
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 3, available: 7 });

  t.true(await waitForStatus(db, [r.id], 'EXPIRED', 10_000), `still ${await statusOf(db, r.id)} 10 s after expires_at`);
  const reservation = await queryOne(db, 'select status, release_reason from inventory.reservations where id = $1', [r.id]);
  t.deepEqual(reservation, { status: 'EXPIRED', release_reason: 'TTL_EXPIRED' });
  const movements = await movementsOf(db, r.id);
  t.deepEqual(movements.map(({ kind, reason, sku, warehouse, reserved_delta, on_hand_delta }) => ({ kind, reason, sku, warehouse, reserved_delta, on_hand_delta })), [
    { kind: 'RESERVE', reason: null, sku: 'A', warehouse: 'WH1', reserved_delta: 3, on_hand_delta: 0 },
    { kind: 'RESERVE', reason: null, sku: 'B', warehouse: 'WH1', reserved_delta: 2, on_hand_delta: 0 },
    { kind: 'EXPIRE', reason: 'TTL_EXPIRED', sku: 'A', warehouse: 'WH1', reserved_delta: -3, on_hand_delta: 0 },
    { kind: 'EXPIRE', reason: 'TTL_EXPIRED', sku: 'B', warehouse: 'WH1', reserved_delta: -2, on_hand_delta: 0 },
  ]);
  for (const m of movements.filter((x) => x.kind === 'EXPIRE')) {
    const late = m.occurred_at.getTime() - r.expires_at.getTime();
    t.true(late >= 0 && late < 3_000, `expired ${late} ms after expires_at`);
  }
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 10, reserved: 0, available: 10 });
  t.like(await stockOf(db, 'B', 'WH1'), { on_hand: 5, reserved: 0, available: 5 });
  t.is(await waitForMetric(w, TTL_EXPIRED, 1), 1);
  t.truthy(w.logs.find((l) => l.task === 'expire_sweep' && l.msg === 'expired 1 reservation(s)'), 'the sweeper did it');
  // (A sweep may be running at this moment: then the next one appears when it ends.)
  t.true(await waitFor(async () => (await jobsOf(db, 'expire_sweep'))
    .some((j) => j.key === 'expire_sweep' && j.locked_at === null && j.attempts === 0 && j.last_error === null), 5_000), 'the next sweep is scheduled');
});

test('extend() postpones the expiry: still HELD after the original expires_at, expired after the new one', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const w = await worker(t, db.url);
  const line = [{ sku: 'A', warehouse: 'WH1', qty: 2 }];
  const [extended, control] = [await reserve(db, 'paying', line, '1 second'), await reserve(db, 'control', line, '1 second')];
  const moved = await queryOne<{ expires_at: Date }>(db, `select expires_at from inventory.extend($1, '3 seconds')`, [extended.id]);
  t.true(moved.expires_at > extended.expires_at);

  // The control, due at the original time, expires: the worker is up and its jobs ran then.
  t.true(await waitForStatus(db, [control.id], 'EXPIRED', 10_000), 'the control reservation expired');
  t.true(await waitUntilDatabaseTime(db, extended.expires_at, 500));
  t.is(await statusOf(db, extended.id), 'HELD', 'still held past its original expires_at');
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 2 });

  t.true(await waitForStatus(db, [extended.id], 'EXPIRED', 10_000), 'expired after the new expires_at');
  const expiry = (await movementsOf(db, extended.id)).filter((m) => m.kind === 'EXPIRE');
  t.is(expiry.length, 1);
  const late = expiry[0]!.occurred_at.getTime() - moved.expires_at.getTime();
  t.true(late >= 0 && late < 3_000, `expired ${late} ms after the new expires_at`);
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 0, available: 10 });
  t.is(await waitForMetric(w, TTL_EXPIRED, 2), 2);
});

test('confirm() prevents the expiry: the reservation stays CONFIRMED', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const w = await worker(t, db.url);
  const line = [{ sku: 'A', warehouse: 'WH1', qty: 4 }];
  const [confirmed, control] = [await reserve(db, 'paid', line, '1 second'), await reserve(db, 'control', line, '1 second')];
  await db.query('select inventory.confirm($1)', [confirmed.id]);

  t.true(await waitForStatus(db, [control.id], 'EXPIRED', 10_000), 'the control reservation expired');
  t.true(await waitUntilDatabaseTime(db, confirmed.expires_at, 500));
  t.is(await statusOf(db, confirmed.id), 'CONFIRMED');
  t.deepEqual((await movementsOf(db, confirmed.id)).map((m) => m.kind), ['RESERVE', 'CONFIRM']);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 6, reserved: 0, available: 6 });
  t.is(await waitForMetric(w, TTL_EXPIRED, 1), 1, 'only the control was expired');
});

test('many reservations due at once are all expired, each exactly once (one EXPIRE movement per line)', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 200 }, B: { WH1: 100, WH2: 100 } });
  const w = await worker(t, db.url, { concurrency: 4 });
  // One statement, one now(): 150 reservations with the same expires_at; B is allocated (WH1, then WH2).
  const { rows } = await db.query<{ id: string }>(`
    select r.id from generate_series(1, 150) i,
      inventory.reserve('bulk-' || i, '[{"sku":"A","warehouse":"WH1","qty":1},{"sku":"B","qty":1}]'::jsonb, '1 second') r`);
  const ids = rows.map((r) => r.id);
  t.is(new Set(ids).size, 150);
  t.true((await jobsOf(db)).length <= 2, 'no job per reservation: the sweep chain and at most the crontab\'s jobs');

  t.true(await waitForStatus(db, ids, 'EXPIRED', 20_000), 'all expired');
  const counts = await queryOne<{ lines: number; expire: number; distinct_lines: number; released_twice: number }>(db, `
    select (select count(*)::int from inventory.reservation_lines where reservation_id = any($1::uuid[])) as lines,
           (select count(*)::int from inventory.movements where kind = 'EXPIRE') as expire,
           (select count(distinct (reservation_id, product_id, warehouse_id))::int from inventory.movements where kind = 'EXPIRE') as distinct_lines,
           (select count(*)::int from inventory.movements where kind in ('RELEASE', 'CONFIRM')) as released_twice`, [ids]);
  t.deepEqual(counts, { lines: 300, expire: 300, distinct_lines: 300, released_twice: 0 });
  for (const [sku, code, onHand] of [['A', 'WH1', 200], ['B', 'WH1', 100], ['B', 'WH2', 100]] as const) {
    t.like(await stockOf(db, sku, code), { on_hand: onHand, reserved: 0, available: onHand }, `${sku}/${code} back`);
  }
  t.is(await waitForMetric(w, TTL_EXPIRED, 150), 150, 'inventory_ttl_expired_total counts each once');
  t.deepEqual((await jobsOf(db)).filter((j) => j.last_error !== null), [], 'no job failed');
});

test('with the listener running, the expiry reaches the events stream as warehouse.stock.released with reason TTL_EXPIRED', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 10 } });
  const listener = await startTestListener(db.url, { label: 'expiry_events' });
  const redis = testRedis();
  t.teardown(async () => {
    redis.disconnect();
    await listener.stop();
  });
  const w = await worker(t, db.url);
  const r = await reserve(db, 'order-ev', [{ sku: 'A', qty: 14 }], '1 second'); // 10 at WH1, 4 at WH2
  t.true(await waitForStatus(db, [r.id], 'EXPIRED', 10_000));
  t.is(await waitForMetric(w, TTL_EXPIRED, 1), 1);

  const { rows: expiries } = await db.query<{ id: string; warehouse: string }>(`
    select m.id::text, w.code as warehouse from inventory.movements m join inventory.warehouses w on w.id = m.warehouse_id
    where m.reservation_id = $1 and m.kind = 'EXPIRE' order by w.code`, [r.id]);
  t.deepEqual(expiries.map((m) => m.warehouse), ['WH1', 'WH2']);
  const released = async () => (await readStream(redis, listener.names.stream))
    .filter((e) => e.event.data.reservation_id === r.id && ['warehouse.stock.released', 'warehouse.stock.updated'].includes(e.type)
      && e.event.data.kind === 'EXPIRE');
  t.true(await waitFor(async () => (await released()).length >= 4, 10_000), 'the events arrived');
  const events = await released();
  for (const m of expiries) {
    const mine = events.filter((e) => String(e.event.data.movement_id) === m.id);
    t.deepEqual(mine.map((e) => e.type).sort(), ['warehouse.stock.released', 'warehouse.stock.updated'], `movement ${m.id}: one of each`);
    const typed = mine.find((e) => e.type === 'warehouse.stock.released')!;
    t.like(typed.event, {
      type: 'warehouse.stock.released', subject: `A/${m.warehouse}`, id: `${m.id}:released`,
      data: { kind: 'EXPIRE', reason: 'TTL_EXPIRED', sku: 'A', warehouse: m.warehouse, reference: 'order-ev', reservation_id: r.id },
    });
  }
  const byWarehouse = Object.fromEntries(events.filter((e) => e.type === 'warehouse.stock.released')
    .map((e) => [e.event.data.warehouse, e.event.data.new]));
  t.deepEqual(byWarehouse, { WH1: { on_hand: 10, reserved: 0, available: 10 }, WH2: { on_hand: 10, reserved: 0, available: 10 } });
  t.deepEqual(await waitForCache(db, redis, listener.names.prefix), [], 'the cache is back to full stock');
  t.is(await redis.get(`${listener.names.prefix}stock:A:available`), '20');
});

test('the sweep chain survives a lost job: a worker that starts adds it back, and a sweep run by hand moves the pending one', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const first = await startTestWorker(db.url);
  t.true(await waitFor(async () => (await jobsOf(db, 'expire_sweep')).some((j) => j.key === 'expire_sweep'), 5_000));
  await first.stop();
  await db.query(`select graphile_worker.remove_job('expire_sweep')`);
  t.true(await waitFor(async () => (await jobsOf(db, 'expire_sweep')).length === 0, 5_000), 'the chain is gone');
  const r = await reserve(db, 'lost-chain', [{ sku: 'A', warehouse: 'WH1', qty: 5 }], '1 second');
  t.true(await waitUntilDatabaseTime(db, r.expires_at, 300));
  t.is(await statusOf(db, r.id), 'HELD', 'with no worker and no sweep, nothing expired it');

  const w = await worker(t, db.url);
  t.true(await waitForStatus(db, [r.id], 'EXPIRED', 5_000), 'the worker that started swept it');
  t.deepEqual((await movementsOf(db, r.id)).map((m) => `${m.kind}:${m.reason}`), ['RESERVE:null', 'EXPIRE:TTL_EXPIRED']);
  t.like(await stockOf(db, 'A', 'WH1'), { reserved: 0, available: 10 });
  t.is(await waitForMetric(w, TTL_EXPIRED, 1), 1);

  // `stockroom jobs run expire_sweep` enqueues an unkeyed sweep: it runs, then moves the chain's pending sweep.
  const pending = (await jobsOf(db, 'expire_sweep')).filter((j) => j.key === 'expire_sweep');
  t.is(pending.length, 1, 'one pending sweep');
  await db.query(`select graphile_worker.add_job('expire_sweep')`);
  t.true(await waitFor(async () => {
    const now = await jobsOf(db, 'expire_sweep');
    return now.length === 1 && now[0]!.key === 'expire_sweep';
  }, 5_000), 'still one sweep chain, no stray job');
});

test('a graceful stop lets the running sweep finish, forgets the heartbeat and leaves no job locked', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const w = await worker(t, db.url);
  let beat: { pool_id: string } | undefined;
  await waitFor(async () => Boolean(([beat] = (await db.query<{ pool_id: string }>('select pool_id from stockroom_meta.worker_heartbeats')).rows, beat)), 5_000);
  t.truthy(beat, 'the running pool beats');

  // Hold the stock row so the sweep, once it runs, waits inside expire_due.
  const blocker = new pg.Client({ connectionString: db.url });
  await blocker.connect();
  t.teardown(() => blocker.end());
  const r = await reserve(db, 'slow', [{ sku: 'A', warehouse: 'WH1', qty: 1 }], '1 second');
  await blocker.query('begin');
  await blocker.query(`select 1 from inventory.stock_levels for update`);
  t.true(await waitFor(async () => (await db.query(`
    select 1 from pg_stat_activity where datname = current_database() and application_name = 'stockroom worker' and wait_event_type = 'Lock'`)).rowCount === 1
    && (await jobsOf(db, 'expire_sweep')).some((j) => j.locked_by === beat!.pool_id), 10_000), 'the sweep is running, waiting for the row');

  let stopped = false;
  const stopping = w.stop().then(() => {
    stopped = true;
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.false(stopped, 'the stop waits for the running job');
  await blocker.query('rollback');
  await stopping;
  t.is(await statusOf(db, r.id), 'EXPIRED', 'the sweep finished its work');
  t.is(await w.metric(TTL_EXPIRED), 1);
  t.deepEqual((await jobsOf(db)).filter((j) => j.locked_at !== null), [], 'no job is left locked');
  t.true((await jobsOf(db, 'expire_sweep')).some((j) => j.key === 'expire_sweep'), 'and the next sweep is scheduled');
  t.deepEqual((await db.query('select pool_id from stockroom_meta.worker_heartbeats')).rows, [], 'the heartbeat is forgotten');
  await w.stop(); // twice is fine
  t.pass();
});

test('the next sweep is due at the next expires_at to come, at most a second away, never in the past for a due reservation it had to skip', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const dbNow = async () => (await queryOne<{ now: Date }>(db, 'select clock_timestamp() as now')).now.getTime();
  // The next sweep time, with database clock readings taken just before and just after it was computed.
  const nextSweep = async () => {
    const before = await dbNow();
    const at = (await nextSweepAt(db.pool, SWEEP_INTERVAL_MS)).getTime();
    return { at, before, after: await dbNow() };
  };
  // The interval from the moment it was computed, somewhere between the two readings (a loaded machine makes them far apart).
  const theInterval = ({ at, before, after }: { at: number; before: number; after: number }) =>
    at - SWEEP_INTERVAL_MS >= before - 1 && at - SWEEP_INTERVAL_MS <= after + 1;
  t.true(theInterval(await nextSweep()), 'nothing held: the interval');
  await reserve(db, 'later', [{ sku: 'A', warehouse: 'WH1', qty: 1 }], '1 hour');
  t.true(theInterval(await nextSweep()), 'nothing due within the interval');
  const soon = await reserve(db, 'soon', [{ sku: 'A', warehouse: 'WH1', qty: 1 }], '500 milliseconds');
  const next = await nextSweep();
  t.is(next.at, soon.expires_at.getTime(), 'the next expires_at');
  // Due, and still HELD (no worker runs here; a sweep would have skipped it if its rows were busy).
  t.true(await waitUntilDatabaseTime(db, soon.expires_at, 100));
  t.is(await statusOf(db, soon.id), 'HELD');
  t.true(theInterval(await nextSweep()), 'a due reservation does not pull the next sweep into the past');
});


test('expiry depends on no lock another session can keep, and a sweep that cannot get on does not stop other tasks', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  // The lock sweeps once took turns on, held by another session: expiry goes on.
  const holder = await db.pool.connect();
  t.teardown(async () => {
    await holder.query('rollback').catch(() => {});
    holder.release();
  });
  await holder.query('select pg_advisory_lock(7466001202412)');
  const w = await worker(t, db.url);
  const first = await reserve(db, 'held-lock', [{ sku: 'A', warehouse: 'WH1', qty: 1 }], '1 second');
  t.true(await waitForStatus(db, [first.id], 'EXPIRED', 10_000), 'expired while another session holds the old sweep lock');

  // A sweep that cannot get on (the reservations table locked): other tasks still run, and
  // expiry goes on once the table is free.
  const stuck = await reserve(db, 'stuck', [{ sku: 'A', warehouse: 'WH1', qty: 1 }], '1 second');
  await holder.query('begin');
  await holder.query('lock table inventory.reservations in access exclusive mode');
  t.true(await waitFor(async () => (await jobsOf(db, 'expire_sweep')).some((j) => j.locked_at !== null), 10_000), 'a sweep is stuck on the table');
  await db.query(`select graphile_worker.add_job('unlock_dead_workers', '{}', job_key => 'probe')`);
  t.true(await waitFor(async () => (await jobsOf(db, 'unlock_dead_workers')).every((j) => j.key !== 'probe'), 10_000), 'another task ran meanwhile');
  await holder.query('rollback');
  t.true(await waitForStatus(db, [stuck.id], 'EXPIRED', 15_000), 'expired once the table is free');
  t.is(await w.metric('stockroom_expiry_sweep_errors_total'), 0, 'the stuck sweep went on when it could (the timeout was not reached)');
});
