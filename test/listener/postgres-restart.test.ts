// PostgreSQL restarted under the consumer: a fast shutdown (SIGINT) makes
// each walsender send what is left and wait until its client confirms it, so
// a consumer that does not answer the shutdown keepalive would hold Postgres
// up until wal_sender_timeout (60 s). Then the server comes back on the same
// port, and the consumer must reconnect by itself and lose nothing.
// Each test runs its own embedded PostgreSQL (persistent, so it restarts with
// its data) and an in-process listener on the shared test Redis.
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import pg from 'pg';
import { migrate } from '../../src/db/migrate.ts';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/harness/postgres.ts';
import { createLogger } from '../../src/log.ts';
import { eventProblems, readStream, testRedis, waitFor, waitForCache } from '../helpers/cache.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { startTestListener, type TestListener } from '../helpers/listener.ts';
import {
  createCatalog, duplicateEventIds, receiveStock, seededRandom, slotSample, startTraffic, tempDir, testSeed, waitUntilDead,
} from './consumer-process.ts';

const log = createLogger('silent');
/** A fast shutdown with nothing to wait for takes well under a second; a hang lasts until stop() escalates at 20 s. */
const FAST_SHUTDOWN_MS = 5_000;

interface Server {
  postgres: RunningPostgres;
  url: string;
  db: Queryable & { pool: pg.Pool };
}

async function startServer(dir: string): Promise<Server> {
  const postgres = await startEmbeddedPostgres({
    dir, persistent: true, database: 'stockroom', log,
    // No fsync (the OS keeps what a crashed server wrote), but commits wait for their WAL to be written:
    // a crash must not take back a commit the traffic was told about.
    settings: { fsync: 'off', synchronous_commit: 'on', full_page_writes: 'off', max_connections: '100' },
  });
  const url = postgres.url();
  const pool = new pg.Pool({ connectionString: url, max: 12 });
  pool.on('error', () => {}); // clients the shutdown terminated
  return { postgres, url, db: { pool, query: (text, values) => pool.query(text, values) } };
}

async function setUp(t: ExecutionContext, label: string) {
  const seed = testSeed(t);
  const temp = tempDir(label);
  const dir = path.join(temp.dir, 'postgres');
  const redis = testRedis();
  const servers: Server[] = [];
  let listener: TestListener | undefined;
  t.teardown(async () => {
    await listener?.stop();
    redis.disconnect();
    for (const server of servers.reverse()) {
      await server.db.pool.end().catch(() => {});
      await server.postgres.stop();
    }
    temp.remove();
  });
  const start = async () => {
    const server = await startServer(dir);
    servers.push(server);
    return server;
  };
  const first = await start();
  await migrate(first.url, log);
  const { skus, warehouses } = await createCatalog(first.db, 20, 3);
  listener = await startTestListener(first.url, { label });
  t.true(await waitFor(() => listener!.consumer.health().streaming, 20_000), 'the consumer streams');
  await receiveStock(first.db, skus, warehouses, 100);
  return { first, listener, redis, skus, warehouses, start, random: seededRandom(seed) };
}

/** A burst of concurrent changes, awaited: committed, but not necessarily seen by the consumer yet. */
async function burst(db: Queryable, skus: string[], warehouses: string[], n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, (_, i) => db.query(`select inventory.adjust($1, $2, $3, 'burst')`,
    [skus[i % skus.length], warehouses[i % warehouses.length], 1 + (i % 5)])));
}

async function fastShutdown(t: ExecutionContext, server: Server): Promise<void> {
  const started = performance.now();
  await server.postgres.stop();
  const ms = performance.now() - started;
  t.log(`fast shutdown took ${Math.round(ms)} ms`);
  t.true(ms < FAST_SHUTDOWN_MS, `a fast shutdown with the consumer attached took ${Math.round(ms)} ms (a walsender waiting for an acknowledgement that never comes holds it up to wal_sender_timeout)`);
}

async function assertExact(t: ExecutionContext, db: Queryable, redis: ReturnType<typeof testRedis>, names: { prefix: string; stream: string }) {
  t.deepEqual(await waitForCache(db, redis, names.prefix, 30_000), [], 'Redis equals Postgres');
  let problems: string[] = [];
  await waitFor(async () => (problems = await eventProblems(db, await readStream(redis, names.stream))).length === 0, 15_000, 250);
  t.deepEqual(problems, [], 'one warehouse.stock.updated and one typed event per movement, across the restart');
  t.deepEqual(duplicateEventIds(await readStream(redis, names.stream)), [], 'no event twice');
}

test.serial('a fast shutdown with the consumer attached takes seconds; after the restart it reconnects by itself and loses nothing', async (t) => {
  t.timeout(100_000);
  const { first, listener, redis, skus, warehouses, start } = await setUp(t, 'pg_restart_idle');
  t.deepEqual(await waitForCache(first.db, redis, listener.names.prefix), []);

  // Committed right before the shutdown: the consumer may not have applied them yet.
  await burst(first.db, skus, warehouses, 120);
  await fastShutdown(t, first);
  t.true(await waitFor(() => !listener.consumer.health().streaming, 10_000), 'the consumer saw the server go');

  const second = await start();
  t.is(second.postgres.port, first.postgres.port, 'the server came back on the same port');
  t.true(await waitFor(() => listener.consumer.health().streaming, 45_000), 'the consumer reconnected by itself');
  t.true(await listener.metric('stockroom_replication_reconnects_total') > 0);
  await assertExact(t, second.db, redis, listener.names); // the burst before the shutdown is there

  await burst(second.db, skus, warehouses, 120);
  await assertExact(t, second.db, redis, listener.names); // and changes after the restart flow
  const slot = await slotSample(second.db, listener.names.slot);
  t.not(slot?.activePid, null, 'streaming from the slot');
});

test.serial('PostgreSQL restarted while traffic runs: the shutdown is fast and no change or event is lost or doubled', async (t) => {
  t.timeout(100_000);
  const { first, listener, redis, skus, warehouses, start, random } = await setUp(t, 'pg_restart_busy');

  const traffic = startTraffic(first.db.pool, { clients: 4, skus, warehouses, random, tolerateConnectionErrors: true, maxMs: 100_000 });
  t.teardown(() => traffic.stop().then(() => {}));
  t.true(await traffic.progress(500, 30_000));
  await fastShutdown(t, first);

  const second = await start();
  t.is(second.postgres.port, first.postgres.port);
  t.true(await waitFor(() => listener.consumer.health().streaming, 45_000), 'the consumer reconnected by itself');
  t.true(await traffic.progress(500, 30_000), 'the traffic resumed on the restarted server');
  const stats = await traffic.stop();
  t.deepEqual(stats.unexpected, []);
  t.true(stats.connectionErrors > 0, 'the traffic did see the server go');
  await assertExact(t, second.db, redis, listener.names);
});

test.serial('PostgreSQL crashing under traffic (immediate shutdown, crash recovery): the consumer reconnects and nothing is lost or doubled', async (t) => {
  t.timeout(100_000);
  const { first, listener, redis, skus, warehouses, start, random } = await setUp(t, 'pg_crash_busy');

  const traffic = startTraffic(first.db.pool, { clients: 4, skus, warehouses, random, tolerateConnectionErrors: true, bulkEveryMs: 1_500, maxMs: 100_000 });
  t.teardown(() => traffic.stop().then(() => {}));
  t.true(await traffic.progress(500, 30_000));
  // SIGQUIT: every server process exits at once, no shutdown checkpoint; the next start recovers from WAL,
  // and the slot comes back as of its last checkpoint (older than what the consumer acknowledged since).
  process.kill(first.postgres.pid, 'SIGQUIT');
  t.true(await waitUntilDead(first.postgres.pid, 10_000), 'the postmaster is gone');

  const second = await start();
  t.is(second.postgres.port, first.postgres.port);
  t.true(await waitFor(() => listener.consumer.health().streaming, 45_000), 'the consumer reconnected by itself');
  t.true(await traffic.progress(500, 30_000), 'the traffic resumed on the recovered server');
  const stats = await traffic.stop();
  t.deepEqual(stats.unexpected, []);
  await assertExact(t, second.db, redis, listener.names);
  t.log(`${await listener.metric('stockroom_events_duplicates_total')} replayed events were already in the stream`);
});
