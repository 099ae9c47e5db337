// The listener role: the cache consumer and the resync listener, with the
// clients they share made once here.
import pg from 'pg';
import type { Registry } from 'prom-client';
import type { Config } from '../config.ts';
import { cacheKeysFor, createRedis } from '../cache/redis.ts';
import { rebuildCache } from '../cache/rebuild.ts';
import { CacheWriter } from '../cache/writer.ts';
import type { Lifecycle } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { CacheConsumer } from './consumer.ts';
import { createListenerMetrics } from './metrics.ts';
import { partitionNames } from '../partition.ts';
import { ResyncListener } from './resync.ts';

export interface ListenerRole {
  consumer: CacheConsumer;
  resync: ResyncListener;
}

export async function startListener(
  deps: { config: Config; databaseUrl: string; redisUrl: string; log: Logger; registry: Registry; lifecycle: Lifecycle },
): Promise<ListenerRole> {
  const { config, databaseUrl, redisUrl, log, registry, lifecycle } = deps;
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4, application_name: 'stockroom listener' });
  pool.on('error', (error) => log.warn({ err: error.message }, 'listener pool client error'));
  lifecycle.onStop('listener pool', () => pool.end());
  const redis = createRedis(redisUrl, log, 'stockroom-listener');
  lifecycle.onStop('listener redis', async () => {
    await redis.quit().catch(() => redis.disconnect());
  });
  const metrics = createListenerMetrics(registry);
  // A partition streams through a slot, publications and an events stream of its own (partition.ts).
  const { partition } = config;
  const names = partitionNames(config, partition);
  const writer = new CacheWriter(redis, cacheKeysFor(redis, config.cachePrefix, names.stream, partition), { name: names.stream, maxLength: config.streamMaxLength });

  const consumer = new CacheConsumer({
    databaseUrl, pool, writer, slot: names.slot, publication: names.publication, ledgerPublication: names.ledgerPublication, partition, metrics, log,
  });
  await consumer.start();
  lifecycle.onStop('cache consumer', () => consumer.stop());

  const resync = new ResyncListener({
    databaseUrl, pool, writer, metrics, log,
    onReconnected: async () => {
      metrics.rebuilds.inc({ reason: 'resync listener reconnected' });
      await rebuildCache({ databaseUrl, writer, partition });
    },
  });
  await resync.start();
  lifecycle.onStop('resync listener', () => resync.stop());
  log.info({ slot: names.slot, publications: [names.publication, names.ledgerPublication].filter(Boolean), stream: names.stream,
    partition: partition && `${partition.index}/${partition.count}`, prefix: config.cachePrefix }, 'listener running');
  return { consumer, resync };
}
