// bench/api: the GraphQL API, run as its own process the way it runs in service
// (`stockroom start --api --listener`, NODE_ENV=production, JWT auth), on a
// database with production durability.
//
// 1. The reserve mutation: N HTTP clients (keep-alive), each posting
//    reserve(orderRef, [one random (sku, warehouse), qty 1]) { id status } back
//    to back, as stockroom_writer. Baseline in the same run: N pg clients
//    calling inventory.reserve directly with the same random choice. At 16 and
//    64 clients; rounds alternate baseline and mutation; ratio mutation/direct.
// 2. cachedStock(1,000 random skus), p50/p99, every answer checked (1,000
//    entries, source "cache"), for two selections: a listing's fields (sku,
//    total, available, status, lowStock: one MGET) and every field with the
//    per-warehouse figures (plus one rows-script call). Baseline: the same
//    Redis reads from this process, the cache alone with no HTTP or GraphQL.
//
// The listener runs in the API process: it builds the cache at start (/ready
// waits for it) and keeps it in step with the reserves, as `stockroom start`
// does in service. Throughput is the median over rounds, latencies pooled;
// any GraphQL error counts as a failure, and a round where most requests fail
// stops the run with the first error.
//
//   npm run bench:api -- [--seconds 5] [--rounds 3] [--products 10000] [--warehouses 20]
//                        [--clients 16,64] [--stock-clients 1] [--json]
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
import { closeClients, openClients, type LoadResult } from './lib/load.ts';
import { startBenchServices } from './lib/services.ts';
import { median, round, summarize } from './lib/stats.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    products: { type: 'string', default: '10000' },
    warehouses: { type: 'string', default: '20' },
    clients: { type: 'string', default: '16,64' },
    'stock-clients': { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  },
});
const seconds = Number(args.seconds);
const rounds = Number(args.rounds);
const products = Number(args.products);
const warehouses = Number(args.warehouses);
const clientCounts = args.clients.split(',').map(Number);
const stockClients = Number(args['stock-clients']);
const STOCK_SKUS = 1000;
if (products < STOCK_SKUS) throw new Error(`--products must be at least ${STOCK_SKUS} (cachedStock asks for ${STOCK_SKUS} distinct skus)`);

interface Run extends LoadResult { firstError: string | undefined }

/** Closed loop over `workers` workers for `seconds`; an operation may return its own latency (e.g. to the last byte, before parsing). */
async function closedLoop(workers: number, seconds: number, operation: (worker: number) => Promise<number | void>): Promise<Run> {
  const latenciesMs: number[] = [];
  const errors: Record<string, number> = {};
  let ok = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(Array.from({ length: workers }, async (_, worker) => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        const ms = await operation(worker);
        latenciesMs.push(typeof ms === 'number' ? ms : performance.now() - t0);
        ok++;
      } catch (error) {
        const code = (error as { code?: string }).code ?? 'unknown';
        errors[code] = (errors[code] ?? 0) + 1;
        firstError ??= `${code}: ${(error as Error).message}`;
      }
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  const failed = Object.values(errors).reduce((n, e) => n + e, 0);
  if (failed > ok) throw new Error(`${failed} of ${failed + ok} requests failed; the first: ${firstError}`);
  return { clients: workers, seconds: elapsed, ok, errors, latenciesMs, throughput: ok / elapsed, firstError };
}

const figure = (list: Run[]) => {
  const latency = summarize(list.flatMap((r) => r.latenciesMs));
  const errors: Record<string, number> = {};
  for (const r of list) for (const [code, n] of Object.entries(r.errors)) errors[code] = (errors[code] ?? 0) + n;
  return {
    throughput: round(median(list.map((r) => r.throughput)), 0), requests: latency.count,
    p50: round(latency.p50), p99: round(latency.p99), max: round(latency.max, 1), errors,
    firstError: list.find((r) => r.firstError)?.firstError,
  };
};
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

const services = await startBenchServices({ redis: true });
let api: ApiProcess | undefined;
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
  await closeClients([setup!]);

  const jwtSecret = `bench-${crypto.randomUUID()}-${crypto.randomUUID()}`;
  process.stderr.write('starting the API (stockroom start --api --listener); waiting for /ready (cache built)…\n');
  const startedAt = performance.now();
  api = await startApiProcess({ DATABASE_URL: services.databaseUrl, REDIS_URL: services.redisUrl!, JWT_SECRET: jwtSecret });
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

  // ---- 2 first, while nothing else runs: cachedStock(1,000)
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
    const runs: { cacheReads: Run[]; api: Run[] } = { cacheReads: [], api: [] };
    await withAgent(stockClients, (agent) => closedLoop(stockClients, 1, cachedStockOnce(selection, agent))); // warm
    await closedLoop(stockClients, 1, cacheReadsOnce(selection));
    for (let r = 0; r < rounds; r++) {
      runs.cacheReads.push(await closedLoop(stockClients, seconds, cacheReadsOnce(selection)));
      runs.api.push(await withAgent(stockClients, (agent) => closedLoop(stockClients, seconds, cachedStockOnce(selection, agent))));
      const a = summarize(runs.api.at(-1)!.latenciesMs);
      process.stderr.write(`cachedStock(${STOCK_SKUS}) ${selection} @${stockClients}: round ${r + 1}/${rounds} p50 ${a.p50.toFixed(1)} ms p99 ${a.p99.toFixed(1)} ms (${a.count} requests)\n`);
    }
    stockFigures[selection] = { api: figure(runs.api), cacheReads: figure(runs.cacheReads) };
  }
  await cache.quit();
  redis = undefined;
  const stock = { skus: STOCK_SKUS, clients: stockClients, ...stockFigures, entriesChecked: checked, entriesFromDatabase: fromDatabase };
  report.cachedStock = { ...stock, target: { p99Ms: 15, listingMet: stock.listing.api.p99 <= 15 && fromDatabase === 0, fullMet: stock.full.api.p99 <= 15 && fromDatabase === 0 } };

  // ---- 1. the reserve mutation against inventory.reserve called directly
  pgClients = await openClients(services.databaseUrl, Math.max(...clientCounts));
  const direct = async (worker: number) => {
    await pgClients[worker]!.query({
      name: 'reserve-direct',
      text: `select id from inventory.reserve($1, $2::jsonb, interval '15 minutes', null)`,
      values: [orderRef(), JSON.stringify([{ sku: randomSku(), warehouse: randomWarehouse(), qty: 1 }])],
    });
  };
  const mutation = (agent: http.Agent) => async () => {
    const variables = { orderRef: orderRef(), lines: [{ sku: randomSku(), warehouse: randomWarehouse(), qty: 1 }] };
    const { data, ms } = await postGraphql(agent, port, JSON.stringify({ query: RESERVE, variables }), auth);
    const reservation = (data as { reserve: { id: string; status: string } | null }).reserve;
    if (reservation?.status !== 'HELD') throw Object.assign(new Error(`reserve answered ${JSON.stringify(reservation)}`), { code: 'NOT_HELD' });
    return ms;
  };
  const reserve = [];
  for (const clients of clientCounts) {
    const runs: { direct: Run[]; mutation: Run[] } = { direct: [], mutation: [] };
    await withAgent(clients, (agent) => closedLoop(clients, 1, mutation(agent))); // warm plans, JIT and connections
    await closedLoop(clients, 1, direct);
    for (let r = 0; r < rounds; r++) {
      runs.direct.push(await closedLoop(clients, seconds, direct));
      runs.mutation.push(await withAgent(clients, (agent) => closedLoop(clients, seconds, mutation(agent))));
      process.stderr.write(`reserve @${clients}: round ${r + 1}/${rounds} direct ${Math.round(runs.direct.at(-1)!.throughput)}/s, mutation ${Math.round(runs.mutation.at(-1)!.throughput)}/s\n`);
    }
    const d = figure(runs.direct);
    const m = figure(runs.mutation);
    reserve.push({ clients, direct: d, mutation: m, ratio: round(m.throughput / d.throughput, 2) });
  }
  await closeClients(pgClients);
  pgClients = [];
  report.reserve = reserve;
  report.reserveTarget = { ratio: 0.5, met: reserve.every((r) => r.ratio >= 0.5) };

  if (args.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    printTable(
      ['reserve, 1 random line', 'clients', 'direct SQL ops/s', 'mutation ops/s', 'ratio', 'direct p50/p99 ms', 'mutation p50/p99 ms', 'errors'],
      reserve.map((r) => ['mutation vs inventory.reserve', r.clients, r.direct.throughput, r.mutation.throughput, r.ratio,
        `${r.direct.p50} / ${r.direct.p99}`, `${r.mutation.p50} / ${r.mutation.p99}`, errorText(r.direct.errors, r.mutation.errors)]));
    printTable(
      [`cachedStock(${STOCK_SKUS})`, 'clients', 'requests', 'p50 ms', 'p99 ms', 'max ms', 'cache reads alone p50/p99 ms', 'p99 ratio', 'errors'],
      (['listing', 'full'] as const).map((selection) => {
        const { api: a, cacheReads: c } = stock[selection];
        return [selection === 'listing' ? 'sku total available status lowStock' : 'all fields, warehouses included',
          stock.clients, a.requests, a.p50, a.p99, a.max, `${c.p50} / ${c.p99}`, round(a.p99 / c.p99, 1), errorText(a.errors, c.errors)];
      }));
    const percent = reserve.map((r) => `${r.clients} clients ${Math.round(r.ratio * 100)}%`).join(', ');
    process.stdout.write(`target: mutation ≥ 50% of direct SQL throughput: ${percent} ${reserve.every((r) => r.ratio >= 0.5) ? '(met)' : '(missed)'}\n`);
    for (const selection of ['listing', 'full'] as const) {
      const p99 = stock[selection].api.p99;
      process.stdout.write(`target: cachedStock(${STOCK_SKUS}) ${selection} p99 ≤ 15 ms: ${p99} ms ${p99 <= 15 ? '(met)' : '(missed)'}\n`);
    }
    process.stdout.write(`${checked} cachedStock entries checked, ${fromDatabase} answered from the database instead of the cache\n`);
  }
} finally {
  redis?.disconnect();
  await closeClients(pgClients);
  await api?.stop();
  await services.stop();
}
