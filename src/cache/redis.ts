// Redis clients for Stockroom: fail fast on a dead server (a write that
// cannot land must fail, so the consumer does not acknowledge it) while
// ioredis keeps reconnecting in the background. REDIS_URL names one server,
// or a Redis Cluster by its seed nodes (redis+cluster://…, see config.ts):
// then the client is an ioredis Cluster, which has the same commands and
// routes each by its keys' slot; the cache then uses the cluster key layout
// (keys.ts) and per-slot scripts (writer.ts, reader.ts).
import { Cluster, Redis as Server } from 'ioredis';
import { parseRedisUrl } from '../config.ts';
import type { Logger } from '../log.ts';
import type { Partition } from '../partition.ts';
import { cacheKeys, type CacheKeys } from './keys.ts';

/** One Redis server or a Redis Cluster: the commands Stockroom uses are the same on both. */
export type Redis = Server | Cluster;
export { Cluster };

export function isCluster(redis: Redis): redis is Cluster {
  return redis instanceof Cluster;
}

/**
 * The key layout for this client: hash tags in a cluster (see keys.ts), plain
 * names on one server; a partitioned consumer's bookkeeping apart (`stream` is then the partition's).
 */
export function cacheKeysFor(redis: Redis, prefix: string, stream: string, partition?: Partition): CacheKeys {
  return cacheKeys(prefix, { cluster: isCluster(redis) ? { stream } : undefined, partition });
}

export function createRedis(url: string, log: Logger, name: string): Redis {
  const target = parseRedisUrl(url);
  if (!target) throw new Error(`not a Redis URL: ${url.replace(/:[^:@/]*@/, ':***@')}`);
  const retryStrategy = (attempt: number) => Math.min(2_000, 50 * 2 ** Math.min(attempt, 6));
  const common = { connectionName: name, maxRetriesPerRequest: 1, connectTimeout: 5_000, enableOfflineQueue: true };
  const redis: Redis = target.cluster
    ? new Cluster(target.nodes, {
      redisOptions: { ...common, username: target.username, password: target.password, ...(target.tls ? { tls: {} } : {}) },
      clusterRetryStrategy: retryStrategy,
      // No auto-pipelining: it routes a script (EVALSHA numkeys key…) by its key count, not its first key.
      // Commands sent at once still share each node's connection without waiting for one another.
      enableAutoPipelining: false,
      // A node down answers CLUSTERDOWN or not at all: fail the command after a few tries (the consumer replays) rather than queue it.
      retryDelayOnClusterDown: 200,
      retryDelayOnFailover: 200,
      maxRedirections: 6,
      slotsRefreshTimeout: 2_000,
    })
    : new Server(target.url, { ...common, retryStrategy });
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
