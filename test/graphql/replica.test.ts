// Replica reads (DATABASE_READ_URL) against a real streaming replica: a
// primary of this file's own (the shared test server is not copied), a hot
// standby made from it by the harness, and the API in process between them.
// Replay paused on the replica proves where a query read: the replica keeps the
// old figure while the primary (a mutation's payload) has the new one.
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import pg from 'pg';
import { loadConfig } from '../../src/config.ts';
import { migrate } from '../../src/db/migrate.ts';
import { ConfigError } from '../../src/errors.ts';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/harness/postgres.ts';
import { startStreamingReplica, type StreamingReplica } from '../../src/harness/replica.ts';
import { createLogger } from '../../src/log.ts';
import { startTestApi, subscribe, token, type TestApi } from '../helpers/api.ts';
import { waitFor } from '../helpers/cache.ts';
import { assertInvariants } from '../helpers/invariants.ts';
import { setupCatalog } from '../helpers/inventory.ts';
import { metricValue } from '../helpers/metrics.ts';

const log = createLogger('silent');
const MAX_LAG = 3; // seconds (STOCKROOM_REPLICA_MAX_LAG)
const SMALL = { fsync: 'off', full_page_writes: 'off', shared_buffers: '32MB', max_connections: '100' };

let root: string;
let primary: RunningPostgres;
let replica: StreamingReplica;
let db: pg.Pool;
let standby: pg.Client;
let api: TestApi;
let writer: string;

interface ReplicaDetail {
  status: string; queriesOn: string; lagSeconds: number | null; lagBytes: number | null; replayPaused: boolean | null; problem?: string;
}

const onHand = async (headers?: Record<string, string>, through = api) => {
  const { status, data, errors } = await through.graphql<{ productBySku: { stockLevels: { nodes: Array<{ onHand: number }> } } }>(
    '{ productBySku(sku: "SKU-A") { stockLevels { nodes { onHand } } } }', undefined, { headers });
  if (status !== 200 || errors) throw new Error(`query failed: ${status} ${JSON.stringify(errors)}`);
  return data!.productBySku.stockLevels.nodes[0]!.onHand;
};
const adjust = async (delta: number) => {
  const { data, errors } = await api.graphql<{ adjust: { onHand: number } }>(
    `mutation { adjust(sku: "SKU-A", warehouse: "WH1", delta: ${delta}, reason: "replica test") { onHand } }`, undefined, { token: writer });
  if (errors) throw new Error(`mutation failed: ${JSON.stringify(errors)}`);
  return data!.adjust.onHand;
};
const reads = (database: 'replica' | 'primary', through = api) => metricValue(through.registry, 'stockroom_api_query_reads_total', { database });
const ready = async (through = api) => {
  const response = await fetch(`${through.url}/ready`);
  const body = (await response.json()) as { checks: { replica: { ok: boolean; detail: ReplicaDetail } } };
  return { status: response.status, replica: body.checks.replica };
};

test.before(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'stockroom-replica-'));
  chmodSync(root, 0o755); // Postgres runs as its own user when we are root
  primary = await startEmbeddedPostgres({ dir: path.join(root, 'primary'), persistent: false, database: 'stockroom', log, settings: SMALL });
  await migrate(primary.url(), log);
  db = new pg.Pool({ connectionString: primary.url(), max: 4 });
  db.on('error', () => {}); // an idle client the primary's stop terminated is not a test failure
  await setupCatalog({ query: (text, values) => db.query(text, values) }, { 'SKU-A': { WH1: 10 } });
  replica = await startStreamingReplica(primary, { dir: path.join(root, 'replica'), log, settings: SMALL });
  standby = new pg.Client({ connectionString: replica.url('stockroom') });
  standby.on('error', () => {}); // ended by the replica's stop in the last test
  await standby.connect();
  api = await startTestApi(primary.url(), {
    label: 'gql_replica', env: { DATABASE_READ_URL: replica.url('stockroom'), STOCKROOM_REPLICA_MAX_LAG: `${MAX_LAG}s`, STOCKROOM_REPLICA_SAMPLE_INTERVAL: '250ms' },
  });
  writer = await token('stockroom_writer');
});

test.after.always(async (t) => {
  await api?.stop();
  await standby?.end().catch(() => {});
  await replica?.stop();
  if (db) await assertInvariants(t, { query: (text, values) => db.query(text, values) });
  await db?.end();
  await primary?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

test.serial('DATABASE_READ_URL: a malformed URL, or a server that is not a standby, stops the start naming the variable', async (t) => {
  const malformed = t.throws(() => loadConfig({ DATABASE_READ_URL: 'mysql://replica/stock' }), { instanceOf: ConfigError });
  t.regex(malformed.message, /^DATABASE_READ_URL must be a URL like postgres:\/\//);
  t.throws(() => loadConfig({ STOCKROOM_REPLICA_MAX_LAG: 'soon' }), { instanceOf: ConfigError, message: /^STOCKROOM_REPLICA_MAX_LAG must be a duration/ });
  t.throws(() => loadConfig({ STOCKROOM_REPLICA_SAMPLE_INTERVAL: '10ms' }), { instanceOf: ConfigError, message: /^STOCKROOM_REPLICA_SAMPLE_INTERVAL must be a duration from 100ms to 1min/ });
  const notStandby = await t.throwsAsync(startTestApi(primary.url(), { label: 'gql_replica_bad', env: { DATABASE_READ_URL: primary.url() } }), { instanceOf: ConfigError });
  t.regex(notStandby.message, /^DATABASE_READ_URL postgres:\/\/postgres:\*\*\*@.* is not a streaming replica/);
});

test.serial('queries read from the replica, mutations write and read on the primary; lag shows, and past the maximum queries fall back to the primary', async (t) => {
  t.is(await onHand(), 10);
  t.like((await ready()).replica, { ok: true, detail: { status: 'streaming', queriesOn: 'replica', replayPaused: false } });

  // Replay paused: the replica keeps what it has while the primary moves on.
  await standby.query('select pg_wal_replay_pause()');
  t.true(await waitFor(async () => (await standby.query(`select pg_get_wal_replay_pause_state() as s`)).rows[0].s === 'paused', 5000));
  const fromReplica = await reads('replica');
  t.is(await adjust(5), 15, "the mutation's payload is read on the primary, in its transaction");
  t.is((await db.query(`select on_hand from inventory.stock_levels`)).rows[0].on_hand, 15, 'the write landed on the primary');
  t.is(await onHand(), 10, 'a query reads the replica, which has not replayed the change');
  t.true((await reads('replica')) > fromReplica);
  const askedBefore = await reads('primary');
  t.is(await onHand({ 'stockroom-read-from': 'primary' }), 15, 'a caller can ask for the primary');
  t.true((await reads('primary')) > askedBefore, 'counted as a read on the primary');
  // Over websockets too, by the connection parameter.
  const overWebsocket = async (connectionParams?: Record<string, string>) => {
    const socket = await subscribe(api.url, '{ productBySku(sku: "SKU-A") { stockLevels { nodes { onHand } } } }', {}, { connectionParams });
    try {
      const { data } = await socket.next(5000);
      return (data as { productBySku: { stockLevels: { nodes: Array<{ onHand: number }> } } }).productBySku.stockLevels.nodes[0]!.onHand;
    } finally {
      socket.close();
    }
  };
  t.is(await overWebsocket(), 10);
  t.is(await overWebsocket({ 'stockroom-read-from': 'primary' }), 15);
  const bad = await api.graphql('{ allWarehouses { nodes { code } } }', undefined, { headers: { 'stockroom-read-from': 'nearest' } });
  t.is(bad.status, 400);
  t.is(bad.errors?.[0]?.extensions?.code, 'INVALID_ARGUMENT');
  t.regex(bad.errors![0]!.message, /stockroom-read-from must be primary or replica/);

  // The lag, sampled each second, grows while replay is paused.
  t.true(await waitFor(async () => (await metricValue(api.registry, 'stockroom_replica_lag_seconds')) >= 1, 5000), 'lag in seconds shows');
  const lagged = await metricValue(api.registry, 'stockroom_replica_lag_seconds');
  t.true((await metricValue(api.registry, 'stockroom_replica_lag_bytes')) > 0);
  t.true(await waitFor(async () => (await metricValue(api.registry, 'stockroom_replica_lag_seconds')) > lagged, 3000), 'and grows');
  const metrics = await (await fetch(`${api.url}/metrics`)).text();
  t.regex(metrics, /^stockroom_replica_lag_seconds [1-9]/m);
  t.regex(metrics, /^stockroom_replica_lag_bytes [1-9]/m);

  // Further behind than the maximum: queries fall back to the primary; /ready shows it but stays ready.
  t.true(await waitFor(async () => (await ready()).replica.detail.status === 'lagging', (MAX_LAG + 3) * 1000));
  const lagging = await ready();
  t.is(lagging.status, 200);
  t.like(lagging.replica.detail, { queriesOn: 'primary', replayPaused: true });
  t.true(lagging.replica.detail.lagSeconds! > MAX_LAG);
  const fromPrimary = await reads('primary');
  t.is(await onHand(), 15);
  t.true((await reads('primary')) > fromPrimary);
  t.regex(await (await fetch(`${api.url}/metrics`)).text(), /^stockroom_replica_serving_queries 0$/m);

  // Replay resumed: caught up, lag back to 0, queries on the replica again.
  await standby.query('select pg_wal_replay_resume()');
  t.true(await waitFor(async () => {
    const { detail } = (await ready()).replica;
    return detail.status === 'streaming' && detail.lagBytes === 0;
  }, 5000), 'caught up');
  t.like((await ready()).replica.detail, { queriesOn: 'replica', lagSeconds: 0, replayPaused: false });
  const again = await reads('replica');
  t.is(await onHand(), 15, 'the change arrived on the replica');
  t.true((await reads('replica')) > again);
});

test.serial('a query whose replica session is ended mid-statement is answered by the primary', async (t) => {
  // An exclusive lock on the primary is replayed on the replica: the query waits there on it.
  const holder = await db.connect();
  try {
    await holder.query('begin');
    await holder.query('lock table inventory.products in access exclusive mode');
    await db.query('select pg_current_xact_id()'); // a commit flushes the WAL: the lock's record is sent with it
    t.true(await waitFor(async () => (await standby.query(
      `select 1 from pg_locks where mode = 'AccessExclusiveLock' and relation = 'inventory.products'::regclass`)).rowCount === 1, 5000), 'the lock is replayed');
    const fromPrimary = await reads('primary');
    const answer = onHand();
    let waiting: number | undefined;
    t.true(await waitFor(async () => {
      waiting = (await standby.query<{ pid: number }>(
        `select pid from pg_stat_activity where application_name like 'stockroom api reads%' and wait_event_type = 'Lock'`)).rows[0]?.pid;
      return waiting !== undefined;
    }, 5000), 'the query waits on the replica');
    await standby.query('select pg_terminate_backend($1)', [waiting]);
    // Run again on the primary, where it waits for the same lock until it is let go.
    t.true(await waitFor(async () => (await db.query(
      `select 1 from pg_stat_activity where application_name like 'stockroom api (%' and wait_event_type = 'Lock'`)).rowCount === 1, 5000), 'the query runs again on the primary');
    await holder.query('rollback');
    t.is(await answer, 15);
    t.is((await reads('primary')) - fromPrimary, 1);
  } finally {
    await holder.query('rollback').catch(() => {});
    holder.release();
  }
  t.true(await waitFor(async () => (await ready()).replica.detail.status === 'streaming', 5000), 'back on the replica at the next sample');
});

test.serial('replica stopped: queries are answered by the primary at once, and /ready says so', async (t) => {
  // An API that will not sample again (1 min): only a query that finds no replica session can tell it is gone.
  const unaware = await startTestApi(primary.url(), {
    label: 'gql_replica_unaware', env: { DATABASE_READ_URL: replica.url('stockroom'), STOCKROOM_REPLICA_SAMPLE_INTERVAL: '1min' },
  });
  t.teardown(() => unaware.stop());
  await replica.stop();
  t.is((await db.query('select 1 from pg_replication_slots where slot_name = $1', [replica.slot])).rowCount, 0, "the harness dropped the replica's slot");
  t.false(existsSync(path.join(root, 'replica')), "and removed the replica's directory");
  t.like((await ready(unaware)).replica.detail, { status: 'streaming' }, 'not sampled since the replica stopped');
  t.is(await onHand(undefined, unaware), 15, 'answered although the replica is gone');
  t.is(await reads('replica', unaware), 0);
  t.is(await reads('primary', unaware), 1);
  t.like((await ready(unaware)).replica, { ok: true, detail: { status: 'down', queriesOn: 'primary', problem: 'replica_unreachable' } });

  // The sampling API finds it down by itself.
  t.true(await waitFor(async () => (await ready()).replica.detail.status === 'down', 5000));
  const after = await ready();
  t.is(after.status, 200, 'ready: the primary answers the queries');
  t.like(after.replica, { ok: true, detail: { status: 'down', queriesOn: 'primary', problem: 'replica_unreachable', lagSeconds: null } });
  const fromPrimary = await reads('primary');
  t.is(await onHand(), 15);
  t.true((await reads('primary')) > fromPrimary);
  t.is(await adjust(-1), 14, 'mutations are unaffected');
  t.regex(await (await fetch(`${api.url}/metrics`)).text(), /^stockroom_replica_up 0$/m);
});
