// The API role: PostGraphile served by grafserv on the process's HTTP server
// (beside /health, /ready and /metrics), websockets included.
import type { Duplex } from 'node:stream';
import pg from 'pg';
import { postgraphile } from 'postgraphile';
import { grafserv } from 'postgraphile/grafserv/node';
import type { Registry } from 'prom-client';
import { cacheKeys } from '../cache/keys.ts';
import { createRedis } from '../cache/redis.ts';
import { CacheWriter } from '../cache/writer.ts';
import type { Config } from '../config.ts';
import { ConfigError } from '../errors.ts';
import type { OpsServer } from '../http/ops-server.ts';
import { slotConsumerCheck } from '../http/readiness.ts';
import type { Lifecycle } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { CachedStockReader, createCacheMetrics } from './cached-stock.ts';
import { makePreset } from './preset.ts';
import { createApiMetrics, makeSchemaExtensions } from './schema-extensions.ts';

export interface ApiDeps {
  config: Config;
  databaseUrl: string;
  redisUrl: string;
  ops: OpsServer;
  registry: Registry;
  lifecycle: Lifecycle;
  log: Logger;
  /** The slot consumer runs in another process: /ready checks that someone streams from the slot. */
  checkSlotConsumer?: boolean;
}

export async function startApi(deps: ApiDeps): Promise<void> {
  const { config, databaseUrl, redisUrl, ops, registry, lifecycle, log } = deps;
  if (config.production && !config.jwtSecret) {
    throw new ConfigError('JWT_SECRET must be set when NODE_ENV=production (at least 32 characters): without it the API could only serve anonymous readers');
  }
  if (!config.jwtSecret) log.warn('JWT_SECRET is not set: the API serves anonymous readers only and refuses every token');

  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4, application_name: 'stockroom api' });
  pool.on('error', (error) => log.warn({ err: error.message }, 'api pool client error'));
  const redis = createRedis(redisUrl, log, 'stockroom-api');
  const keys = cacheKeys(config.cachePrefix);
  const cache = new CachedStockReader({
    redis, keys, pool, metrics: createCacheMetrics(registry),
    writer: new CacheWriter(redis, keys, { name: config.stream, maxLength: config.streamMaxLength }),
  });
  const preset = makePreset({
    databaseUrl,
    jwtSecret: config.jwtSecret ? new TextEncoder().encode(config.jwtSecret) : undefined,
    production: config.production,
    statementTimeout: config.api.statementTimeout,
    limits: { maxDepth: config.api.maxDepth, maxCost: config.api.maxCost },
    persistedOperationsDirectory: config.api.persistedOperationsDir,
    extensions: makeSchemaExtensions({ cache, metrics: createApiMetrics(registry) }),
  });
  const pgl = postgraphile(preset);
  await pgl.getSchema(); // built now: a schema problem stops the start, not the first request
  const serv = pgl.createServ(grafserv);
  ops.setFallback(serv.createHandler());
  const upgrade = await serv.getUpgradeHandler();
  // Open subscriptions, closed on stop: an upgraded socket would otherwise keep the server from closing.
  const websockets = new Set<Duplex>();
  if (upgrade) {
    ops.server.on('upgrade', (req, socket, head) => {
      if (!serv.shouldHandleUpgrade(req, socket, head)) {
        socket.destroy();
        return;
      }
      websockets.add(socket);
      socket.once('close', () => websockets.delete(socket));
      upgrade(req, socket, head);
    });
  }
  ops.addCheck('postgres', async () => {
    await pool.query('select 1');
    return { ok: true };
  });
  ops.addCheck('redis', async () => ({ ok: (await redis.ping()) === 'PONG' }));
  if (deps.checkSlotConsumer) ops.addCheck('listener', () => slotConsumerCheck(pool, config.slot));

  lifecycle.onStop('api', async () => {
    const closed = ops.close(); // no new requests; in-flight ones finish
    for (const socket of websockets) socket.destroy();
    await closed;
    await pgl.release();
    for (const service of preset.pgServices ?? []) await service.release?.();
    await pool.end();
    await redis.quit().catch(() => redis.disconnect());
  });
  log.info({ graphql: '/graphql', graphiql: config.production ? null : '/graphiql' }, 'api running');
}
