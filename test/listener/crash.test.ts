// The consumer as it runs in service (`stockroom start --listener`, its own
// process), killed -9 at random points while several connections keep the
// SQL API busy: whatever it had applied but not acknowledged is replayed, and
// the version guard and the LSN-derived stream ids make the replay harmless.
// At the end Redis equals Postgres, every movement has exactly one
// warehouse.stock.updated and one typed event, and the slot holds no WAL.
// Random choices are seeded: the seed is logged, STOCKROOM_TEST_SEED replays it.
import test, { type ExecutionContext } from 'ava';
import { parseLsn } from '../../src/cache/lsn.ts';
import { eventProblems, readStream, testRedis, uniqueNames, waitFor, waitForCache } from '../helpers/cache.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { testServers } from '../helpers/environment.ts';
import {
  createCatalog, duplicateEventIds, killAllConsumers, receiveStock, seededRandom, sleep, slotSample, spawnConsumer,
  startPgProxy, startTraffic, tempDir, terminate, testSeed, waitForStreaming, writeUnpublishedWal,
  type ConsumerEnv, type ConsumerProcess,
} from './consumer-process.ts';

const ONE_MB = 1024 * 1024;

async function setUp(t: ExecutionContext, label: string) {
  const seed = testSeed(t);
  const db = await openTestDatabase(label);
  const redis = testRedis();
  const data = tempDir(label);
  const names = uniqueNames(label);
  t.teardown(async () => {
    await killAllConsumers();
    redis.disconnect();
    await db.close();
    data.remove();
  });
  const { skus, warehouses } = await createCatalog(db, 40, 4);
  const env: ConsumerEnv = { databaseUrl: db.url, redisUrl: testServers().redisUrl, names, dataDir: data.dir };
  // Two streams: the kill schedule stays the same for a seed however the traffic interleaves.
  return { db, redis, names, env, skus, warehouses, random: seededRandom(seed), trafficRandom: seededRandom(seed ^ 0x5bd1e995) };
}

async function started(t: ExecutionContext, consumer: ConsumerProcess, what: string): Promise<void> {
  if (!(await waitForStreaming(consumer, 30_000))) t.fail(`${what}: the consumer did not start streaming within 30 s:\n${consumer.tail()}`);
}

/** The slot once no walsender holds it (a killed consumer's walsender notices the closed socket). */
async function releasedSlot(t: ExecutionContext, db: Parameters<typeof slotSample>[0], slot: string) {
  let sample = await slotSample(db, slot);
  await waitFor(async () => (sample = await slotSample(db, slot))?.activePid === null, 10_000);
  t.is(sample?.activePid, null, 'the walsender of the stopped consumer ended');
  return sample!;
}

async function redisPosition(redis: ReturnType<typeof testRedis>, prefix: string): Promise<bigint> {
  const text = await redis.get(`${prefix}meta:position`);
  return text ? parseLsn(text) : 0n;
}

/** What Postgres and the consumer say about the stream, for a failure message. */
async function replicationState(db: Parameters<typeof slotSample>[0], slot: string, consumer: ConsumerProcess): Promise<string> {
  const { rows } = await db.query(`
    select pg_current_wal_lsn()::text as current, s.confirmed_flush_lsn::text as confirmed, s.restart_lsn::text as restart,
           r.sent_lsn::text as sent, r.write_lsn::text as write, r.flush_lsn::text as flush, r.reply_time, r.state
    from pg_replication_slots s left join pg_stat_replication r on r.pid = s.active_pid where s.slot_name = $1`, [slot]);
  const port = consumer.httpPort();
  const ready = port === undefined ? 'no port' : await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.text(), (e: Error) => e.message);
  return `slot ${JSON.stringify(rows[0])}\nready ${ready}\n${consumer.tail(25)}`;
}

/** Redis equals Postgres, and the stream holds every movement's events exactly once. */
async function assertExact(t: ExecutionContext, db: Parameters<typeof eventProblems>[0], redis: ReturnType<typeof testRedis>, names: { prefix: string; stream: string }) {
  t.deepEqual(await waitForCache(db, redis, names.prefix, 45_000), [], 'Redis equals Postgres');
  // Every movement was made after the consumer's first start (the catalog started empty).
  let problems: string[] = [];
  await waitFor(async () => (problems = await eventProblems(db, await readStream(redis, names.stream))).length === 0, 15_000, 250);
  t.deepEqual(problems, [], 'one warehouse.stock.updated and one typed event per movement');
  const entries = await readStream(redis, names.stream);
  t.deepEqual(duplicateEventIds(entries), [], 'no event twice');
  const { rows: [counts] } = await db.query<{ movements: string }>('select count(*)::text as movements from inventory.movements');
  return { entries: entries.length, movements: Number(counts!.movements) };
}

test.serial('kill -9 at random points under SQL traffic: nothing lost, nothing twice, no WAL retained', async (t) => {
  t.timeout(110_000);
  const { db, redis, names, env, skus, warehouses, random, trafficRandom } = await setUp(t, 'crash_kill9');

  let consumer = spawnConsumer(env);
  await started(t, consumer, 'first start');
  await receiveStock(db, skus, warehouses, 60);
  const traffic = startTraffic(db.pool, { clients: 5, skus, warehouses, random: trafficRandom, bulkEveryMs: 2_000, maxMs: 100_000 });
  t.teardown(() => traffic.stop().then(() => {}));

  const kills: string[] = [];
  let replays = 0;
  for (let i = 0; i < 6; i++) {
    // Most kills land while it streams; some while it starts, prepares and catches up.
    const duringStartup = i > 0 && random() < 0.35;
    if (!duringStartup) await started(t, consumer, `restart ${i}`);
    const delay = duringStartup ? 50 + random() * 1_200 : 150 + random() * 2_000;
    await sleep(delay);
    t.true(await traffic.progress(100, 30_000), 'the traffic keeps going');
    await consumer.kill9();
    kills.push(`${duringStartup ? 'starting' : 'streaming'}+${Math.round(delay)}ms`);
    const slot = await releasedSlot(t, db, names.slot);
    if ((await redisPosition(redis, names.prefix)) > (slot.confirmed ?? 0n)) replays++; // applied, not yet acknowledged
    consumer = spawnConsumer(env);
  }
  await started(t, consumer, 'last restart under traffic');
  t.true(await traffic.progress(200, 30_000));
  const stats = await traffic.stop();
  t.deepEqual(stats.unexpected, [], 'the SQL API only refused what contention explains');

  await consumer.kill9();
  consumer = spawnConsumer(env);
  await started(t, consumer, 'final start');
  const { entries, movements } = await assertExact(t, db, redis, names);
  t.true(movements > 3_000, `thousands of changes were made (${movements} movements)`);
  t.true(stats.bulks > 0, 'large transactions (applied in chunks) were part of the traffic');
  t.log(`kills: ${kills.join(', ')}; ${replays} restarts replayed applied but unacknowledged changes`);
  t.log(`${stats.calls} calls, ${stats.refused} refused, ${stats.bulks} large transactions; ${movements} movements, ${entries} events`);

  // Caught up, the slot follows the server's WAL even when nothing it publishes changes.
  await writeUnpublishedWal(db, 4);
  // restart_lsn moves only past a running-transactions record, which the bgwriter writes every 15 s on a
  // busy server; one written at each look makes that wait the consumer's acknowledgement alone.
  const lag = async () => {
    await db.query('select pg_log_standby_snapshot()');
    return (await slotSample(db, names.slot))?.lagBytes ?? Infinity;
  };
  // Usually well under a second; the bound is generous for a starved machine (once, under two CPU hogs, it
  // took about 10 s). Without idle acknowledgements the slot would keep all 4 MB for good.
  const fillerWritten = performance.now();
  await waitFor(async () => (await lag()) < ONE_MB, 20_000, 200);
  const retained = await lag();
  t.true(retained < ONE_MB, `the slot retains ${retained} bytes of WAL after catching up (want < 1 MB)${retained < ONE_MB ? '' : `:\n${await replicationState(db, names.slot, consumer)}`}`);
  t.log(`the slot followed 4 MB of unpublished WAL in ${Math.round(performance.now() - fillerWritten)} ms`);
});

test.serial('killed -9 while its acknowledgements are lost, it replays what Redis already has without appending it twice', async (t) => {
  t.timeout(90_000);
  const { db, redis, names, env, skus, warehouses, trafficRandom: random } = await setUp(t, 'crash_lost_acks');
  // Through a proxy that can swallow what the consumer says on its replication connection.
  const proxy = await startPgProxy(Number(new URL(db.url).port));
  t.teardown(() => proxy.close());
  const proxied = { ...env, databaseUrl: proxy.url(db.url) };

  let consumer = spawnConsumer(proxied);
  await started(t, consumer, 'first start');
  await receiveStock(db, skus, warehouses, 60);
  const traffic = startTraffic(db.pool, { clients: 4, skus, warehouses, random, bulkEveryMs: 1_500, maxMs: 100_000 });
  t.teardown(() => traffic.stop().then(() => {}));
  t.true(await traffic.progress(300, 30_000));

  t.true(proxy.replicationConnections() > 0, 'the replication connection goes through the proxy');
  proxy.dropReplicationReplies(true);
  t.true(await traffic.progress(500, 30_000), 'changes flow while the acknowledgements are lost');
  await waitFor(async () => (await redisPosition(redis, names.prefix)) > ((await slotSample(db, names.slot))?.confirmed ?? 0n), 10_000);
  await consumer.kill9();
  proxy.dropReplicationReplies(false);
  const slot = await releasedSlot(t, db, names.slot);
  const position = await redisPosition(redis, names.prefix);
  t.true(position > (slot.confirmed ?? 0n), 'Redis holds changes the slot will send again');

  consumer = spawnConsumer(proxied);
  await started(t, consumer, 'restart');
  t.true(await traffic.progress(300, 30_000));
  const stats = await traffic.stop();
  t.deepEqual(stats.unexpected, []);
  await assertExact(t, db, redis, names);
  const duplicates = await consumer.metric('stockroom_events_duplicates_total');
  t.true((duplicates ?? 0) > 0, `the restart met events the stream already had and skipped them (${duplicates})`);
});

test.serial('SIGTERM stops the consumer within 10 s with exit code 0, acknowledging what it applied; the next start resumes without loss', async (t) => {
  t.timeout(90_000);
  const { db, redis, names, env, skus, warehouses, trafficRandom: random } = await setUp(t, 'crash_sigterm');

  let consumer = spawnConsumer(env);
  await started(t, consumer, 'first start');
  await receiveStock(db, skus, warehouses, 60);
  // No large transactions here: one cut by the stop would have applied chunks, replayed (harmlessly) at the next start.
  const traffic = startTraffic(db.pool, { clients: 4, skus, warehouses, random, maxMs: 100_000 });
  t.teardown(() => traffic.stop().then(() => {}));
  t.true(await traffic.progress(500, 30_000));

  const stopped = await terminate(consumer, 15_000);
  t.false(stopped.timedOut, `it exited by itself (${Math.round(stopped.ms)} ms):\n${consumer.tail()}`);
  t.is(stopped.code, 0, `exit code 0:\n${consumer.tail()}`);
  t.true(stopped.ms < 10_000, `stopped in ${Math.round(stopped.ms)} ms`);
  const slot = await releasedSlot(t, db, names.slot);
  const position = await redisPosition(redis, names.prefix);
  t.true((slot.confirmed ?? 0n) >= position, 'a graceful stop acknowledges everything it wrote to Redis: nothing to replay');

  t.true(await traffic.progress(300, 30_000), 'changes keep coming while it is down');
  consumer = spawnConsumer(env);
  await started(t, consumer, 'restart');
  t.true(await traffic.progress(300, 30_000));
  const stats = await traffic.stop();
  t.deepEqual(stats.unexpected, []);
  await assertExact(t, db, redis, names);
  t.is(await consumer.metric('stockroom_events_duplicates_total'), 0, 'nothing was replayed after a graceful stop');
});

test.serial('SIGTERM while the consumer is reconnecting (preparing its next session) still stops it within 10 s with exit code 0', async (t) => {
  t.timeout(90_000);
  const { db, names, env, skus, warehouses } = await setUp(t, 'crash_sigterm_reconnect');
  const consumer = spawnConsumer(env);
  await started(t, consumer, 'first start');
  await receiveStock(db, skus, warehouses, 60);

  // Hold the next session's preparation (it reads the catalog) for as long as we like...
  const blocker = await db.pool.connect();
  t.teardown(() => blocker.query('rollback').catch(() => {}).finally(() => blocker.release()));
  await blocker.query('begin');
  await blocker.query('lock table inventory.products in access exclusive mode');
  // ...and make it need one: end its replication connection, as a network blip or a Postgres failover would.
  const from = consumer.logs.length;
  await db.query('select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1', [names.slot]);
  t.truthy(await consumer.waitForLog((l) => l.msg === 'replication stream unavailable; retrying' || l.msg === 'replication stream ended; reconnecting', 10_000, from),
    `the consumer saw its stream end:\n${consumer.tail()}`);
  t.true(await waitFor(async () => (await db.query(`select 1 from pg_stat_activity
    where application_name = 'stockroom listener' and wait_event_type = 'Lock' and datname = current_database()`)).rowCount! > 0, 15_000),
  'the consumer is preparing its next session');

  consumer.child.kill('SIGTERM');
  const stopping = performance.now();
  await sleep(1_000);
  await blocker.query('rollback'); // the preparation completes while it stops
  const result = await Promise.race([consumer.exited, sleep(15_000).then(() => undefined)]);
  const ms = performance.now() - stopping;
  t.truthy(result, `it exited by itself (after ${Math.round(ms)} ms):\n${consumer.tail()}`);
  t.is(result?.code, 0, `exit code 0:\n${consumer.tail()}`);
  t.true(ms < 10_000, `stopped in ${Math.round(ms)} ms`);
  t.false(consumer.logs.slice(from).some((l) => l.msg === 'replication stream started'), `no session starts after SIGTERM:\n${consumer.tail()}`);
});

test.serial('a standby listener takes over within 5 s of the active one being killed -9, with nothing lost or twice', async (t) => {
  t.timeout(90_000);
  const { db, redis, names, env, skus, warehouses, trafficRandom: random } = await setUp(t, 'crash_standby');

  const active = spawnConsumer(env);
  await started(t, active, 'the active listener');
  const standby = spawnConsumer(env);
  t.truthy(await standby.waitForLog((l) => l.msg?.startsWith('standing by') === true, 30_000), `the second listener stands by:\n${standby.tail()}`);
  await receiveStock(db, skus, warehouses, 60);
  const traffic = startTraffic(db.pool, { clients: 4, skus, warehouses, random, maxMs: 100_000 });
  t.teardown(() => traffic.stop().then(() => {}));
  t.true(await traffic.progress(300, 30_000));

  // A standby is ready (it waits to take over) and says it is a standby; it does not stream.
  await waitFor(() => standby.httpPort() !== undefined, 10_000);
  const ready = await fetch(`http://127.0.0.1:${standby.httpPort()}/ready`);
  const body = await ready.json() as { checks?: Record<string, { detail?: { standby?: boolean; streaming?: boolean } }> };
  t.is(ready.status, 200, `the standby's /ready: ${JSON.stringify(body)}`);
  t.like(body.checks?.listener?.detail, { standby: true, streaming: false });
  t.is(await standby.metric('stockroom_listener_standby'), 1);
  t.is(standby.streams(), 0, 'the standby never streamed while the active one lived');

  // Killed -9 under traffic; a change committed after the kill is in Redis within 5 s.
  await active.kill9();
  const killedAt = performance.now();
  const [sku, warehouse] = [skus[0]!, warehouses[0]!];
  await db.query(`select inventory.adjust($1, $2, 7, 'after the kill')`, [sku, warehouse]);
  // Traffic keeps changing the row: wait until Redis holds a version of it at least as new as the adjust.
  const { rows: [{ version } = { version: "0" }] } = await db.query<{ version: string }>(`select s.version::text from inventory.stock_levels s
    join inventory.products p on p.id = s.product_id join inventory.warehouses w on w.id = s.warehouse_id where p.sku = $1 and w.code = $2`, [sku, warehouse]);
  const cachedVersion = async () => Number(String(await redis.hget(`${names.prefix}stock:${sku}:rows`, warehouse) ?? '0:').split(':')[0]);
  await waitFor(async () => (await cachedVersion()) >= Number(version), 20_000, 20);
  const takeoverMs = performance.now() - killedAt;
  t.true((await cachedVersion()) >= Number(version), `the standby applied the change made after the kill:\n${standby.tail()}`);
  t.true(takeoverMs <= 5_000, `taken over in ${Math.round(takeoverMs)} ms (want ≤ 5 s)`);
  t.log(`takeover: a change committed just after the kill -9 was in Redis ${Math.round(takeoverMs)} ms after it`);
  t.is(await standby.metric('stockroom_listener_standby'), 0, 'no longer a standby');

  t.true(await traffic.progress(300, 30_000), 'changes keep flowing after the takeover');
  const stats = await traffic.stop();
  t.deepEqual(stats.unexpected, []);
  await assertExact(t, db, redis, names);
});
