// bench/expiry: N reservations expiring at the same instant, released by the
// worker (`stockroom start --worker`, a separate process, its expiry sweeper
// running as in service): time from that instant until every one is EXPIRED
// and its stock back, and releases per second. Baseline in the same run: the
// same number released by calling inventory.expire_due(1000) in a loop
// directly (no jobs, no worker).
//
// The reservations are made through inventory.reserve (32 clients); their
// expires_at is then set to one instant with a direct UPDATE, since
// reservations made over a minute cannot otherwise expire together.
//
//   npm run bench:expiry -- [--reservations 100000] [--json]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createDatabasePool } from '../src/db/pool.ts';
import { seed } from '../src/db/seed.ts';
import { printTable } from '../src/cli/output.ts';
import { closeClients, openClients } from './lib/load.ts';
import { startBenchServices } from './lib/services.ts';
import { round } from './lib/stats.ts';

const { values: args } = parseArgs({
  options: {
    reservations: { type: 'string', default: '100000' },
    products: { type: 'string', default: '10000' },
    warehouses: { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
  },
});
const count = Number(args.reservations);
const CLI = fileURLToPath(new URL('../bin/stockroom.js', import.meta.url));

const services = await startBenchServices({ redis: true });
try {
  const pool = await createDatabasePool(services.databaseUrl, { applicationName: 'bench setup' });
  process.stderr.write(`seeding ${args.products} products × ${args.warehouses} warehouses…\n`);
  await seed(pool, { products: Number(args.products), warehouses: Number(args.warehouses), units: 1_000, lowStockThreshold: 0 });
  await pool.end();
  const admin = new pg.Client({ connectionString: services.databaseUrl });
  await admin.connect();
  const { rows: stockRows } = await admin.query<{ sku: string; code: string }>(`
    select p.sku, w.code from inventory.stock_levels s
    join inventory.products p on p.id = s.product_id join inventory.warehouses w on w.id = s.warehouse_id`);

  /** Makes `count` reservations, then sets them to expire together `inSeconds` from now. */
  const prepare = async (label: string, inSeconds: number): Promise<Date> => {
    process.stderr.write(`${label}: reserving ${count}…\n`);
    const clients = await openClients(services.databaseUrl, 32);
    let made = 0;
    await Promise.all(clients.map(async (client) => {
      while (made < count) {
        made++;
        const row = stockRows[Math.floor(Math.random() * stockRows.length)]!;
        await client.query({ name: 'reserve', text: `select inventory.reserve($1, $2::jsonb, '1 hour')`,
          values: [`${label}-${made}`, JSON.stringify([{ sku: row.sku, warehouse: row.code, qty: 1 }])] });
      }
    }));
    await closeClients(clients);
    const { rows: [instant] } = await admin.query<{ at: Date }>(`select now() + make_interval(secs => $1) as at`, [inSeconds]);
    await admin.query(`update inventory.reservations set expires_at = $1 where status = 'HELD'`, [instant!.at]);
    await admin.query('vacuum analyze inventory.reservations');
    return instant!.at;
  };

  const waitUntilAllExpired = async (instant: Date) => {
    const wait = instant.getTime() - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const started = performance.now();
    for (;;) {
      const { rows: [left] } = await admin.query<{ held: number; reserved: number }>(`
        select (select count(*) from inventory.reservations where status = 'HELD')::int as held,
               (select coalesce(sum(reserved), 0) from inventory.stock_levels)::int as reserved`);
      if (left!.held === 0 && left!.reserved === 0) return (performance.now() - started) / 1000;
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  // The worker, as in service.
  const workerDataDir = mkdtempSync(path.join(os.tmpdir(), 'stockroom-bench-worker-'));
  const worker = spawn(process.execPath, [CLI, 'start', '--worker'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: services.databaseUrl, REDIS_URL: services.redisUrl,
      PORT: '0', LOG_LEVEL: 'warn', STOCKROOM_DATA_DIR: workerDataDir },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  worker.once('exit', () => rmSync(workerDataDir, { recursive: true, force: true }));
  const workerInstant = await prepare('worker', 10);
  const workerSeconds = await waitUntilAllExpired(workerInstant);
  await new Promise<void>((resolve) => {
    worker.once('exit', () => resolve());
    worker.kill('SIGTERM');
  });

  // Baseline: expire_due straight from here.
  const baselineInstant = await prepare('baseline', 2);
  await new Promise((r) => setTimeout(r, Math.max(0, baselineInstant.getTime() - Date.now())));
  const baselineStarted = performance.now();
  for (;;) {
    const { rows: [r] } = await admin.query<{ n: number }>('select inventory.expire_due(1000) as n');
    if (r!.n < 1000) break;
  }
  const baselineSeconds = (performance.now() - baselineStarted) / 1000;
  const { rows: [left] } = await admin.query<{ held: number }>(`select count(*)::int as held from inventory.reservations where status = 'HELD'`);
  if (left!.held !== 0) throw new Error(`baseline left ${left!.held} reservations HELD`);
  await admin.end();

  const report = {
    reservations: count,
    worker: { seconds: round(workerSeconds, 2), perSecond: Math.round(count / workerSeconds) },
    baseline: { seconds: round(baselineSeconds, 2), perSecond: Math.round(count / baselineSeconds) },
    ratio: round(workerSeconds / baselineSeconds, 2),
  };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    printTable(['reservations', 'worker: all released in', 'releases/s', 'expire_due loop alone', 'releases/s', 'time ratio', 'target'], [[
      count, `${report.worker.seconds} s`, report.worker.perSecond, `${report.baseline.seconds} s`, report.baseline.perSecond, report.ratio, '≤ 15 s',
    ]]);
    process.stdout.write(`target: all ${count} released within 15 s: ${report.worker.seconds} s ${report.worker.seconds <= 15 ? '(met)' : '(missed)'}\n`);
  }
} finally {
  await services.stop();
}
