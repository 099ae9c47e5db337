// `stockroom cache rebuild|verify`: operator commands on the Redis catalog cache.
import type { Command } from 'commander';
import { rebuildCache, RebuildInterruptedError } from '../cache/rebuild.ts';
import { ServiceUnavailableError } from '../errors.ts';
import { verifyCache } from '../cache/verify.ts';
import { checkDatabase } from '../db/check.ts';
import { openCliCache, withCliContext } from './context.ts';
import { printJson, printTable, startProgress, type Progress } from './output.ts';

/** A progress bar created at the first report (when the total is known). */
function progressReporter(label: string, unit: string) {
  let progress: Progress | undefined;
  let shown = 0;
  return {
    onProgress: (done: number, total: number) => {
      progress ??= startProgress(label, total, unit);
      progress.advance(done - shown);
      shown = done;
    },
    done: (summary: string) => (progress ?? startProgress(label, 0, unit)).done(summary),
  };
}

export function registerCache(program: Command): void {
  const cache = program.command('cache').description('the Redis catalog cache');
  cache
    .command('rebuild')
    .description('rewrite every stock key from PostgreSQL (safe while the listener runs: writes are version-guarded)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  stockroom cache rebuild\n  REDIS_URL=redis://cache:6379 stockroom cache rebuild --json')
    .action(async (options: { json?: boolean }) => {
      await withCliContext({ redis: true }, async (context) => {
        await checkDatabase(context.services.databaseUrl, { logicalWal: false });
        const cli = openCliCache(context);
        try {
          const reporter = progressReporter('rebuilding', 'stock rows');
          const result = await rebuildCache({ databaseUrl: context.services.databaseUrl, writer: cli.writer, onProgress: reporter.onProgress })
            .catch((error: unknown) => {
              throw error instanceof RebuildInterruptedError ? new ServiceUnavailableError(error.message) : error;
            });
          reporter.done(`rebuilt ${result.rows} stock rows of ${result.skus} skus in ${result.seconds.toFixed(2)} s (${result.stale} already newer in Redis)`);
          if (options.json) printJson({ ...result, seconds: Number(result.seconds.toFixed(3)) });
        } finally {
          await cli.close();
        }
      });
    });
  cache
    .command('verify')
    .description('compare every cache key with PostgreSQL; exits 1 when any differs (after --fix: when any could not be fixed)')
    .option('--fix', 'rewrite the skus that differ')
    .option('--sku <sku>', 'only this sku')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  stockroom cache verify\n  stockroom cache verify --sku SKU-000042 --fix\n  stockroom cache verify --json | jq .driftedSkus')
    .action(async (options: { fix?: boolean; sku?: string; json?: boolean }) => {
      await withCliContext({ redis: true }, async (context) => {
        await checkDatabase(context.services.databaseUrl, { logicalWal: false });
        const cli = openCliCache(context);
        try {
          const reporter = progressReporter(options.fix ? 'verifying and fixing' : 'verifying', 'stock rows');
          const result = await verifyCache({
            databaseUrl: context.services.databaseUrl, redis: cli.redis, writer: cli.writer, keys: cli.keys,
            fix: Boolean(options.fix), sku: options.sku, onProgress: reporter.onProgress,
          });
          reporter.done(`checked ${result.rows} stock rows of ${result.skus} skus in ${result.seconds.toFixed(2)} s: `
            + `${result.driftedSkus} sku(s) differ${options.fix ? `, ${result.fixedSkus} rewritten` : ''}`);
          let remaining = result.driftedSkus;
          if (options.fix && result.driftedSkus) {
            const again = await verifyCache({ databaseUrl: context.services.databaseUrl, redis: cli.redis, writer: cli.writer, keys: cli.keys, fix: false, sku: options.sku });
            remaining = again.driftedSkus;
          }
          if (options.json) {
            printJson({ ...result, seconds: Number(result.seconds.toFixed(3)), remaining });
          } else if (result.mismatches.length) {
            printTable(['sku', 'key', 'postgres', 'redis'], result.mismatches.map((m) => [m.sku, m.key, m.postgres ?? '(none)', m.redis ?? '(missing)']));
          }
          if (remaining > 0) process.exitCode = 1;
        } finally {
          await cli.close();
        }
      });
    });
}
