// Redis clients for Stockroom: fail fast on a dead server (a write that
// cannot land must fail, so the consumer does not acknowledge it) while
// ioredis keeps reconnecting in the background.
import { Redis } from 'ioredis';
import type { Logger } from '../log.ts';

export type { Redis };

export function createRedis(url: string, log: Logger, name: string): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    enableOfflineQueue: true,
    retryStrategy: (attempt) => Math.min(2_000, 50 * 2 ** Math.min(attempt, 6)),
  });
  let lastError = '';
  redis.on('error', (error: Error) => {
    // ioredis repeats the same connection error on every retry; log changes only.
    if (error.message !== lastError) log.warn({ err: error, redis: name }, 'redis error');
    lastError = error.message;
  });
  redis.on('ready', () => {
    if (lastError) log.info({ redis: name }, 'redis connection restored');
    lastError = '';
  });
  return redis;
}
