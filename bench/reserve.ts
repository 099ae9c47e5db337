// bench/reserve: inventory.reserve against a bare baseline, in one run on one
// database with production durability (fsync, synchronous commit).
//
// Baseline: one statement doing one UPDATE … WHERE on_hand - reserved >= q plus
// one INSERT of a hold, on a copy of the same 200,000 stock rows, addressed by
// ids (no sku lookup, no ledger, no JSON). inventory.reserve does all of that
// plus validation, sku/warehouse resolution, the reservation and its lines, and
// one ledger movement per row.
//
// Scenarios alternate baseline and reserve for --rounds rounds of --seconds
// each; throughput is the median over rounds, latencies pooled.
//
//   npm run bench:reserve -- [--seconds 5] [--rounds 3] [--products 10000] [--warehouses 20] [--json]
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { createDatabasePool } from '../src/db/pool.ts';
import { seed } from '../src/db/seed.ts';
import { closeClients, openClients, runClosedLoop, type LoadResult, type Operation } from './lib/load.ts';
import { startBenchServices } from './lib/services.ts';
import { median, round, summarize } from './lib/stats.ts';
import { printTable } from '../src/cli/output.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    products: { type: 'string', default: '10000' },
    warehouses: { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
  },
});
const seconds = Number(args.seconds);
const rounds = Number(args.rounds);

interface Row { productId: string; warehouseId: string; sku: string; code: string }

const services = await startBenchServices({ redis: false });
try {
  const pool = await createDatabasePool(services.databaseUrl, { applicationName: 'bench setup' });
  process.stderr.write(`seeding ${args.products} products × ${args.warehouses} warehouses…\n`);
  await seed(pool, { products: Number(args.products), warehouses: Number(args.warehouses), units: 100_000_000, lowStockThreshold: 0 });
  await pool.end();

  const [setup] = await openClients(services.databaseUrl, 1);
  await setup!.query(`
    create schema bench;
    create table bench.stock (
      product_id uuid, warehouse_id uuid, on_hand integer not null, reserved integer not null,
      primary key (product_id, warehouse_id), check (reserved <= on_hand));
    insert into bench.stock select product_id, warehouse_id, on_hand, reserved from inventory.stock_levels;
    create table bench.holds (
      id bigint generated always as identity primary key, product_id uuid not null, warehouse_id uuid not null,
      qty integer not null, order_ref text not null, created_at timestamptz not null default now());`);
  await setup!.query('vacuum analyze');
  const { rows } = await setup!.query<{ product_id: string; warehouse_id: string; sku: string; code: string }>(`
    select s.product_id, s.warehouse_id, p.sku, w.code
    from inventory.stock_levels s join inventory.products p on p.id = s.product_id join inventory.warehouses w on w.id = s.warehouse_id
    order by p.sku, w.code`);
  await closeClients([setup!]);
  const stockRows: Row[] = rows.map((r) => ({ productId: r.product_id, warehouseId: r.warehouse_id, sku: r.sku, code: r.code }));
  const randomRow = () => stockRows[Math.floor(Math.random() * stockRows.length)]!;
  const hotRow = stockRows[0]!;
  const basket = () => {
    const picked = new Map<string, Row>();
    while (picked.size < 5) {
      const row = randomRow();
      picked.set(row.sku, row);
    }
    return [...picked.values()];
  };
  let orders = 0;
  const orderRef = () => `bench-${++orders}`;

  const baselineOne = (row: Row): Operation => (client) => client.query({
    name: 'baseline-one',
    text: `with changed as (
             update bench.stock set reserved = reserved + $3
             where product_id = $1 and warehouse_id = $2 and on_hand - reserved >= $3
             returning product_id, warehouse_id)
           insert into bench.holds (product_id, warehouse_id, qty, order_ref)
           select product_id, warehouse_id, $3, $4 from changed`,
    values: [row.productId, row.warehouseId, 1, orderRef()],
  });
  const reserveOne = (row: Row): Operation => (client) => client.query({
    name: 'reserve-one',
    text: 'select id from inventory.reserve($1, $2::jsonb)',
    values: [orderRef(), JSON.stringify([{ sku: row.sku, warehouse: row.code, qty: 1 }])],
  });
  const baselineBasket: Operation = (client) => {
    const lines = basket();
    return client.query({
      name: 'baseline-basket',
      // Rows locked in key order first (the InitPlan runs before any update), as reserve does.
      text: `with req as (select * from unnest($1::uuid[], $2::uuid[], $3::int[]) r(product_id, warehouse_id, qty)),
             locked as (
               select s.product_id from bench.stock s join req using (product_id, warehouse_id)
               order by s.product_id, s.warehouse_id for update of s),
             changed as (
               update bench.stock s set reserved = s.reserved + r.qty from req r
               where s.product_id = r.product_id and s.warehouse_id = r.warehouse_id
                 and s.on_hand - s.reserved >= r.qty and (select count(*) from locked) > 0
               returning s.product_id, s.warehouse_id, r.qty)
             insert into bench.holds (product_id, warehouse_id, qty, order_ref)
             select product_id, warehouse_id, qty, $4 from changed`,
      values: [lines.map((l) => l.productId), lines.map((l) => l.warehouseId), lines.map(() => 1), orderRef()],
    });
  };
  const reserveBasket: Operation = (client) => client.query({
    name: 'reserve-basket',
    text: 'select id from inventory.reserve($1, $2::jsonb)',
    values: [orderRef(), JSON.stringify(basket().map((l) => ({ sku: l.sku, warehouse: l.code, qty: 1 })))],
  });

  const scenarios: Array<{ name: string; clients: number; baseline: Operation; reserve: Operation }> = [
    { name: 'uniform, 1 line', clients: 8, baseline: (c, w) => baselineOne(randomRow())(c, w), reserve: (c, w) => reserveOne(randomRow())(c, w) },
    { name: 'uniform, 1 line', clients: 32, baseline: (c, w) => baselineOne(randomRow())(c, w), reserve: (c, w) => reserveOne(randomRow())(c, w) },
    { name: 'hot row, 1 line', clients: 8, baseline: baselineOne(hotRow), reserve: reserveOne(hotRow) },
    { name: 'hot row, 1 line', clients: 64, baseline: baselineOne(hotRow), reserve: reserveOne(hotRow) },
    { name: 'uniform, 5-line basket', clients: 32, baseline: baselineBasket, reserve: reserveBasket },
  ];

  const clients = await openClients(services.databaseUrl, 64);
  const results = [];
  for (const scenario of scenarios) {
    const runs: { baseline: LoadResult[]; reserve: LoadResult[] } = { baseline: [], reserve: [] };
    const using = clients.slice(0, scenario.clients) as pg.Client[];
    await runClosedLoop(using, 1, scenario.reserve); // warm plans and caches
    await runClosedLoop(using, 1, scenario.baseline);
    for (let round = 0; round < rounds; round++) {
      runs.baseline.push(await runClosedLoop(using, seconds, scenario.baseline));
      runs.reserve.push(await runClosedLoop(using, seconds, scenario.reserve));
      process.stderr.write(`${scenario.name} @${scenario.clients}: round ${round + 1}/${rounds} baseline ${Math.round(runs.baseline.at(-1)!.throughput)}/s, reserve ${Math.round(runs.reserve.at(-1)!.throughput)}/s\n`);
    }
    const figure = (list: LoadResult[]) => {
      const latency = summarize(list.flatMap((r) => r.latenciesMs));
      return {
      throughput: round(median(list.map((r) => r.throughput)), 0),
      p50: round(latency.p50), p99: round(latency.p99),
      errors: list.reduce<Record<string, number>>((all, r) => {
        for (const [code, n] of Object.entries(r.errors)) all[code] = (all[code] ?? 0) + n;
        return all;
      }, {}),
      };
    };
    const baseline = figure(runs.baseline);
    const reserve = figure(runs.reserve);
    results.push({ scenario: scenario.name, clients: scenario.clients, baseline, reserve, ratio: round(reserve.throughput / baseline.throughput, 2) });
  }
  await closeClients(clients);

  if (args.json) {
    process.stdout.write(`${JSON.stringify({ seconds, rounds, results }, null, 2)}\n`);
  } else {
    printTable(
      ['scenario', 'clients', 'baseline ops/s', 'reserve ops/s', 'ratio', 'baseline p50/p99 ms', 'reserve p50/p99 ms', 'errors'],
      results.map((r) => [r.scenario, r.clients, r.baseline.throughput, r.reserve.throughput, r.ratio,
        `${r.baseline.p50} / ${r.baseline.p99}`, `${r.reserve.p50} / ${r.reserve.p99}`,
        JSON.stringify({ ...r.baseline.errors, ...r.reserve.errors }) === '{}' ? '' : JSON.stringify({ baseline: r.baseline.errors, reserve: r.reserve.errors })]));
    const target = results.find((r) => r.scenario === 'uniform, 1 line' && r.clients === 32)!;
    process.stdout.write(`target: reserve ≥ 80% of baseline, uniform at 32 clients: ${Math.round(target.ratio * 100)}% ${target.ratio >= 0.8 ? '(met)' : '(missed)'}\n`);
  }
} finally {
  await services.stop();
}
