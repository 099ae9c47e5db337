// Fault-injection helpers for the change-stream tests: the consumer as a real
// subprocess (`stockroom start --listener`) that can be killed, SQL API
// traffic from several connections, the slot as Postgres sees it, a TCP proxy
// that can swallow the consumer's acknowledgements, and a seeded random so a
// failing run can be replayed (STOCKROOM_TEST_SEED=<seed>).
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type pg from 'pg';
import { isAlive } from '../../src/harness/processes.ts';
import { parseLsn } from '../../src/cache/lsn.ts';
import type { StreamEntry } from '../helpers/cache.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { CLI } from '../cli/run-cli.ts';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- random

/** mulberry32: small, seeded, good enough to pick delays and operations. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of a test: STOCKROOM_TEST_SEED when set, else a fresh one; logged so a failure can be replayed. */
export function testSeed(t: { log(...values: unknown[]): void }): number {
  const given = Number(process.env.STOCKROOM_TEST_SEED);
  const seed = Number.isInteger(given) && given > 0 ? given : Math.floor(Math.random() * 2 ** 31) + 1;
  t.log(`seed ${seed}: STOCKROOM_TEST_SEED=${seed} makes the same random choices (their timing still varies)`);
  return seed;
}

// ---------------------------------------------------------------- temp dirs

/** A temporary directory removed by the returned function; 0755 so the postgres user can reach inside. */
export function tempDir(label: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `stockroom-${label}-`));
  chmodSync(dir, 0o755);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

// ---------------------------------------------------------------- the consumer subprocess

export interface LogLine { msg?: string; level?: number; [key: string]: unknown }

export interface ConsumerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Parsed JSON log lines (stderr), in order; other stderr lines as { raw }. */
  readonly logs: LogLine[];
  readonly startedAt: number;
  /** How many times the log said 'replication stream started'. */
  streams(): number;
  /** Resolves with the first line (already logged or to come) matching, or undefined at the timeout / exit. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs: number, from?: number): Promise<LogLine | undefined>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly alive: boolean;
  /** Port of its HTTP endpoints (/health, /ready, /metrics), once it printed them. */
  httpPort(): number | undefined;
  /** A metric summed over its labels, from /metrics (undefined when not reachable). */
  metric(name: string): Promise<number | undefined>;
  /** kill -9, and wait until it is gone. */
  kill9(): Promise<void>;
  /** Last log lines, for assertion messages. */
  tail(lines?: number): string;
}

export interface ConsumerEnv {
  databaseUrl: string;
  redisUrl: string;
  names: { prefix: string; stream: string; slot: string; publication: string };
  dataDir: string;
}

const STREAM_STARTED = 'replication stream started';
const running = new Set<ConsumerProcess>();

/** Starts `node bin/stockroom.js start --listener` with only the environment it needs. */
export function spawnConsumer(env: ConsumerEnv): ConsumerProcess {
  const child = spawn(process.execPath, [CLI, 'start', '--listener'], {
    cwd: os.tmpdir(),
    env: {
      PATH: process.env.PATH, HOME: process.env.HOME,
      DATABASE_URL: env.databaseUrl, REDIS_URL: env.redisUrl,
      STOCKROOM_CACHE_PREFIX: env.names.prefix, STOCKROOM_STREAM: env.names.stream,
      STOCKROOM_SLOT: env.names.slot, STOCKROOM_PUBLICATION: env.names.publication,
      STOCKROOM_DATA_DIR: env.dataDir, PORT: '0', LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  const waiters = new Set<() => void>();
  let stdout = '';
  let port: number | undefined;
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    const match = /HTTP\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout);
    if (match) port = Number(match[1]);
  });
  createInterface({ input: child.stderr! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { raw: text };
    }
    logs.push(line);
    for (const wake of waiters) wake();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(handle);
      for (const wake of waiters) wake();
      resolve({ code, signal });
    });
  });
  const handle: ConsumerProcess = {
    child,
    pid: child.pid!,
    logs,
    startedAt: Date.now(),
    streams: () => logs.filter((l) => l.msg === STREAM_STARTED).length,
    waitForLog: (match, timeoutMs, from = 0) => new Promise((resolve) => {
      let seen = from;
      const check = () => {
        for (; seen < logs.length; seen++) {
          if (match(logs[seen]!)) return finish(logs[seen]);
        }
        if (child.exitCode !== null || child.signalCode !== null) finish(undefined);
      };
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      function finish(line: LogLine | undefined) {
        clearTimeout(timer);
        waiters.delete(check);
        resolve(line);
      }
      waiters.add(check);
      check();
    }),
    exited,
    get alive() {
      return child.exitCode === null && child.signalCode === null;
    },
    httpPort: () => port,
    metric: async (name) => {
      if (port === undefined) return undefined;
      try {
        const body = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2_000) })).text();
        let sum = 0;
        for (const line of body.split('\n')) {
          const match = /^([a-z_:]+)(\{[^}]*\})? ([-0-9.e+]+)$/i.exec(line);
          if (match && match[1] === name) sum += Number(match[3]);
        }
        return sum;
      } catch {
        return undefined;
      }
    },
    kill9: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    tail: (lines = 15) => logs.slice(-lines).map((l) => JSON.stringify(l)).join('\n'),
  };
  running.add(handle);
  return handle;
}

/** Waits for a (new) 'replication stream started' line after the given log index. */
export async function waitForStreaming(consumer: ConsumerProcess, timeoutMs: number, from = 0): Promise<boolean> {
  return (await consumer.waitForLog((l) => l.msg === STREAM_STARTED, timeoutMs, from)) !== undefined;
}

/** SIGTERM; resolves with how it ended and how long it took (kill -9 after the timeout). */
export async function terminate(consumer: ConsumerProcess, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number; timedOut: boolean }> {
  const started = performance.now();
  consumer.child.kill('SIGTERM');
  const result = await Promise.race([consumer.exited, sleep(timeoutMs).then(() => undefined)]);
  if (result) return { ...result, ms: performance.now() - started, timedOut: false };
  await consumer.kill9();
  return { code: null, signal: 'SIGKILL', ms: performance.now() - started, timedOut: true };
}

/** Kills -9 every consumer subprocess still running (for t.teardown). */
export async function killAllConsumers(): Promise<void> {
  await Promise.all([...running].map((c) => c.kill9()));
}

// ---------------------------------------------------------------- the slot

export interface SlotSample {
  activePid: number | null;
  confirmed: bigint | undefined;
  /** pg_current_wal_lsn() - confirmed_flush_lsn */
  lagBytes: number | null;
}

export async function slotSample(db: Queryable, slot: string): Promise<SlotSample | undefined> {
  const { rows } = await db.query<{ active_pid: number | null; confirmed: string | null; lag: string | null }>(`
    select active_pid, confirmed_flush_lsn::text as confirmed, (pg_current_wal_lsn() - confirmed_flush_lsn)::text as lag
    from pg_replication_slots where slot_name = $1`, [slot]);
  const row = rows[0];
  if (!row) return undefined;
  return {
    activePid: row.active_pid,
    confirmed: row.confirmed ? parseLsn(row.confirmed) : undefined,
    lagBytes: row.lag === null ? null : Number(row.lag),
  };
}

/** Writes WAL that no published table owns: only idle acknowledgements can move the slot past it. */
export async function writeUnpublishedWal(db: Queryable, megabytes: number): Promise<void> {
  await db.query('create table if not exists public.wal_filler (id serial primary key, payload text)');
  await db.query(`insert into public.wal_filler (payload)
    select repeat(md5(g::text), 30) from generate_series(1, $1) g`, [Math.ceil(megabytes * 1024)]);
}

// ---------------------------------------------------------------- events

/** A view of the ledger restricted to movements with id > afterId, for eventProblems. */
export function movementsAfter(db: Queryable, afterId: number): Queryable {
  return {
    query: (text, values) => {
      const restricted = text.replace(/from inventory\.movements\b/, `from inventory.movements where id > ${Math.trunc(afterId)}`);
      if (restricted === text && /inventory\.movements/.test(text)) throw new Error(`movementsAfter cannot restrict: ${text}`);
      return db.query(restricted, values);
    },
  };
}

export function movementIdOf(entry: StreamEntry): number {
  return Number(entry.event.data.movement_id);
}

/** CloudEvent ids that appear more than once (each movement's events have distinct ids). */
export function duplicateEventIds(entries: StreamEntry[]): string[] {
  const seen = new Map<string, number>();
  for (const e of entries) seen.set(e.id, (seen.get(e.id) ?? 0) + 1);
  return [...seen].filter(([, n]) => n > 1).map(([id, n]) => `${id} ×${n}`).slice(0, 20);
}

export async function maxMovementId(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ id: string | null }>('select max(id)::text as id from inventory.movements');
  return Number(rows[0]?.id ?? 0);
}

// ---------------------------------------------------------------- traffic

export interface TrafficOptions {
  clients: number;
  skus: string[];
  warehouses: string[];
  random: () => number;
  /** Every this many ms one client runs a single transaction of more than 2,000 changes (the consumer applies it in chunks). */
  bulkEveryMs?: number;
  /** Connection failures (a restarting Postgres) are counted and waited out instead of being unexpected. */
  tolerateConnectionErrors?: boolean;
  /** Stop by itself after this long at the latest. */
  maxMs?: number;
}

export interface TrafficStats {
  calls: number;
  /** Refusals the SQL API may give under contention (IV001, IV002, IV003, deadlocks). */
  refused: number;
  connectionErrors: number;
  bulks: number;
  unexpected: string[];
}

export interface Traffic {
  readonly stats: TrafficStats;
  /** Resolves true once n more calls succeeded (false at the timeout, or when the traffic ended first). */
  progress(calls: number, timeoutMs: number): Promise<boolean>;
  stop(): Promise<TrafficStats>;
}

const EXPECTED_REFUSALS = new Set(['IV001', 'IV002', 'IV003', '40P01']);
const CONNECTION_FAILURE = /ECONNREFUSED|ECONNRESET|terminat|shut ?down|Connection|timeout|the database system is|57P0[1-3]|08\d\d\d/i;

/**
 * Several connections calling the SQL API as fast as they can: single-line
 * reserves, reserves allocated across warehouses, confirms, releases, receipts
 * and corrections, transfers, cycle counts, policy changes; and now and then
 * one large transaction.
 */
export function startTraffic(pool: pg.Pool, options: TrafficOptions): Traffic {
  const { random, skus, warehouses } = options;
  const stats: TrafficStats = { calls: 0, refused: 0, connectionErrors: 0, bulks: 0, unexpected: [] };
  const held: string[] = [];
  let stopped = false;
  const deadline = Date.now() + (options.maxMs ?? 120_000);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
  let lastBulk = Date.now();

  const call = async (text: string, values: unknown[]): Promise<pg.QueryResult | undefined> => {
    try {
      const result = await pool.query(text, values);
      stats.calls++;
      return result;
    } catch (error) {
      const e = error as { code?: string; message?: string };
      if (e.code && EXPECTED_REFUSALS.has(e.code)) {
        stats.refused++;
      } else if (options.tolerateConnectionErrors && CONNECTION_FAILURE.test(`${e.code ?? ''} ${e.message ?? ''}`)) {
        stats.connectionErrors++;
        await sleep(50);
      } else if (stats.unexpected.length < 20) {
        stats.unexpected.push(`${e.code ?? ''} ${e.message ?? String(error)} (${text.slice(0, 60)})`);
      }
      return undefined;
    }
  };

  const bulk = async () => {
    stats.bulks++;
    // Rows in key order, as every SQL API function locks them; 7 passes × rows × 2 changes > 2,000.
    const passes = Math.max(1, Math.ceil(1_100 / (skus.length * warehouses.length)));
    await call(`
      with rows as (
        select p.sku, w.code from inventory.stock_levels s
        join inventory.products p on p.id = s.product_id join inventory.warehouses w on w.id = s.warehouse_id
        where p.sku = any($1) order by s.product_id, s.warehouse_id)
      select count(inventory.adjust(r.sku, r.code, 1, 'bulk receipt')) from generate_series(1, $2) g, lateral (select * from rows) r`,
    [skus, passes]);
  };

  const operation = async () => {
    const sku = pick(skus);
    const warehouse = pick(warehouses);
    const roll = random();
    if (roll < 0.25) {
      const result = await call('select id from inventory.reserve($1, $2::jsonb)',
        [`order-${int(1, 1e9)}`, JSON.stringify([{ sku, warehouse, qty: int(1, 3) }])]);
      if (result?.rows[0]) held.push(result.rows[0].id as string);
    } else if (roll < 0.33) {
      // No warehouse: allocated across warehouses, maybe split (several movements in one transaction).
      const result = await call('select id from inventory.reserve($1, $2::jsonb)',
        [`order-${int(1, 1e9)}`, JSON.stringify([{ sku, qty: int(2, 12) }, { sku: pick(skus), qty: 1 }])]);
      if (result?.rows[0]) held.push(result.rows[0].id as string);
    } else if (roll < 0.48 && held.length > 0) {
      const id = held.splice(Math.floor(random() * held.length), 1)[0]!;
      await call('select 1 from inventory.confirm($1)', [id]);
    } else if (roll < 0.63 && held.length > 0) {
      const id = held.splice(Math.floor(random() * held.length), 1)[0]!;
      await call('select 1 from inventory.release($1, $2)', [id, pick(['CANCELLED', 'PAYMENT_FAILED', 'TTL_EXPIRED'])]);
    } else if (roll < 0.78) {
      const delta = random() < 0.7 ? int(1, 8) : -int(1, 3);
      await call(`select 1 from inventory.adjust($1, $2, $3, $4)`, [sku, warehouse, delta, delta > 0 ? 'receipt' : 'damaged']);
    } else if (roll < 0.9) {
      const to = pick(warehouses.filter((w) => w !== warehouse));
      await call('select 1 from inventory.transfer($1, $2, $3, $4, $5)', [sku, warehouse, to, int(1, 3), 'rebalance']);
    } else if (roll < 0.96) {
      await call(`select 1 from inventory.set_count($1, $2,
        (select on_hand + $3 from inventory.stock(array[$1]) where warehouse = $2), 'cycle count')`, [sku, warehouse, int(0, 4)]);
    } else {
      await call('select 1 from inventory.set_policy($1, $2, $3, $4)', [sku, warehouse, int(0, 2), int(0, 15)]);
    }
  };

  const client = async (index: number) => {
    while (!stopped && Date.now() < deadline) {
      if (index === 0 && options.bulkEveryMs && Date.now() - lastBulk >= options.bulkEveryMs) {
        lastBulk = Date.now();
        await bulk();
      } else {
        await operation();
      }
    }
  };
  const done = Promise.all(Array.from({ length: options.clients }, (_, i) => client(i)));

  return {
    stats,
    progress: async (calls, timeoutMs) => {
      const target = stats.calls + calls;
      const until = Date.now() + timeoutMs;
      while (stats.calls < target && Date.now() < until && !stopped && Date.now() < deadline) await sleep(20);
      return stats.calls >= target;
    },
    stop: async () => {
      stopped = true;
      await done;
      return stats;
    },
  };
}

/** Products and warehouses without stock (no movement yet), then the SKU and warehouse lists. */
export async function createCatalog(db: Queryable, products: number, warehouseCount: number): Promise<{ skus: string[]; warehouses: string[] }> {
  const warehouses = Array.from({ length: warehouseCount }, (_, i) => `WH${i + 1}`);
  const skus = Array.from({ length: products }, (_, i) => `SKU-${String(i + 1).padStart(3, '0')}`);
  for (const [i, code] of warehouses.entries()) {
    await db.query('select inventory.upsert_warehouse($1, $2, null, $3)', [code, `Warehouse ${code}`, (i + 1) * 10]);
  }
  await db.query('select count(inventory.upsert_product(sku, $2 || sku)) from unnest($1::text[]) sku', [skus, 'Product ']);
  return { skus, warehouses };
}

/** One receipt per (sku, warehouse), with thresholds so low_stock events happen too. */
export async function receiveStock(db: Queryable, skus: string[], warehouses: string[], units: number): Promise<void> {
  await db.query(`select count(inventory.adjust(s, w, $3, 'initial receipt'))
    from unnest($1::text[]) s, unnest($2::text[]) w`, [skus, warehouses, units]);
  await db.query(`select count(inventory.set_policy(s, w, 0, 10))
    from unnest($1::text[]) s, unnest($2::text[]) w`, [skus, warehouses]);
}

// ---------------------------------------------------------------- a proxy that can lose acknowledgements

export interface PgProxy {
  port: number;
  /** The URL of the target database through the proxy. */
  url(databaseUrl: string): string;
  /**
   * From now on, bytes the client sends on replication connections are
   * dropped: the consumer keeps receiving and applying, but Postgres never
   * hears its acknowledgements (as when it dies before they leave).
   */
  dropReplicationReplies(on: boolean): void;
  /** Replication connections opened so far. */
  replicationConnections(): number;
  close(): Promise<void>;
}

export async function startPgProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<PgProxy> {
  let dropping = false;
  let replications = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: targetHost, port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    let first = true;
    let replication = false;
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (chunk: Buffer) => {
      if (first) {
        first = false;
        // The startup message names its parameters: replication=database marks a walsender connection.
        replication = chunk.includes(Buffer.from('replication\0database\0'));
        if (replication) replications++;
      }
      if (replication && dropping) return;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: (databaseUrl) => {
      const u = new URL(databaseUrl);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    dropReplicationReplies: (on) => {
      dropping = on;
    },
    replicationConnections: () => replications,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------- processes

/** Waits until a process id is gone (a zombie is reaped by Node promptly). */
export async function waitUntilDead(pid: number, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (isAlive(pid) && Date.now() < until) await sleep(20);
  return !isAlive(pid);
}
