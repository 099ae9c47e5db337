import { InvalidArgumentError, type Command } from 'commander';
import { checkDatabase } from '../db/check.ts';
import { migrate } from '../db/migrate.ts';
import { createDatabasePool } from '../db/pool.ts';
import { seed } from '../db/seed.ts';
import { withCliContext } from './context.ts';
import { printJson, startProgress } from './output.ts';

const positiveInteger = (min: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected a whole number of at least ${min}`);
  return n;
};

export function registerSeed(program: Command): void {
  program
    .command('seed')
    .description('create demo products and warehouses, every stock row received with --units units')
    .option('--products <n>', 'number of products', positiveInteger(1), 1000)
    .option('--warehouses <m>', 'number of warehouses', positiveInteger(1), 5)
    .option('--units <u>', 'units received per stock row', positiveInteger(0), 100)
    .option('--low-stock <t>', 'low_stock_threshold of every stock row', positiveInteger(0), 5)
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  stockroom seed --products 10000 --warehouses 20\n  stockroom seed --products 50 --warehouses 3 --units 10 --json')
    .action(async (options: { products: number; warehouses: number; units: number; lowStock: number; json?: boolean }) => {
      await withCliContext({ redis: false, start: true }, async ({ services, log }) => {
        await checkDatabase(services.databaseUrl, { logicalWal: false });
        await migrate(services.databaseUrl, log);
        const pool = await createDatabasePool(services.databaseUrl, { applicationName: 'stockroom seed' });
        try {
          const started = performance.now();
          const progress = startProgress('seeding', options.products, 'products');
          let reported = 0;
          const result = await seed(pool, {
            products: options.products, warehouses: options.warehouses, units: options.units,
            lowStockThreshold: options.lowStock,
            onProgress: (done) => {
              progress.advance(done - reported);
              reported = done;
            },
          });
          const seconds = (performance.now() - started) / 1000;
          progress.done(`seeded in ${seconds.toFixed(1)} s: ${result.products} new products, ${result.warehouses} new warehouses, ${result.stockRows} new stock rows`);
          if (options.json) printJson({ ...result, seconds: Number(seconds.toFixed(3)) });
        } finally {
          await pool.end();
        }
      });
    });
}
