// What every CLI command needs, made once and passed in: config, a logger and
// the services (embedded or from DATABASE_URL/REDIS_URL). close() stops only
// what this command started.
import type { CacheKeys } from '../cache/keys.ts';
import { cacheKeysFor, createRedis, type Redis } from '../cache/redis.ts';
import { CacheWriter } from '../cache/writer.ts';
import { loadConfig, type Config } from '../config.ts';
import { provideServices, type Services } from '../harness/services.ts';
import { createLogger, type Logger } from '../log.ts';

export interface CliContext {
  config: Config;
  log: Logger;
  services: Services;
  close(): Promise<void>;
}

/** need.start: start embedded servers that are not running (start, migrate, seed); other commands only use running ones. */
export async function openCliContext(need: { redis: boolean; start?: boolean }, logLevel?: string): Promise<CliContext> {
  const config = loadConfig();
  // Commands print for people on stdout; logs stay quiet unless asked for.
  const log = createLogger(logLevel ?? (process.env.LOG_LEVEL ? config.logLevel : 'warn'), 'stockroom', config.logFormat);
  const services = await provideServices(config, log, { redis: need.redis, start: need.start ?? false });
  return { config, log, services, close: () => services.stop() };
}

/** Runs a command body with a context, closing it however the body ends. */
export async function withCliContext<T>(need: { redis: boolean; start?: boolean }, body: (context: CliContext) => Promise<T>): Promise<T> {
  const context = await openCliContext(need);
  try {
    return await body(context);
  } finally {
    await context.close();
  }
}

export interface CliCache { redis: Redis; writer: CacheWriter; keys: CacheKeys; close(): Promise<void> }

/** The Redis client, key layout and writer for commands that read or repair the cache. */
export function openCliCache({ config, services, log }: CliContext): CliCache {
  const redis = createRedis(services.redisUrl!, log, 'stockroom-cli');
  const keys = cacheKeysFor(redis, config.cachePrefix, config.stream);
  return {
    redis, keys,
    writer: new CacheWriter(redis, keys, { name: config.stream, maxLength: config.streamMaxLength }),
    close: async () => {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
