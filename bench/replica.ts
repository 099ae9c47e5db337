// bench/replica: GraphQL query throughput served from a streaming replica
// against the same queries served from the primary. One API process
// (`stockroom start --api`, NODE_ENV=production) with DATABASE_READ_URL set to
// a real hot standby of the bench's PostgreSQL (made by the harness, see
// src/harness/replica.ts); the listener runs beside it as in service (idle:
// nothing is written during the run). The two variants differ only in where the
// API reads: no header (the replica) or `stockroom-read-from: primary`. Same
// query, same client count, rounds interleaved, throughput the median over
// rounds, latencies pooled. Every answer is checked (the product asked for,
// with its stock levels), and the API's own counter
// (stockroom_api_query_reads_total{database}) shows where each variant's reads
// went. CPU per request of each process: the API, the primary and the replica
// (all their processes), the listener and this load generator, which share the
// machine's cores.
//
// The query is a product page: productBySku(sku) with its stock levels and
// warehouses (three SQL queries' worth of joins, batched by PostGraphile into one).
//
//   npm run bench:replica -- [--seconds 5] [--rounds 3] [--products 10000] [--warehouses 20] [--clients 16] [--json]
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { printTable } from '../src/cli/output.ts';
import { createDatabasePool } from '../src/db/pool.ts';
import { seed, skuOf } from '../src/db/seed.ts';
import { startStreamingReplica, type StreamingReplica } from '../src/harness/replica.ts';
import { postGraphql, startApiProcess, type ApiProcess } from './lib/api-process.ts';
import { startCpuMeter } from './lib/cpu.ts';
import { assertMostlyOk, closeClients, openClients, runWorkers } from './lib/load.ts';
import { startBenchServices } from './lib/services.ts';
import { median, round, summarize } from './lib/stats.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    products: { type: 'string', default: '10000' },
    warehouses: { type: 'string', default: '20' },
    clients: { type: 'string', default: '16' },
    json: { type: 'boolean', default: false },
  },
});
const seconds = Number(args.seconds);
const rounds = Number(args.rounds);
const products = Number(args.products);
const warehouses = Number(args.warehouses);
const clients = Number(args.clients);

const QUERY = `query Product($sku: String!) {
  productBySku(sku: $sku) { sku name stockLevels { nodes { onHand reserved available warehouse { code } } } }
}`;
const VARIANTS = { replica: {}, primary: { 'stockroom-read-from': 'primary' } } as const;
type Variant = keyof typeof VARIANTS;

interface Round { throughput: number; ok: number; latenciesMs: number[]; errors: Record<string, number>; firstError?: string; cpu: Record<string, number>; reads: { replica: number; primary: number } }

const services = await startBenchServices({ redis: true });
const root = mkdtempSync(path.join(os.tmpdir(), 'stockroom-bench-replica-'));
chmodSync(root, 0o755); // PostgreSQL runs as its own user when we are root
let replica: StreamingReplica | undefined;
let api: ApiProcess | undefined;
let listener: ApiProcess | undefined;
try {
  const pool = await createDatabasePool(services.databaseUrl, { applicationName: 'bench setup' });
  process.stderr.write(`seeding ${products} products × ${warehouses} warehouses…\n`);
  await seed(pool, { products, warehouses, units: 1000, lowStockThreshold: 0 });
  await pool.end();
  const [setup] = await openClients(services.databaseUrl, 1);
  await setup!.query('vacuum analyze');
  await setup!.query('checkpoint'); // the base backup's own checkpoint is then quick
  await closeClients([setup!]);

  process.stderr.write('making a streaming replica (base backup through pg_backup_start/stop)…\n');
  const primaryUrl = (database = 'bench') => Object.assign(new URL(services.databaseUrl), { pathname: `/${database}` }).toString();
  replica = await startStreamingReplica({ url: primaryUrl }, { dir: path.join(root, 'replica'), log: services.log });

  const jwtSecret = `bench-${crypto.randomUUID()}-${crypto.randomUUID()}`;
  const env = { DATABASE_URL: services.databaseUrl, DATABASE_READ_URL: replica.url('bench'), REDIS_URL: services.redisUrl!, JWT_SECRET: jwtSecret };
  listener = await startApiProcess(env, { roles: ['--listener'], requiredChecks: ['listener'] });
  await listener.ready;
  api = await startApiProcess(env, { roles: ['--api'], requiredChecks: ['postgres', 'redis', 'listener', 'replica'] });
  await api.ready;
  const { port } = api;
  const readyBody = await (await fetch(`http://127.0.0.1:${port}/ready`)).json() as { checks: { replica: { detail: { status: string } } } };
  if (readyBody.checks.replica.detail.status !== 'streaming') throw new Error(`the replica is ${readyBody.checks.replica.detail.status}, not streaming`);
  const token = await new SignJWT({ role: 'stockroom_reader' }).setProtectedHeader({ alg: 'HS256' })
    .setSubject('stockroom-bench').setIssuedAt().setExpirationTime('2h').sign(new TextEncoder().encode(jwtSecret));

  /** The API's reads by database so far, from its /metrics. */
  const readsSoFar = async () => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const count = (database: string) => Number(new RegExp(`^stockroom_api_query_reads_total\\{database="${database}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    return { replica: count('replica'), primary: count('primary') };
  };
  const cpuGroups = { api: api.child.pid!, primary: services.postgresPid, replica: replica.pid, listener: listener.child.pid! };

  const once = (variant: Variant, agent: http.Agent) => async () => {
    const sku = skuOf(1 + Math.floor(Math.random() * products));
    const { data, ms } = await postGraphql(agent, port, JSON.stringify({ query: QUERY, variables: { sku } }), { authorization: `Bearer ${token}`, ...VARIANTS[variant] });
    const product = (data as { productBySku: { sku: string; stockLevels: { nodes: unknown[] } } | null }).productBySku;
    if (product?.sku !== sku || product.stockLevels.nodes.length !== warehouses) {
      throw Object.assign(new Error(`asked for ${sku}, got ${JSON.stringify(product)?.slice(0, 200)}`), { code: 'WRONG_ANSWER' });
    }
    return ms;
  };
  const run = async (variant: Variant, time: number): Promise<Round> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: clients, maxFreeSockets: clients });
    const readsBefore = await readsSoFar();
    const meter = startCpuMeter(cpuGroups);
    const loop = await runWorkers(clients, time, once(variant, agent));
    const cpu = meter.stop();
    agent.destroy();
    const readsAfter = await readsSoFar();
    assertMostlyOk(loop);
    const { throughput, ok, latenciesMs, errors, firstError } = loop;
    return {
      throughput, ok, latenciesMs, errors, firstError, cpu,
      reads: { replica: readsAfter.replica - readsBefore.replica, primary: readsAfter.primary - readsBefore.primary },
    };
  };

  for (const variant of Object.keys(VARIANTS) as Variant[]) await run(variant, 1); // warm plans, caches and connections
  const results: Record<Variant, Round[]> = { replica: [], primary: [] };
  for (let r = 0; r < rounds; r++) {
    // Interleaved, and the order alternates: neither variant always runs on a machine the other just warmed.
    const order = (r % 2 === 0 ? ['replica', 'primary'] : ['primary', 'replica']) as Variant[];
    const line: string[] = [];
    for (const variant of order) {
      const result = await run(variant, seconds);
      results[variant].push(result);
      line.push(`${variant} ${Math.round(result.throughput)}/s`);
    }
    process.stderr.write(`round ${r + 1}/${rounds}: ${line.join(', ')}\n`);
  }

  const figureOf = (variant: Variant) => {
    const list = results[variant];
    const latency = summarize(list.flatMap((x) => x.latenciesMs));
    const requests = list.reduce((n, x) => n + x.ok, 0);
    const cpuMsPerRequest: Record<string, number> = {};
    for (const x of list) for (const [name, s] of Object.entries(x.cpu)) cpuMsPerRequest[name] = (cpuMsPerRequest[name] ?? 0) + s;
    for (const name of Object.keys(cpuMsPerRequest)) cpuMsPerRequest[name] = round((cpuMsPerRequest[name]! * 1000) / Math.max(1, requests), 3);
    const errors: Record<string, number> = {};
    for (const x of list) for (const [code, n] of Object.entries(x.errors)) errors[code] = (errors[code] ?? 0) + n;
    return {
      throughput: round(median(list.map((x) => x.throughput)), 0), requests, p50: round(latency.p50), p99: round(latency.p99),
      cpuMsPerRequest, readsOn: { replica: list.reduce((n, x) => n + x.reads.replica, 0), primary: list.reduce((n, x) => n + x.reads.primary, 0) }, errors,
    };
  };
  const figures = { replica: figureOf('replica'), primary: figureOf('primary') };
  const ratio = round(figures.replica.throughput / Math.max(1, figures.primary.throughput), 2);
  const report = { seconds, rounds, products, warehouses, clients, query: 'productBySku with stock levels and warehouses', ...figures, replicaToPrimary: ratio };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    printTable(['queries read from', 'clients', 'queries/s', 'p50 / p99 ms', 'CPU ms per query', 'API reads on replica / primary', 'errors'],
      (Object.keys(VARIANTS) as Variant[]).map((variant) => {
        const f = figures[variant];
        return [variant === 'replica' ? 'replica (DATABASE_READ_URL)' : 'primary (stockroom-read-from: primary)', clients, f.throughput, `${f.p50} / ${f.p99}`,
          Object.entries(f.cpuMsPerRequest).map(([name, ms]) => `${name} ${ms}`).join(', '), `${f.readsOn.replica} / ${f.readsOn.primary}`,
          Object.keys(f.errors).length ? JSON.stringify(f.errors) : ''];
      }));
    process.stdout.write(`replica / primary throughput: ${ratio}\n`);
  }
} finally {
  await api?.stop();
  await listener?.stop();
  await replica?.stop();
  await services.stop();
  rmSync(root, { recursive: true, force: true });
}
