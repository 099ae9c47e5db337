// bench/reserve: the checkout path through SQL, in one run on one database
// with production durability (fsync, synchronous commit), 200,000 stock rows.
//
// Variants, all called as clients call them (one statement each):
// - baseline: the bare UPDATE … WHERE available >= qty plus INSERT of a hold,
//   one plpgsql function on a copy of the same stock rows addressed by ids
//   (bench/sql/baseline.sql);
// - reserve: inventory.reserve with one line naming its warehouse;
// - reserve_many ×8: inventory.reserve_many with 8 such requests (figures are
//   reservations per second, not calls);
// - reference: reserve's add-to-cart path as it was before issue 9, expiry
//   job row included (bench/sql/reference.sql), on the hot row;
// - reserve, no queue: today's reserve without its advisory-lock queue for
//   the row (made from sql/functions/reserve.sql at setup), on the hot row.
// Scenarios: uniform random rows at 8 and 32 sessions, reserve_many at 32
// sessions, 5-line baskets, a kit of 5 components next to a 5-line basket
// (each reserve holds 5 rows), and one hot row at 8 and 64 sessions. Within a
// scenario the variants take turns for --rounds rounds of --seconds each;
// throughput is the median over rounds, latencies pooled over rounds.
// With --attribute, one more round of each single-line variant runs with
// pg_stat_statements tracking the statements inside the functions: the
// cost of each write in reserve (time and WAL per call).
//
//   npm run bench:reserve -- [--seconds 5] [--rounds 3] [--products 10000] [--warehouses 20]
//                            [--only <regex of scenario names>] [--attribute] [--json]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { createDatabasePool } from '../src/db/pool.ts';
import { seed } from '../src/db/seed.ts';
import { printTable } from '../src/cli/output.ts';
import { closeClients, openClients, runClosedLoop, type LoadResult, type Operation } from './lib/load.ts';
import { startBenchServices } from './lib/services.ts';
import { median, round, summarize } from './lib/stats.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    products: { type: 'string', default: '10000' },
    warehouses: { type: 'string', default: '20' },
    only: { type: 'string' },
    attribute: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const seconds = Number(args.seconds);
const rounds = Number(args.rounds);
const only = args.only ? new RegExp(args.only) : undefined;
/** Kits made for the kit scenario (5 random components each). */
const KITS = 1000;
const BATCH = 8;

interface Row { productId: string; warehouseId: string; sku: string; code: string }
interface Variant { name: string; op: Operation; reservationsPerCall: number }
interface Scenario { name: string; clients: number; variants: Variant[] }

const services = await startBenchServices({
  redis: false,
  settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'none' },
});
try {
  const pool = await createDatabasePool(services.databaseUrl, { applicationName: 'bench setup' });
  process.stderr.write(`seeding ${args.products} products × ${args.warehouses} warehouses…\n`);
  await seed(pool, { products: Number(args.products), warehouses: Number(args.warehouses), units: 100_000_000, lowStockThreshold: 0 });
  await pool.end();

  const [setup] = await openClients(services.databaseUrl, 1);
  for (const file of ['baseline.sql', 'reference.sql']) {
    await setup!.query(readFileSync(new URL(`./sql/${file}`, import.meta.url), 'utf8'));
  }
  // Today's reserve without its queue for the row (the advisory lock), to measure what the queue does.
  const queueLock = /^\s*perform pg_advisory_xact_lock\(uuid_hash_extended\(v_product_id, .*\n/m;
  const today = readFileSync(new URL('../sql/functions/reserve.sql', import.meta.url), 'utf8');
  if (!queueLock.test(today)) throw new Error('bench/reserve: the queue lock is no longer in sql/functions/reserve.sql; update the no-queue variant');
  await setup!.query(`create schema bench_no_queue;\n${today.replace(queueLock, '').replace('function inventory.reserve(', 'function bench_no_queue.reserve(')
    .replace(/comment on function[\s\S]*$/, '')}`);
  // Kits of 5 distinct products each (one unit of each per kit), for the kit scenario.
  await setup!.query(`
    do $$
    begin
      for i in 1 .. ${KITS} loop
        perform inventory.upsert_product('BENCH-KIT-' || i);
        perform inventory.set_kit('BENCH-KIT-' || i, (
          select jsonb_agg(jsonb_build_object('sku', p.sku, 'qty', 1))
          from (select sku from inventory.products where not is_kit and sku not like 'BENCH-KIT-%' order by random() limit 5) p));
      end loop;
    end
    $$`);
  // A channel selling from half the warehouses, for the channel scenario.
  await setup!.query(`select inventory.upsert_channel('BENCH-WEB', 'Bench web shop', 'PRIORITY')`);
  await setup!.query(`select inventory.set_channel_warehouses('BENCH-WEB',
    (select jsonb_agg(jsonb_build_object('warehouse', code) order by code) from (select code from inventory.warehouses order by code limit 10) w))`);
  await setup!.query('create extension pg_stat_statements');
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
  const line = (row: Row) => ({ sku: row.sku, warehouse: row.code, qty: 1 });

  const baseline = (pick: () => Row): Variant => ({
    name: 'baseline', reservationsPerCall: 1,
    op: (client) => {
      const row = pick();
      return client.query({ name: 'baseline', text: 'select bench.reserve($1, $2, 1, $3)', values: [row.productId, row.warehouseId, orderRef()] });
    },
  });
  const reserve = (pick: () => Row): Variant => ({
    name: 'reserve', reservationsPerCall: 1,
    op: (client) => client.query({ name: 'reserve', text: 'select id from inventory.reserve($1, $2::jsonb)', values: [orderRef(), JSON.stringify([line(pick())])] }),
  });
  const noQueue = (pick: () => Row): Variant => ({
    name: 'reserve, no queue', reservationsPerCall: 1,
    op: (client) => client.query({ name: 'no-queue', text: 'select id from bench_no_queue.reserve($1, $2::jsonb)', values: [orderRef(), JSON.stringify([line(pick())])] }),
  });
  const reference = (pick: () => Row): Variant => ({
    name: 'reference', reservationsPerCall: 1,
    op: (client) => client.query({ name: 'reference', text: 'select id from bench_reference.reserve($1, $2::jsonb)', values: [orderRef(), JSON.stringify([line(pick())])] }),
  });
  const reserveMany = (pick: () => Row): Variant => ({
    name: `reserve_many ×${BATCH}`, reservationsPerCall: BATCH,
    op: async (client) => {
      const requests = Array.from({ length: BATCH }, () => ({ order_ref: orderRef(), lines: [line(pick())] }));
      const { rows: results } = await client.query<{ sqlstate: string | null; message: string | null }>({
        name: 'reserve-many', text: 'select sqlstate, message from inventory.reserve_many($1::jsonb)', values: [JSON.stringify(requests)],
      });
      const failed = results.find((r) => r.sqlstate);
      if (failed || results.length !== BATCH) throw Object.assign(new Error(failed?.message ?? `${results.length} results`), { code: failed?.sqlstate ?? 'RESULTS' });
    },
  });
  const baselineBasket: Variant = {
    name: 'baseline', reservationsPerCall: 1,
    op: (client) => {
      const lines = basket();
      return client.query({
        name: 'baseline-basket', text: 'select bench.reserve_basket($1, $2, $3, $4)',
        values: [lines.map((l) => l.productId), lines.map((l) => l.warehouseId), lines.map(() => 1), orderRef()],
      });
    },
  };
  const reserveBasket: Variant = {
    name: 'reserve', reservationsPerCall: 1,
    op: (client) => client.query({ name: 'reserve-basket', text: 'select id from inventory.reserve($1, $2::jsonb)', values: [orderRef(), JSON.stringify(basket().map(line))] }),
  };
  // A line without a warehouse (allocated), plain and through a channel of half the warehouses.
  const openLine = (channel: boolean): Variant => ({
    name: channel ? 'open line, channel' : 'open line', reservationsPerCall: 1,
    op: (client) => client.query({
      name: channel ? 'reserve-open-channel' : 'reserve-open', text: 'select id from inventory.reserve($1, $2::jsonb)',
      values: [orderRef(), JSON.stringify([{ sku: randomRow().sku, qty: 1, ...(channel ? { channel: 'BENCH-WEB' } : {}) }])],
    }),
  });
  const hot = () => hotRow;
  const codes = [...new Set(stockRows.map((r) => r.code))];
  const reserveKit: Variant = {
    name: 'kit of 5', reservationsPerCall: 1,
    op: (client) => client.query({
      name: 'reserve-kit', text: 'select id from inventory.reserve($1, $2::jsonb)',
      values: [orderRef(), JSON.stringify([{ sku: `BENCH-KIT-${1 + Math.floor(Math.random() * KITS)}`, warehouse: codes[Math.floor(Math.random() * codes.length)], qty: 1 }])],
    }),
  };

  const scenarios: Scenario[] = ([
    { name: 'uniform, 1 line', clients: 8, variants: [baseline(randomRow), reserve(randomRow)] },
    { name: 'uniform, 1 line', clients: 32, variants: [baseline(randomRow), reserve(randomRow)] },
    { name: 'uniform, reserve_many', clients: 32, variants: [baseline(randomRow), reserveMany(randomRow)] },
    { name: 'uniform, 5-line basket', clients: 32, variants: [baselineBasket, reserveBasket] },
    { name: 'uniform, kit of 5 vs 5-line basket', clients: 32, variants: [reserveBasket, reserveKit] },
    { name: 'uniform, open line vs through a channel', clients: 32, variants: [openLine(false), openLine(true)] },
    { name: 'hot row, 1 line', clients: 8, variants: [baseline(hot), reserve(hot), noQueue(hot), reference(hot)] },
    { name: 'hot row, 1 line', clients: 64, variants: [baseline(hot), reserve(hot), noQueue(hot), reference(hot)] },
    { name: 'hot row, reserve_many', clients: 8, variants: [reserveMany(hot)] },
  ] satisfies Scenario[]).filter((s) => !only || only.test(s.name));

  const clients = await openClients(services.databaseUrl, 64);
  const results: Array<{ scenario: string; clients: number; variants: Record<string, ReturnType<typeof figure>> }> = [];
  function figure(list: LoadResult[], perCall: number) {
    const latency = summarize(list.flatMap((r) => r.latenciesMs));
    const errors: Record<string, number> = {};
    for (const r of list) for (const [code, n] of Object.entries(r.errors)) errors[code] = (errors[code] ?? 0) + n;
    return { reservationsPerSecond: round(median(list.map((r) => r.throughput)) * perCall, 0), p50: round(latency.p50), p99: round(latency.p99), errors };
  }
  for (const scenario of scenarios) {
    const using = clients.slice(0, scenario.clients) as pg.Client[];
    const runs = new Map<string, LoadResult[]>(scenario.variants.map((v) => [v.name, []]));
    for (const variant of scenario.variants) await runClosedLoop(using, 1, variant.op); // warm plans and caches
    for (let r = 0; r < rounds; r++) {
      const line: string[] = [];
      for (const variant of scenario.variants) {
        const run = await runClosedLoop(using, seconds, variant.op);
        runs.get(variant.name)!.push(run);
        line.push(`${variant.name} ${Math.round(run.throughput * variant.reservationsPerCall)}/s`);
      }
      process.stderr.write(`${scenario.name} @${scenario.clients}: round ${r + 1}/${rounds} ${line.join(', ')}\n`);
    }
    results.push({
      scenario: scenario.name, clients: scenario.clients,
      variants: Object.fromEntries(scenario.variants.map((v) => [v.name, figure(runs.get(v.name)!, v.reservationsPerCall)])),
    });
  }

  // The cost of each statement inside reserve (and the others), with pg_stat_statements.
  let attribution: Array<Record<string, unknown>> | undefined;
  if (args.attribute) {
    const using = clients.slice(0, 32) as pg.Client[];
    await Promise.all(using.map((c) => c.query(`set pg_stat_statements.track = 'all'`)));
    attribution = [];
    for (const variant of [baseline(randomRow), reserve(randomRow), reference(randomRow)]) {
      await using[0]!.query('select pg_stat_statements_reset()');
      const run = await runClosedLoop(using, seconds, variant.op);
      const { rows: statements } = await using[0]!.query<{ query: string; calls: string; ms: number; wal_bytes: string; top: boolean }>(`
        select regexp_replace(query, '\\s+', ' ', 'g') as query, calls, total_exec_time as ms, wal_bytes, toplevel as top
        from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())
        order by total_exec_time desc limit 14`);
      const top = statements.find((s) => s.top && /reserve/.test(s.query));
      for (const s of statements) {
        attribution.push({
          variant: variant.name, statement: s.query.slice(0, 90), calls: Number(s.calls),
          msPerCall: round(s.ms / Number(s.calls), 4), shareOfCall: top ? round(s.ms / top.ms, 3) : null,
          walBytesPerCall: round(Number(s.wal_bytes) / Math.max(1, run.ok), 0),
        });
      }
    }
    await Promise.all(using.map((c) => c.query(`set pg_stat_statements.track = 'none'`)));
  }
  await closeClients(clients);

  const find = (scenario: string, clientCount: number, variant: string) =>
    results.find((r) => r.scenario === scenario && r.clients === clientCount)?.variants[variant]?.reservationsPerSecond;
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? round(a / b, 2) : undefined);
  const targets = [
    { target: 'reserve, uniform @32 ≥ 0.45 of baseline', value: ratio(find('uniform, 1 line', 32, 'reserve'), find('uniform, 1 line', 32, 'baseline')), min: 0.45 },
    { target: 'hot row: reserve @64 ≥ 0.4 of reserve @8', value: ratio(find('hot row, 1 line', 64, 'reserve'), find('hot row, 1 line', 8, 'reserve')), min: 0.4 },
    { target: 'hot row: reserve @64 ≥ 2 × reference @64', value: ratio(find('hot row, 1 line', 64, 'reserve'), find('hot row, 1 line', 64, 'reference')), min: 2 },
    { target: `reserve_many ×${BATCH}, uniform @32 ≥ 1.0 of baseline per reservation`, value: ratio(find('uniform, reserve_many', 32, `reserve_many ×${BATCH}`), find('uniform, reserve_many', 32, 'baseline')), min: 1 },
  ].filter((t) => t.value !== undefined).map((t) => ({ ...t, met: t.value! >= t.min }));

  if (args.json) {
    process.stdout.write(`${JSON.stringify({ seconds, rounds, results, targets, attribution }, null, 2)}\n`);
  } else {
    printTable(
      ['scenario', 'clients', 'variant', 'reservations/s', 'vs first', 'p50 / p99 ms per call', 'errors'],
      results.flatMap((r) => {
        const [first] = Object.values(r.variants);
        return Object.entries(r.variants).map(([name, f]) => [r.scenario, r.clients, name, f.reservationsPerSecond,
          ratio(f.reservationsPerSecond, first!.reservationsPerSecond), `${f.p50} / ${f.p99}`,
          Object.keys(f.errors).length ? JSON.stringify(f.errors) : '']);
      }));
    if (attribution) {
      printTable(['variant', 'statement', 'calls', 'ms per call', 'share of the call', 'WAL bytes per reservation'],
        attribution.map((a) => [a.variant, a.statement, a.calls, a.msPerCall, a.shareOfCall, a.walBytesPerCall] as Array<string | number | null>));
    }
    for (const t of targets) process.stdout.write(`target: ${t.target}: ${t.value} ${t.met ? '(met)' : '(missed)'}\n`);
  }
} finally {
  await services.stop();
}
