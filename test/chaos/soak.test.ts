// The chaos soak, short form: mixed SQL API traffic from many clients —
// reserves with and without a warehouse (multi-line, split across
// warehouses), confirms, releases, extends, short-lived holds left to expire,
// idempotent retries, receipts and corrections, cycle counts, transfers —
// while the worker is killed (-9) and restarted, the consumer's walsender is
// terminated, Redis restarts without its data, the consumer is paused, and
// the slot is dropped under it. Then: the ledger adds up and no row is
// oversold, nothing is HELD past due a minute later, Redis equals PostgreSQL,
// and every movement since Redis restarted (its stream went with it) has
// exactly one warehouse.stock.updated (and one typed event). It prints what it
// did and what it checked.
// A longer run: STOCKROOM_SOAK_SECONDS=300 npm test -- test/chaos/soak.test.ts
import path from 'node:path';
import test from 'ava';
import { startPrivateRedis, type RunningRedis } from '../../src/harness/redis.ts';
import { createLogger } from '../../src/log.ts';
import { eventProblems, readStream, testRedis, uniqueNames, waitFor, waitForCache } from '../helpers/cache.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { invariantViolations } from '../helpers/invariants.ts';
import { killAllWorkers, spawnWorker, type WorkerProcess } from '../jobs/worker-process.ts';
import {
  createCatalog, killAllConsumers, maxMovementId, movementIdOf, movementsAfter, receiveStock, seededRandom, sleep, spawnConsumer,
  startTraffic, tempDir, testSeed, waitForStreaming, waitUntilDead, type ConsumerProcess,
} from '../listener/consumer-process.ts';

const log = createLogger('silent');
/** Seconds of traffic between two faults. */
const PHASE_SECONDS = Number(process.env.STOCKROOM_SOAK_SECONDS ?? 30) / 6;

test('chaos soak: mixed traffic through worker kills, walsender terminations, a Redis restart, a paused consumer and a dropped slot', async (t) => {
  t.timeout(PHASE_SECONDS * 8_000 + 240_000);
  const random = seededRandom(testSeed(t));
  const temp = tempDir('chaos');
  const names = uniqueNames('chaos');
  const redisServers: RunningRedis[] = [await startPrivateRedis({ dir: path.join(temp.dir, 'redis'), persistent: false, log })];
  const db = await openTestDatabase('chaos', { max: 20 });
  let consumer: ConsumerProcess | undefined;
  let worker: WorkerProcess | undefined;
  const redis = testRedis(redisServers[0]!.url);
  t.teardown(async () => {
    if (consumer?.alive) process.kill(consumer.pid, 'SIGCONT');
    await killAllConsumers();
    await killAllWorkers();
    redis.disconnect();
    for (const server of redisServers) await server.stop();
    await db.close();
    temp.remove();
  });
  const step = (what: string) => {
    t.log(`${((Date.now() - startedAt) / 1000).toFixed(1)} s: ${what}`);
  };
  const startedAt = Date.now();

  const { skus, warehouses } = await createCatalog(db, 12, 3);
  await receiveStock(db, skus, warehouses, 40);
  const consumerEnv = { databaseUrl: db.url, redisUrl: redisServers[0]!.url, names, dataDir: path.join(temp.dir, 'consumer') };
  consumer = spawnConsumer(consumerEnv);
  t.true(await waitForStreaming(consumer, 30_000), `the consumer streams:\n${consumer.tail()}`);
  const workerEnv = {
    REDIS_URL: redisServers[0]!.url, STOCKROOM_CACHE_PREFIX: names.prefix, STOCKROOM_STREAM: names.stream,
    STOCKROOM_SLOT: names.slot, STOCKROOM_PUBLICATION: names.publication, STOCKROOM_WORKER_HEARTBEAT_MS: '500',
  };
  worker = await spawnWorker(db.url, workerEnv);
  step('consumer and worker running; 12 skus × 3 warehouses stocked');

  // The general traffic (reserve with and without warehouse, confirm, release, adjust, transfer, set_count, set_policy)…
  const traffic = startTraffic(db.pool, { clients: 6, skus, warehouses, random, tolerateConnectionErrors: true, maxMs: 300_000 });
  // …and checkout traffic of its own: short holds left to expire, extends, idempotent retries.
  const checkout = { holds: 0, retries: 0, retryMismatches: [] as string[], extends: 0, unexpected: [] as string[] };
  let stopping = false;
  const checkoutClient = async (client: number) => {
    for (let n = 0; !stopping; n++) {
      const key = `chaos-${client}-${n}`;
      const lines = JSON.stringify(random() < 0.5
        ? [{ sku: skus[Math.floor(random() * skus.length)], qty: 1 + Math.floor(random() * 3) }, { sku: skus[Math.floor(random() * skus.length)], warehouse: warehouses[0], qty: 1 }]
        : [{ sku: skus[Math.floor(random() * skus.length)], warehouse: warehouses[Math.floor(random() * warehouses.length)], qty: 1 }]);
      try {
        const ttl = `${1 + Math.floor(random() * 3)} seconds`;
        const first = await db.pool.query<{ id: string }>('select id from inventory.reserve($1, $2::jsonb, $3::interval, $4)', [`order-${key}`, lines, ttl, key]);
        checkout.holds++;
        // The client did not see the answer and retries: the same reservation.
        const again = await db.pool.query<{ id: string }>('select id from inventory.reserve($1, $2::jsonb, $3::interval, $4)', [`order-${key}`, lines, ttl, key]);
        checkout.retries++;
        if (again.rows[0]!.id !== first.rows[0]!.id) checkout.retryMismatches.push(key);
        if (random() < 0.3) {
          await db.pool.query(`select inventory.extend($1, interval '2 seconds')`, [first.rows[0]!.id]);
          checkout.extends++;
        }
      } catch (error) {
        const e = error as { code?: string; message?: string };
        if (!['IV001', 'IV003', '40P01'].includes(e.code ?? '') && checkout.unexpected.length < 10) checkout.unexpected.push(`${e.code} ${e.message}`);
      }
    }
  };
  const checkoutDone = Promise.all([0, 1].map(checkoutClient));
  const phase = async () => {
    t.true(await traffic.progress(20, PHASE_SECONDS * 1000 + 20_000), 'traffic goes on');
    await sleep(PHASE_SECONDS * 1000);
  };
  const walsender = async () => {
    const { rows } = await db.query<{ pid: number }>(`select pg_terminate_backend(active_pid) as pid from pg_replication_slots where slot_name = $1 and active_pid is not null`, [names.slot]);
    return rows.length;
  };

  // Redis first: its restart takes the events stream with it, so events are checked for the
  // movements committed after it went (everything after reaches only the new Redis), through
  // every fault that follows.
  await phase();
  const oldRedis = redisServers.at(-1)!;
  process.kill(oldRedis.pid, 'SIGTERM');
  t.true(await waitUntilDead(oldRedis.pid, 10_000));
  const redisGoneAt = await maxMovementId(db);
  await sleep(1_000);
  redisServers.push(await startPrivateRedis({ dir: path.join(temp.dir, 'redis'), persistent: false, log }));
  t.is(redisServers.at(-1)!.port, oldRedis.port, 'redis-server came back on the same port');
  step('Redis restarted without its data');

  await phase();
  await worker.kill9();
  step(`worker killed (-9) mid-traffic`);
  await phase();
  worker = await spawnWorker(db.url, workerEnv);
  step('worker restarted');

  await phase();
  step(`walsender terminated (${await walsender()} session)`);


  await phase();
  process.kill(consumer.pid, 'SIGSTOP');
  step('consumer paused (SIGSTOP)');
  await sleep(PHASE_SECONDS * 1000);
  process.kill(consumer.pid, 'SIGCONT');
  step('consumer resumed');

  await phase();
  process.kill(consumer.pid, 'SIGSTOP');
  let dropped = false;
  for (let attempt = 0; attempt < 50 && !dropped; attempt++) {
    await walsender();
    dropped = await db.query(`select pg_drop_replication_slot($1)`, [names.slot]).then(() => true, () => false);
    if (!dropped) await sleep(100);
  }
  t.true(dropped, 'the slot was dropped');
  await sleep(1_000); // changes no slot records
  process.kill(consumer.pid, 'SIGCONT');
  step('slot dropped under the paused consumer, consumer resumed');
  await phase();

  stopping = true;
  const stats = await traffic.stop();
  await checkoutDone;
  step(`traffic stopped: ${stats.calls} calls (${stats.refused} refused as expected, ${stats.connectionErrors} connection errors), `
    + `${checkout.holds} short holds with ${checkout.retries} idempotent retries and ${checkout.extends} extends`);
  t.deepEqual(stats.unexpected, [], 'no unexpected error from the SQL API');
  t.deepEqual(checkout.unexpected, [], 'no unexpected error from checkout');
  t.deepEqual(checkout.retryMismatches, [], 'an idempotent retry returns the first reservation');

  // Checks.
  t.deepEqual(await invariantViolations(db), [], 'on_hand − reserved ≥ 0, reserved = HELD lines, on_hand = the ledger');
  const overdue = async () => (await db.query<{ n: number }>(`select count(*)::int as n from inventory.reservations where status = 'HELD' and expires_at < now() - interval '1 second'`)).rows[0]!.n;
  t.true(await waitFor(async () => (await overdue()) === 0, 60_000, 500), `nothing HELD past due within a minute (${await overdue()} left)`);
  t.deepEqual(await waitForCache(db, redis, names.prefix, 60_000), [], 'Redis equals PostgreSQL');
  let problems: string[] = [];
  const movements = (await db.query<{ n: number }>('select count(*)::int as n from inventory.movements where id > $1', [redisGoneAt])).rows[0]!.n;
  const complete = await waitFor(async () => {
    const entries = (await readStream(redis, names.stream)).filter((e) => movementIdOf(e) > redisGoneAt);
    problems = await eventProblems(movementsAfter(db, redisGoneAt), entries);
    return problems.length === 0;
  }, 60_000, 1_000);
  t.true(complete, `exactly one warehouse.stock.updated and one typed event per movement: ${problems.slice(0, 5).join('; ')}`);
  t.deepEqual(await invariantViolations(db), [], 'the ledger still adds up after the expiries');
  step(`checked the ledger, and the events of the ${movements} movements since Redis restarted: ledger invariants, no overdue hold, Redis = PostgreSQL, one event pair per movement`);
  t.true(consumer.alive, 'the consumer survived it all');
});
