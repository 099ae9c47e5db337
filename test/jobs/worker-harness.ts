// The worker role in the test process (as `stockroom start --worker` runs it,
// minus the signals), with a Redis cache writer of its own names, a registry
// to read its metrics from, and its logs kept for assertions.
import { Writable } from 'node:stream';
import type { Runner } from 'graphile-worker';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { cacheKeys } from '../../src/cache/keys.ts';
import { CacheWriter } from '../../src/cache/writer.ts';
import { startWorker } from '../../src/jobs/worker.ts';
import { Lifecycle } from '../../src/lifecycle.ts';
import { testRedis, uniqueNames, waitFor } from '../helpers/cache.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { metricValue } from '../helpers/metrics.ts';

export interface LogLine { level: number; msg: string; task?: string; [field: string]: unknown }

export interface TestWorker {
  runner: Runner;
  names: ReturnType<typeof uniqueNames>;
  redis: ReturnType<typeof testRedis>;
  writer: CacheWriter;
  registry: Registry;
  lifecycle: Lifecycle;
  /** Every log line the worker wrote, parsed. */
  logs: LogLine[];
  /** A counter's value summed over its labels. */
  metric(name: string): Promise<number>;
  /** Stops the worker gracefully (safe to call twice). */
  stop(): Promise<void>;
}

export interface TestWorkerOptions {
  names?: ReturnType<typeof uniqueNames>;
  concurrency?: number;
  verifyFix?: boolean;
  pollIntervalMs?: number;
  heartbeatMs?: number;
}

/** A logger that keeps its lines in memory (and echoes them when LOG_LEVEL asks for it). */
export function memoryLogger(lines: LogLine[], level = 'info') {
  const echo = process.env.LOG_LEVEL && process.env.LOG_LEVEL !== 'silent';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (!text) continue;
        lines.push(JSON.parse(text) as LogLine);
        if (echo) process.stderr.write(`${text}\n`);
      }
      done();
    },
  });
  return pino({ name: 'test-worker', level }, stream);
}

export async function startTestWorker(databaseUrl: string, options: TestWorkerOptions = {}): Promise<TestWorker> {
  const names = options.names ?? uniqueNames('worker');
  const logs: LogLine[] = [];
  const log = memoryLogger(logs);
  const lifecycle = new Lifecycle(log);
  const registry = new Registry();
  const redis = testRedis();
  lifecycle.onStop('test redis', () => redis.quit().then(() => {}, () => redis.disconnect()));
  const writer = new CacheWriter(redis, cacheKeys(names.prefix), { name: names.stream, maxLength: 10_000 });
  try {
    const runner = await startWorker({
      databaseUrl, writer, log, registry, lifecycle,
      concurrency: options.concurrency ?? 4,
      verifyFix: options.verifyFix ?? false,
      pollIntervalMs: options.pollIntervalMs ?? 200,
      heartbeatMs: options.heartbeatMs,
    });
    return {
      runner, names, redis, writer, registry, lifecycle, logs,
      metric: (name) => metricValue(registry, name),
      stop: () => lifecycle.stop('test done'),
    };
  } catch (error) {
    await lifecycle.stop('start failed');
    throw error;
  }
}

/** Waits until a counter reaches a value; returns the value it has then. */
export async function waitForMetric(worker: Pick<TestWorker, 'metric'>, name: string, value: number, timeoutMs = 10_000): Promise<number> {
  let seen = await worker.metric(name);
  await waitFor(async () => (seen = await worker.metric(name)) >= value, timeoutMs, 50);
  return seen;
}

/** The status of a reservation. */
export async function statusOf(db: Queryable, id: string): Promise<string | undefined> {
  const { rows } = await db.query<{ status: string }>('select status from inventory.reservations where id = $1', [id]);
  return rows[0]?.status;
}

/** Waits until every reservation has a status; true when they all did in time. */
export async function waitForStatus(db: Queryable, ids: string[], status: string, timeoutMs = 10_000): Promise<boolean> {
  return waitFor(async () => {
    const { rows } = await db.query<{ n: number }>(
      'select count(*)::int as n from inventory.reservations where id = any($1::uuid[]) and status = $2', [ids, status]);
    return rows[0]?.n === ids.length;
  }, timeoutMs, 50);
}

/** Jobs as graphile-worker's public view shows them, optionally of one task. */
export async function jobsOf(db: Queryable, task?: string) {
  const { rows } = await db.query<{ id: string; task_identifier: string; key: string | null; run_at: Date; locked_at: Date | null; locked_by: string | null; attempts: number; max_attempts: number; last_error: string | null }>(
    `select id::text, task_identifier, key, run_at, locked_at, locked_by, attempts, max_attempts, last_error
     from graphile_worker.jobs where $1::text is null or task_identifier = $1 order by id`, [task ?? null]);
  return rows;
}

/** Waits until the database clock has passed a time (by a margin). */
export async function waitUntilDatabaseTime(db: Queryable, at: Date, marginMs = 0, timeoutMs = 15_000): Promise<boolean> {
  return waitFor(async () => {
    const { rows } = await db.query<{ past: boolean }>(
      `select clock_timestamp() > $1::timestamptz + make_interval(secs => $2) as past`, [at, marginMs / 1000]);
    return rows[0]?.past === true;
  }, timeoutMs, 50);
}
