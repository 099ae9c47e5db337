// bench/api: the GraphQL API, run as its own process the way it runs in service
// (`stockroom start --api`, NODE_ENV=production, JWT auth), on a
// database with production durability. Sections (--only picks by name):
//
// - reserve uniform: N HTTP clients (keep-alive), each posting
//   reserve(orderRef, [one random (sku, warehouse), qty 1]) { id status } back
//   to back, as stockroom_writer; concurrent mutations are combined into
//   reserve_many calls by the API. Baseline in the same run: M pg clients
//   calling inventory.reserve directly with the same random choice (what a
//   naive client of the SQL API gets). Default 64 HTTP clients against 32
//   sessions.
// - reserve hot: the same on one sku and warehouse: direct SQL from 8
//   sessions, the mutation from 8 and from 64 HTTP clients.
// - reserve lone: one HTTP client at a time: the latency a lone request pays
//   (combining must not make it wait for company).
// - cachedStock: cachedStock(1,000 random skus), p50/p99, every answer checked
//   (1,000 entries, source "cache"), for a listing's fields and for every
//   field with the per-warehouse figures; baseline: the same Redis reads from
//   this process, the cache alone with no HTTP or GraphQL.
//
// Each round records the CPU time the API process, PostgreSQL (all its
// processes) and this load generator used, per request: they share 2 cores.
// The listener runs beside the API as a process of its own: it builds the
// cache at start and keeps it in step with the reserves. Throughput is the median over rounds, latencies pooled;
// any GraphQL error counts as a failure, and a round where most requests fail
// stops the run with the first error.
//
//   npm run bench:api -- [--seconds 5] [--rounds 3] [--products 10000] [--warehouses 20]
//                        [--clients 64] [--direct-clients 32] [--hot-clients 8,64] [--hot-direct-clients 8]
//                        [--stock-clients 1] [--only <regex of section names>] [--json]
import http from 'node:http';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { cacheKeys } from '../src/cache/keys.ts';
import { createDatabasePool } from '../src/db/pool.ts';
import { seed, skuOf, warehouseCodeOf } from '../src/db/seed.ts';
import { printTable } from '../src/cli/output.ts';
import { postGraphql, startApiProcess, type ApiProcess } from './lib/api-process.ts';
import { startCpuMeter } from './lib/cpu.ts';
import { assertMostlyOk, closeClients, openClients, runWorkers, type LoadResult } from './lib/load.ts';
import { startBenchServices } from './lib/services.ts';
import { median, round, summarize } from './lib/stats.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    products: { type: 'string', default: '10000' },
    warehouses: { type: 'string', default: '20' },
    clients: { type: 'string', default: '64' },
    'direct-clients': { type: 'string', default: '32' },
    'hot-clients': { type: 'string', default: '8,64' },
    'hot-direct-clients': { type: 'string', default: '8' },
    'stock-clients': { type: 'string', default: '1' },
    only: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const seconds = Number(args.seconds);
const rounds = Number(args.rounds);
const products = Number(args.products);
const warehouses = Number(args.warehouses);
const uniformClients = Number(args.clients);
const directClients = Number(args['direct-clients']);
const hotClients = args['hot-clients'].split(',').map(Number);
const hotDirectClients = Number(args['hot-direct-clients']);
const stockClients = Number(args['stock-clients']);
const only = args.only ? new RegExp(args.only) : undefined;
const runs = (section: string) => !only || only.test(section);
const STOCK_SKUS = 1000;
if (products < STOCK_SKUS) throw new Error(`--products must be at least ${STOCK_SKUS} (cachedStock asks for ${STOCK_SKUS} distinct skus)`);

interface Run extends LoadResult { firstError: string | undefined; cpu?: Record<string, number>; apiStatements?: number }

/** Closed loop over `workers` workers for `seconds` (bench/lib/load.ts); a round that mostly failed stops the run. */
async function closedLoop(workers: number, seconds: number, operation: (worker: number) => Promise<number | void>): Promise<Run> {
  const run = await runWorkers(workers, seconds, operation);
  assertMostlyOk(run);
  return run;
}

const figure = (list: Run[]) => {
  const latency = summarize(list.flatMap((r) => r.latenciesMs));
  const errors: Record<string, number> = {};
  for (const r of list) for (const [code, n] of Object.entries(r.errors)) errors[code] = (errors[code] ?? 0) + n;
  // CPU milliseconds per request of each process, over all rounds.
  const cpuMsPerRequest: Record<string, number> = {};
  const requests = list.reduce((n, r) => n + r.ok, 0);
  for (const r of list) for (const [name, seconds] of Object.entries(r.cpu ?? {})) cpuMsPerRequest[name] = (cpuMsPerRequest[name] ?? 0) + seconds;
  for (const name of Object.keys(cpuMsPerRequest)) cpuMsPerRequest[name] = round((cpuMsPerRequest[name]! * 1000) / Math.max(1, requests), 3);
  const statementsPerRequest = round(list.reduce((n, r) => n + (r.apiStatements ?? 0), 0) / Math.max(1, requests), 2);
  return {
    throughput: round(median(list.map((r) => r.throughput)), 0), requests: latency.count,
    p50: round(latency.p50), p99: round(latency.p99), max: round(latency.max, 1), errors,
    cpuMsPerRequest, statementsPerRequest, firstError: list.find((r) => r.firstError)?.firstError,
  };
};
const cpuText = (f: ReturnType<typeof figure>) => Object.entries(f.cpuMsPerRequest).map(([name, ms]) => `${name} ${ms}`).join(', ');
const errorText = (...all: Array<Record<string, number>>) => {
  const merged = Object.assign({}, ...all) as Record<string, number>;
  return Object.keys(merged).length ? JSON.stringify(merged) : '';
};

const randomSku = () => skuOf(1 + Math.floor(Math.random() * products));
const randomWarehouse = () => warehouseCodeOf(1 + Math.floor(Math.random() * warehouses));
const randomSkus = (n: number) => {
  const picked = new Set<string>();
  while (picked.size < n) picked.add(randomSku());
  return [...picked];
};
let orders = 0;
const orderRef = () => `bench-${process.pid}-${++orders}`;

const RESERVE = `mutation Reserve($orderRef: String!, $lines: [ReserveLineInput!]!) {
  reserve(orderRef: $orderRef, lines: $lines) { id status }
}`;
/** Two selections: what a product listing needs, and every field with the per-warehouse figures. */
const CACHED_STOCK = {
  listing: `query CachedStock($skus: [String!]!) { cachedStock(skus: $skus) { sku total available status lowStock source } }`,
  full: `query CachedStock($skus: [String!]!) {
  cachedStock(skus: $skus) { sku total available status lowStock warehouses { warehouse available version } source }
}`,
} as const;
type Selection = keyof typeof CACHED_STOCK;
/** The reads the API makes for one request, from this process: the cache alone, no HTTP or GraphQL. */
const ROWS_SCRIPT = `local out = {} for i, key in ipairs(KEYS) do out[i] = table.concat(redis.call('HGETALL', key), '\\0') end return out`;

// pg_stat_statements counts the statements the API's sessions run (they act as the stockroom_* roles).
const services = await startBenchServices({ redis: true, settings: { shared_preload_libraries: 'pg_stat_statements' } });
let api: ApiProcess | undefined;
let listener: ApiProcess | undefined;
let redis: Redis | undefined;
let pgClients: pg.Client[] = [];
const report: Record<string, unknown> = { seconds, rounds, products, warehouses };
try {
  const pool = await createDatabasePool(services.databaseUrl, { applicationName: 'bench setup' });
  process.stderr.write(`seeding ${products} products × ${warehouses} warehouses…\n`);
  // Enough units that no reserve runs short: at most a few hundred thousand holds in a run.
  await seed(pool, { products, warehouses, units: 100_000_000, lowStockThreshold: 0 });
  await pool.end();
  const [setup] = await openClients(services.databaseUrl, 1);
  await setup!.query('vacuum analyze');
  await setup!.query('create extension pg_stat_statements');
  await closeClients([setup!]);

  const jwtSecret = `bench-${crypto.randomUUID()}-${crypto.randomUUID()}`;
  process.stderr.write('starting the listener (stockroom start --listener; the cache is built) and the API (stockroom start --api)…\n');
  const startedAt = performance.now();
  const env = { DATABASE_URL: services.databaseUrl, REDIS_URL: services.redisUrl!, JWT_SECRET: jwtSecret };
  // Two processes, as `stockroom start --api` and `stockroom start --listener` run in service: each one's CPU is its own.
  listener = await startApiProcess(env, { roles: ['--listener'], requiredChecks: ['listener'] });
  await listener.ready;
  api = await startApiProcess(env, { roles: ['--api'], requiredChecks: ['postgres', 'redis', 'listener'] });
  await api.ready;
  report.apiReadySeconds = round((performance.now() - startedAt) / 1000, 1);
  process.stderr.write(`API ready in ${report.apiReadySeconds} s on port ${api.port}\n`);
  const { port } = api;
  const token = await new SignJWT({ role: 'stockroom_writer' }).setProtectedHeader({ alg: 'HS256' })
    .setSubject('stockroom-bench').setIssuedAt().setExpirationTime('2h').sign(new TextEncoder().encode(jwtSecret));
  const auth = { authorization: `Bearer ${token}` };
  /** A fresh keep-alive agent per round: no socket the server timed out while idle between rounds. */
  const withAgent = async <T>(sockets: number, body: (agent: http.Agent) => Promise<T>): Promise<T> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
    try {
      return await body(agent);
    } finally {
      agent.destroy();
    }
  };

  const cpuGroups: Record<string, number> = { api: api.child.pid!, listener: listener.child.pid!, postgres: services.postgresPid };
  if (services.redisPid) cpuGroups.redis = services.redisPid;
  /** A closed loop with the CPU each process used during it. */
  const [statements] = await openClients(services.databaseUrl, 1);
  /** Statements the API's sessions ran since the last call (what the stockroom_* roles executed). */
  const apiStatements = async () => {
    const { rows: [r] } = await statements!.query<{ n: string | null }>(`
      select sum(calls) as n from pg_stat_statements
      where toplevel and userid in (select oid from pg_roles where rolname in ('stockroom_reader', 'stockroom_writer', 'stockroom_admin'))`);
    await statements!.query('select pg_stat_statements_reset()');
    return Number(r?.n ?? 0);
  };
  /** A closed loop with the CPU each process used during it, and the statements the API ran. */
  const measured = async (workers: number, operation: (worker: number) => Promise<number | void>): Promise<Run> => {
    await apiStatements();
    const meter = startCpuMeter(cpuGroups);
    const run = await closedLoop(workers, seconds, operation);
    return { ...run, cpu: meter.stop(), apiStatements: await apiStatements() };
  };
  const tables: Array<() => void> = [];
  const targets: Array<{ target: string; value: number | undefined; met: boolean }> = [];

  // ---- cachedStock(1,000), while nothing else runs
  if (runs('cachedStock')) {
    redis = new Redis(services.redisUrl!);
    const cache = redis;
    const keys = cacheKeys('catalog:');
    let fromDatabase = 0;
    let checked = 0;
    const cachedStockOnce = (selection: Selection, agent: http.Agent) => async () => {
      const skus = randomSkus(STOCK_SKUS);
      const { data, ms } = await postGraphql(agent, port, JSON.stringify({ query: CACHED_STOCK[selection], variables: { skus } }), auth);
      const entries = (data as { cachedStock: Array<{ sku: string; source: string; warehouses?: unknown[] } | null> }).cachedStock;
      if (entries.length !== skus.length) throw Object.assign(new Error(`${entries.length} entries for ${skus.length} skus`), { code: 'WRONG_LENGTH' });
      entries.forEach((entry, i) => {
        if (!entry || entry.sku !== skus[i] || (selection === 'full' && entry.warehouses?.length !== warehouses)) {
          throw Object.assign(new Error(`entry ${i} is ${JSON.stringify(entry)?.slice(0, 200)} for ${skus[i]}`), { code: 'WRONG_ENTRY' });
        }
        if (entry.source !== 'cache') fromDatabase++;
      });
      checked += entries.length;
      return ms;
    };
    const cacheReadsOnce = (selection: Selection) => async () => {
      const skus = randomSkus(STOCK_SKUS);
      const values = await cache.mget(skus.flatMap((sku) => [keys.total(sku), keys.available(sku), keys.status(sku), keys.lowStock(sku)]));
      const misses = values.filter((v) => v === null).length;
      if (misses) throw Object.assign(new Error(`${misses} of ${4 * STOCK_SKUS} keys not in the cache`), { code: 'CACHE_MISS' });
      if (selection === 'full') {
        const rows = (await cache.eval(ROWS_SCRIPT, skus.length, ...skus.map((sku) => keys.rows(sku)))) as string[];
        if (rows.some((r) => r === '')) throw Object.assign(new Error('a rows hash is not in the cache'), { code: 'CACHE_MISS' });
      }
    };
    const stockFigures: Record<Selection, { api: ReturnType<typeof figure>; cacheReads: ReturnType<typeof figure> }> = {} as never;
    for (const selection of ['listing', 'full'] as const) {
      const list: { cacheReads: Run[]; api: Run[] } = { cacheReads: [], api: [] };
      await withAgent(stockClients, (agent) => closedLoop(stockClients, 1, cachedStockOnce(selection, agent))); // warm
      await closedLoop(stockClients, 1, cacheReadsOnce(selection));
      for (let r = 0; r < rounds; r++) {
        list.cacheReads.push(await closedLoop(stockClients, seconds, cacheReadsOnce(selection)));
        list.api.push(await withAgent(stockClients, (agent) => closedLoop(stockClients, seconds, cachedStockOnce(selection, agent))));
        const a = summarize(list.api.at(-1)!.latenciesMs);
        process.stderr.write(`cachedStock(${STOCK_SKUS}) ${selection} @${stockClients}: round ${r + 1}/${rounds} p50 ${a.p50.toFixed(1)} ms p99 ${a.p99.toFixed(1)} ms (${a.count} requests)\n`);
      }
      stockFigures[selection] = { api: figure(list.api), cacheReads: figure(list.cacheReads) };
    }
    await cache.quit();
    redis = undefined;
    const stock = { skus: STOCK_SKUS, clients: stockClients, ...stockFigures, entriesChecked: checked, entriesFromDatabase: fromDatabase };
    report.cachedStock = stock;
    tables.push(() => {
      printTable(
        [`cachedStock(${STOCK_SKUS})`, 'clients', 'requests', 'p50 ms', 'p99 ms', 'max ms', 'cache reads alone p50/p99 ms', 'p99 ratio', 'errors'],
        (['listing', 'full'] as const).map((selection) => {
          const { api: a, cacheReads: c } = stock[selection];
          return [selection === 'listing' ? 'sku total available status lowStock' : 'all fields, warehouses included',
            stock.clients, a.requests, a.p50, a.p99, a.max, `${c.p50} / ${c.p99}`, round(a.p99 / c.p99, 1), errorText(a.errors, c.errors)];
        }));
      process.stdout.write(`${checked} cachedStock entries checked, ${fromDatabase} answered from the database instead of the cache\n`);
    });
  }

  // ---- the reserve mutation against inventory.reserve called directly
  pgClients = await openClients(services.databaseUrl, Math.max(directClients, hotDirectClients));
  const hot = { sku: skuOf(1), warehouse: warehouseCodeOf(1) };
  const direct = (pick: () => { sku: string; warehouse: string }) => async (worker: number) => {
    await pgClients[worker]!.query({
      name: 'reserve-direct',
      text: `select id from inventory.reserve($1, $2::jsonb, interval '15 minutes', null)`,
      values: [orderRef(), JSON.stringify([{ ...pick(), qty: 1 }])],
    });
  };
  const mutation = (agent: http.Agent, pick: () => { sku: string; warehouse: string }) => async () => {
    const variables = { orderRef: orderRef(), lines: [{ ...pick(), qty: 1 }] };
    const { data, ms } = await postGraphql(agent, port, JSON.stringify({ query: RESERVE, variables }), auth);
    const reservation = (data as { reserve: { id: string; status: string } | null }).reserve;
    if (reservation?.status !== 'HELD') throw Object.assign(new Error(`reserve answered ${JSON.stringify(reservation)}`), { code: 'NOT_HELD' });
    return ms;
  };
  const uniform = () => ({ sku: randomSku(), warehouse: randomWarehouse() });
  type Variant = { name: string; clients: number; run: (time: number) => Promise<Run> };
  const directVariant = (clients: number, pick: () => { sku: string; warehouse: string }): Variant => ({
    name: `direct SQL @${clients}`, clients, run: async (time) => (time === seconds ? measured(clients, direct(pick)) : closedLoop(clients, time, direct(pick))),
  });
  const mutationVariant = (clients: number, pick: () => { sku: string; warehouse: string }): Variant => ({
    name: `mutation @${clients}`, clients,
    run: (time) => withAgent(clients, (agent) => (time === seconds ? measured(clients, mutation(agent, pick)) : closedLoop(clients, time, mutation(agent, pick)))),
  });
  const reserveSections: Array<{ section: string; variants: Variant[] }> = [
    { section: 'reserve uniform', variants: [directVariant(directClients, uniform), mutationVariant(uniformClients, uniform)] },
    { section: 'reserve hot', variants: [directVariant(hotDirectClients, () => hot), ...hotClients.map((n) => mutationVariant(n, () => hot))] },
    { section: 'reserve lone', variants: [directVariant(1, uniform), mutationVariant(1, uniform)] },
  ].filter((x) => runs(x.section));
  const reserveResults: Array<{ section: string; variant: string; clients: number; figure: ReturnType<typeof figure> }> = [];
  for (const { section, variants } of reserveSections) {
    const list = new Map<string, Run[]>(variants.map((v) => [v.name, []]));
    for (const v of variants) await v.run(1); // warm plans, JIT and connections
    for (let r = 0; r < rounds; r++) {
      const line: string[] = [];
      for (const v of variants) {
        const run = await v.run(seconds);
        list.get(v.name)!.push(run);
        line.push(`${v.name} ${Math.round(run.throughput)}/s`);
      }
      process.stderr.write(`${section}: round ${r + 1}/${rounds} ${line.join(', ')}\n`);
    }
    for (const v of variants) reserveResults.push({ section, variant: v.name, clients: v.clients, figure: figure(list.get(v.name)!) });
  }
  await closeClients(pgClients);
  pgClients = [];
  report.reserve = reserveResults;
  const throughput = (section: string, variant: string) => reserveResults.find((r) => r.section === section && r.variant === variant)?.figure.throughput;
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? round(a / b, 2) : undefined);
  targets.push(
    { target: `reserve mutation, uniform, ${uniformClients} HTTP clients ≥ 0.6 of direct SQL at ${directClients} sessions`,
      value: ratio(throughput('reserve uniform', `mutation @${uniformClients}`), throughput('reserve uniform', `direct SQL @${directClients}`)), met: false },
    { target: `reserve mutation, hot sku: ${Math.max(...hotClients)} HTTP clients ≥ ${Math.min(...hotClients)} HTTP clients`,
      value: ratio(throughput('reserve hot', `mutation @${Math.max(...hotClients)}`), throughput('reserve hot', `mutation @${Math.min(...hotClients)}`)), met: false },
    { target: `reserve mutation, hot sku: ${Math.max(...hotClients)} HTTP clients ≥ 0.8 of direct SQL at ${hotDirectClients} sessions`,
      value: ratio(throughput('reserve hot', `mutation @${Math.max(...hotClients)}`), throughput('reserve hot', `direct SQL @${hotDirectClients}`)), met: false },
  );
  const minimum = [0.6, 1, 0.8];
  targets.forEach((t, i) => (t.met = t.value !== undefined && t.value >= minimum[i]!));
  const lone = reserveResults.find((r) => r.section === 'reserve lone' && r.clients === 1 && r.variant.startsWith('mutation'));
  if (lone) targets.push({ target: 'a lone reserve mutation: p99 ≤ 20 ms', value: lone.figure.p99, met: lone.figure.p99 <= 20 });
  tables.unshift(() => printTable(
    ['reserve, 1 line', 'variant', 'ops/s', 'p50 / p99 ms', 'CPU ms per request', 'API statements per request', 'errors'],
    reserveResults.map((r) => [r.section, r.variant, r.figure.throughput, `${r.figure.p50} / ${r.figure.p99}`, cpuText(r.figure),
      r.variant.startsWith('mutation') ? r.figure.statementsPerRequest : '', errorText(r.figure.errors)])));
  report.targets = targets.filter((t) => t.value !== undefined);

  if (args.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    for (const table of tables) table();
    for (const t of targets) if (t.value !== undefined) process.stdout.write(`target: ${t.target}: ${t.value} ${t.met ? '(met)' : '(missed)'}\n`);
  }
  await closeClients([statements!]);
} finally {
  redis?.disconnect();
  await closeClients(pgClients);
  await api?.stop();
  await listener?.stop();
  await services.stop();
}
