// `stockroom cache …`: operator commands on the Redis catalog cache.
import type { Command } from 'commander';
import { cacheKeys } from '../cache/keys.ts';
import { createRedis } from '../cache/redis.ts';
import { rebuildCache } from '../cache/rebuild.ts';
import { CacheWriter } from '../cache/writer.ts';
import { checkDatabase } from '../db/check.ts';
import { withCliContext } from './context.ts';
import { printJson, startProgress } from './output.ts';

export function registerCache(program: Command): void {
  const cache = program.command('cache').description('the Redis catalog cache');
  cache
    .command('rebuild')
    .description('rewrite every stock key from PostgreSQL (safe while the listener runs: writes are version-guarded)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  stockroom cache rebuild\n  REDIS_URL=redis://cache:6379 stockroom cache rebuild --json')
    .action(async (options: { json?: boolean }) => {
      await withCliContext({ redis: true }, async ({ config, services, log }) => {
        await checkDatabase(services.databaseUrl, { logicalWal: false });
        const redis = createRedis(services.redisUrl!, log, 'stockroom-cli');
        try {
          const writer = new CacheWriter(redis, cacheKeys(config.cachePrefix), { name: config.stream, maxLength: config.streamMaxLength });
          let progress: ReturnType<typeof startProgress> | undefined;
          let shown = 0;
          const result = await rebuildCache({
            databaseUrl: services.databaseUrl, writer,
            onProgress: (done, total) => {
              progress ??= startProgress('rebuilding', total, 'stock rows');
              progress.advance(done - shown);
              shown = done;
            },
          });
          (progress ?? startProgress('rebuilding', 0, 'stock rows')).done(
            `rebuilt ${result.rows} stock rows of ${result.skus} skus in ${result.seconds.toFixed(2)} s (${result.stale} already newer in Redis)`);
          if (options.json) printJson({ ...result, seconds: Number(result.seconds.toFixed(3)) });
        } finally {
          await redis.quit().catch(() => redis.disconnect());
        }
      });
    });
}
