// NOTIFY stockroom_resync, '<sku>': the manual "sync this product". A sku's
// keys are rewritten from Postgres (repairing keys edited by hand) while the
// stream goes on; hostile payloads are logged and ignored; the LISTEN
// connection comes back after it is lost (however long Postgres refuses it),
// and the cache is rebuilt since requests may have been missed meanwhile.
import test, { type ExecutionContext } from 'ava';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadConfig } from '../../src/config.ts';
import { Lifecycle } from '../../src/lifecycle.ts';
import { RESYNC_CHANNEL } from '../../src/listener/resync.ts';
import { startListener, type ListenerRole } from '../../src/listener/role.ts';
import { openTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { cacheMismatches, readStream, testRedis, uniqueNames, waitFor, waitForCache } from '../helpers/cache.ts';
import { testServers } from '../helpers/environment.ts';
import { queryOne, setupCatalog } from '../helpers/inventory.ts';
import { metricValue } from '../helpers/metrics.ts';

// ---------------------------------------------------------------------------
// Local helpers

type Db = TestDatabase & { close(): Promise<void> };

interface LogLine { level: number; msg: string; component?: string; [k: string]: unknown }

interface Listener extends ListenerRole {
  names: ReturnType<typeof uniqueNames>;
  registry: Registry;
  logs: LogLine[];
  /** A counter summed over its series, or only those whose labels match. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

/**
 * The listener role in-process, like test/helpers/listener.ts, but with its
 * log lines kept (to see that bad requests are logged).
 */
async function startListenerWithLogs(databaseUrl: string, label: string): Promise<Listener> {
  const names = uniqueNames(label);
  const config = loadConfig({
    STOCKROOM_CACHE_PREFIX: names.prefix, STOCKROOM_STREAM: names.stream, STOCKROOM_SLOT: names.slot,
    STOCKROOM_PUBLICATION: names.publication,
  }, process.cwd());
  const logs: LogLine[] = [];
  const log = pino({ name: 'test-resync', level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const lifecycle = new Lifecycle(log);
  const registry = new Registry();
  try {
    const role = await startListener({ config, databaseUrl, redisUrl: testServers().redisUrl, log, registry, lifecycle });
    return {
      ...role, names, registry, logs,
      metric: (name, labels = {}) => metricValue(registry, name, labels),
      stop: () => lifecycle.stop('test done'),
    };
  } catch (error) {
    await lifecycle.stop('start failed');
    throw error;
  }
}

interface Setup { db: Db; redis: Redis; listener: Listener; key(suffix: string): string }

async function setup(t: ExecutionContext, label: string, stock: Record<string, Record<string, number>>): Promise<Setup> {
  const db = await openTestDatabase(label);
  const redis = testRedis();
  let listener: Listener | undefined;
  t.teardown(async () => {
    await listener?.stop();
    redis.disconnect();
    await db.close();
  });
  await setupCatalog(db, stock);
  listener = await startListenerWithLogs(db.url, label);
  const prefix = listener.names.prefix;
  return { db, redis, listener, key: (suffix) => `${prefix}${suffix}` };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function notify(db: Db, payload: string): Promise<void> {
  await db.query('select pg_notify($1, $2)', [RESYNC_CHANNEL, payload]);
}

/** Every resync request handled so far, whatever its outcome. */
const handled = (listener: Listener) => listener.metric('stockroom_cache_resyncs_total');

// ---------------------------------------------------------------------------

test('NOTIFY stockroom_resync rewrites a tampered sku while the stream keeps working', async (t) => {
  const { db, redis, listener, key } = await setup(t, 'resync_tamper', { A: { WH1: 10, WH2: 5 }, B: { WH1: 3 } });
  const prefix = listener.names.prefix;
  t.deepEqual(await cacheMismatches(db, redis, prefix), []);
  await redis.mset(key('stock:A:warehouse:WH1'), '999', key('stock:A:total'), '12345', key('stock:A:status'), 'out_of_stock');
  await redis.set(key('stock:B:warehouse:WH1'), '777');
  await sleep(500);
  t.is(await redis.get(key('stock:A:total')), '12345', 'nothing repairs a tampered key by itself');
  t.is((await cacheMismatches(db, redis, prefix)).length, 4);

  // The literal NOTIFY statement, as a DBA would type it.
  await db.query(`NOTIFY stockroom_resync, 'A'`);
  t.true(await waitFor(async () => (await redis.get(key('stock:A:total'))) === '15', 10_000), 'the NOTIFY rewrote A');
  t.deepEqual(await redis.mget(key('stock:A:warehouse:WH1'), key('stock:A:warehouse:WH2'), key('stock:A:available'), key('stock:A:status')),
    ['10', '5', '15', 'in_stock']);
  t.is(await redis.get(key('stock:B:warehouse:WH1')), '777', 'only the sku asked for is rewritten');
  t.is(await listener.metric('stockroom_cache_resyncs_total', { outcome: 'rewritten' }), 1);

  // The stream goes on, beside and after the resync.
  await db.query(`select inventory.adjust('A', 'WH2', -2, 'damaged')`);
  await notify(db, 'B');
  t.deepEqual(await waitForCache(db, redis, prefix), []);
  t.is(await redis.get(key('stock:A:total')), '13');
  const entries = await readStream(redis, listener.names.stream);
  t.deepEqual(entries.map((e) => e.type), ['warehouse.stock.updated', 'warehouse.stock.adjusted'], 'a resync appends no events');
  t.is(await listener.metric('stockroom_cache_resyncs_total', { outcome: 'rewritten' }), 2);
  t.true(listener.consumer.health().streaming);
});

test('hostile payloads are logged and ignored; a valid NOTIFY still works afterwards', async (t) => {
  const { db, redis, listener, key } = await setup(t, 'resync_hostile', { A: { WH1: 10 }, B: { WH1: 4 }, C: { WH1: 6 } });
  const prefix = listener.names.prefix;
  // A is tampered with: any request that resynced A by accident would show.
  await redis.set(key('stock:A:warehouse:WH1'), '999');
  await redis.set(key('stock:A:total'), '999');
  const keysBefore = (await redis.keys(`${prefix}*`)).sort();

  // Not a sku by any reading of the sku rule (1..128 characters, no surrounding spaces).
  const rejected = [
    'x'.repeat(7_999), // the largest NOTIFY payload (8000 bytes is refused by Postgres)
    'A'.repeat(129), // one past the sku limit
    ' A ', // surrounding spaces: not a sku, and not trimmed into one
    'A ',
    '', // empty payload
  ];
  // Control characters: resync.ts refuses them outright; treated as an (unknown) sku would be as good.
  const control = ['A\u0001', '\u001b[2J\u001b[HA', 'A\nB', 'A\u007f', '\tA'];
  // Well-formed text that names no sku.
  const unknown = [
    'NOPE',
    '{"sku":"A"}', // JSON is not parsed: it is just an unknown sku
    '["A"]',
    `A'; drop table inventory.products; --`, // SQL-looking text
    `' or '1'='1`,
    'A*', // no pattern matching either
  ];
  for (const payload of [...rejected, ...control, ...unknown]) await notify(db, payload);
  await db.query(`NOTIFY stockroom_resync, ${pg.escapeLiteral(`B'); select pg_sleep(10); --`)}`);
  unknown.push(`B'); select pg_sleep(10); --`);
  await t.throwsAsync(notify(db, 'x'.repeat(8_000)), { message: /payload string too long/ }, 'Postgres refuses 8000 bytes itself');

  const total = rejected.length + control.length + unknown.length;
  t.true(await waitFor(async () => (await handled(listener)) >= total, 10_000), 'every request was handled');
  const outcome = (o: string) => listener.metric('stockroom_cache_resyncs_total', { outcome: o });
  const [nRejected, nUnknown] = [await outcome('rejected'), await outcome('unknown')];
  t.is(nRejected + nUnknown, total, 'each one rejected or found to name no sku');
  t.true(nRejected >= rejected.length);
  t.true(nUnknown >= unknown.length);
  t.is(await outcome('rewritten'), 0);
  t.is(await outcome('failed'), 0);
  t.is(await outcome('dropped'), 0);

  const warnings = listener.logs.filter((l) => l.msg === 'ignored a resync request that is not a sku');
  t.is(warnings.length, nRejected, 'each rejected payload is logged');
  t.true(warnings.every((w) => w.level === 40), 'as warnings');
  t.true(warnings.every((w) => typeof w.payload !== 'string' || w.payload.length <= 80), 'long payloads are cut in the log');
  t.true(warnings.some((w) => w.length === 7_999));
  const unknownLogged = listener.logs.filter((l) => l.msg === 'resynced sku' && l.outcome === 'unknown').map((l) => String(l.sku));
  t.is(unknownLogged.length, nUnknown, 'each unknown sku is logged with its outcome');
  t.deepEqual(unknownLogged.filter((sku) => unknown.includes(sku)), unknown);
  t.deepEqual(unknownLogged.filter((sku) => !unknown.includes(sku) && !control.includes(sku)), [], 'nothing was altered (trimmed, parsed) on the way');

  t.deepEqual((await redis.keys(`${prefix}*`)).sort(), keysBefore, 'no keys were created for any payload');
  t.is(await redis.get(key('stock:A:total')), '999', 'none of them resynced A');
  t.is((await queryOne(db, 'select count(*)::int as n from inventory.products')).n, 3);

  // Still alive: the stream flows and a valid NOTIFY works.
  t.true(listener.consumer.health().streaming);
  await db.query(`select inventory.adjust('C', 'WH1', 1, 'receipt')`);
  t.true(await waitFor(async () => (await redis.get(key('stock:C:total'))) === '7', 10_000));
  await notify(db, 'A');
  t.true(await waitFor(async () => (await redis.get(key('stock:A:total'))) === '10', 10_000));
  t.is(await redis.get(key('stock:A:warehouse:WH1')), '10');
  t.deepEqual(await cacheMismatches(db, redis, prefix), []);
  t.is(await listener.metric('stockroom_cache_resyncs_total', { outcome: 'rewritten' }), 1);
});

test('the LISTEN connection comes back after a loss longer than 3 s, rebuilds the cache, and NOTIFY works again', async (t) => {
  const { db, redis, listener, key } = await setup(t, 'resync_reconnect', { A: { WH1: 10 }, B: { WH1: 4 } });
  const admin = new pg.Client({ connectionString: testServers().adminUrl });
  await admin.connect();
  const allow = (yes: boolean) => admin.query(`alter database ${pg.escapeIdentifier(db.name)} allow_connections ${yes}`);
  t.teardown(async () => {
    await allow(true).catch(() => {});
    await admin.end();
  });
  const resyncBackends = async () => (await db.query<{ pid: number }>(
    `select pid from pg_stat_activity where application_name = 'stockroom resync' and datname = current_database()`)).rows;
  t.is((await resyncBackends()).length, 1);
  const rebuildsBefore = await listener.metric('stockroom_cache_rebuilds_total');

  // Something the rebuild after the reconnect must repair.
  await redis.set(key('stock:B:warehouse:WH1'), '555');

  // Postgres refuses new connections to this database for longer than
  // pg-listen's default retry timeout (3 s); then the LISTEN backend goes.
  await allow(false);
  const terminated = await db.query(
    `select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'stockroom resync' and datname = current_database()`);
  t.is(terminated.rowCount, 1);
  await sleep(4_500);
  t.is((await resyncBackends()).length, 0, 'no LISTEN connection while connections are refused');
  // A request sent meanwhile has no listener and is lost: the rebuild after the reconnect covers it.
  await notify(db, 'B');
  await db.query(`select inventory.adjust('A', 'WH1', 1, 'receipt')`); // the replication stream is unaffected
  t.true(await waitFor(async () => (await redis.get(key('stock:A:total'))) === '11', 10_000));
  t.is(await redis.get(key('stock:B:warehouse:WH1')), '555');
  await allow(true);

  t.true(await waitFor(async () => (await resyncBackends()).length === 1, 30_000), 'the LISTEN connection is back');
  t.true(await waitFor(async () => (await listener.metric('stockroom_cache_rebuilds_total')) > rebuildsBefore, 10_000),
    'the cache is rebuilt after the reconnect');
  t.true(await waitFor(async () => (await redis.get(key('stock:B:warehouse:WH1'))) === '4', 10_000), 'the rebuild repaired B');
  t.true(listener.logs.some((l) => l.msg === 'resync listener reconnected; resynchronising what may have been missed'));
  t.false(listener.logs.some((l) => l.msg === 'resync after reconnect failed'));

  // And NOTIFY works on the new connection (LISTEN was issued again).
  await redis.set(key('stock:A:total'), '1');
  await notify(db, 'A');
  t.true(await waitFor(async () => (await redis.get(key('stock:A:total'))) === '11', 10_000), 'NOTIFY after the reconnect');
  t.true(listener.consumer.health().streaming, 'the replication stream was not disturbed');
  t.deepEqual(await waitForCache(db, redis, listener.names.prefix), []);
});

test('a sku of 70 characters outside the BMP (140 UTF-16 code units) is resynced: length counts characters', async (t) => {
  const astral = '𝔸'.repeat(70);
  const { db, redis, listener, key } = await setup(t, 'resync_astral', { [astral]: { WH1: 3 } });
  t.is((await queryOne(db, 'select length(sku) as n from inventory.products')).n, 70);
  await redis.set(key(`stock:${astral}:total`), '999');
  await notify(db, astral);
  t.true(await waitFor(async () => (await redis.get(key(`stock:${astral}:total`))) === '3', 10_000));
  t.is(await listener.metric('stockroom_cache_resyncs_total', { outcome: 'rewritten' }), 1);
});

test('a sku the database accepts with a trailing no-break space can be resynced', async (t) => {
  // resync.ts checks surrounding spaces as the database's btrim() does (spaces
  // only), so a sku the database accepts can always be resynced.
  const nbsp = 'SKU-NBSP\u00a0';
  const { db, redis, listener, key } = await setup(t, 'resync_nbsp', { [nbsp]: { WH1: 4 } });
  t.is((await queryOne(db, 'select sku from inventory.products')).sku, nbsp, 'Postgres accepted it as it is');
  t.is(await redis.get(key(`stock:${nbsp}:total`)), '4', 'the stream carried it');
  await redis.set(key(`stock:${nbsp}:total`), '999');
  await notify(db, nbsp);
  t.true(await waitFor(async () => (await handled(listener)) >= 1, 10_000));
  t.is(await listener.metric('stockroom_cache_resyncs_total', { outcome: 'rejected' }), 0, 'the request is not refused');
  t.true(await waitFor(async () => (await redis.get(key(`stock:${nbsp}:total`))) === '4', 5_000), 'the sku is resynced');
});
