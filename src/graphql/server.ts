// The API role: PostGraphile served by grafserv on the process's HTTP server
// (beside /health, /ready and /metrics), websockets included.
import type { Duplex } from 'node:stream';
import { postgraphile } from 'postgraphile';
import { grafserv } from 'postgraphile/grafserv/node';
import type { Registry } from 'prom-client';
import { cacheKeysFor, createRedis } from '../cache/redis.ts';
import { CacheWriter } from '../cache/writer.ts';
import { redact, type Config } from '../config.ts';
import { jwtSecretOf } from '../dev-secret.ts';
import { ConfigError } from '../errors.ts';
import type { OpsServer } from '../http/ops-server.ts';
import { slotConsumerCheck } from '../http/readiness.ts';
import type { Lifecycle } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { CachedStockReader, createCacheMetrics } from './cached-stock.ts';
import { API_ROLES, signToken, type ApiRole } from './auth.ts';
import { makePreset } from './preset.ts';
import { ReserveCombiner, createCombinerMetrics } from './reserve-combiner.ts';
import { ReplicaMonitor } from '../db/replica-lag.ts';
import { createReadMetrics, makeQueryReads } from './read-routing.ts';
import { makeRolePools, roleRouted, roleRoutedPgService, sessionPool, type RolePools } from './role-pools.ts';
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
  const secret = jwtSecretOf(config);
  if (secret && secret.source !== 'JWT_SECRET') log.info({ secret: secret.source }, 'JWT_SECRET is not set: tokens are signed with the development secret (stockroom token --role writer)');

  const onPoolError = (error: Error) => log.warn({ err: error.message }, 'api pool client error');
  const pools = makeRolePools(databaseUrl, config.api.statementTimeout, onPoolError);
  const pool = pools.owner;
  const replica = config.databaseReadUrl
    ? await startReplicaReads(config, pools, registry, log, onPoolError).catch(async (error: unknown) => {
      await pools.end();
      throw error;
    })
    : undefined;
  // Reserve mutations combined (reserve-combiner.ts) run on sessions of their own, as stockroom_writer.
  const combinerPool = sessionPool(databaseUrl, {
    role: 'stockroom_writer', statementTimeout: config.api.statementTimeout,
    max: config.api.reserveConnections, applicationName: 'stockroom api (reserve)',
  });
  combinerPool.on('error', onPoolError);
  const combiner = new ReserveCombiner(combinerPool,
    { connections: config.api.reserveConnections, maxBatch: config.api.reserveMaxBatch }, createCombinerMetrics(registry));
  // Who may reserve is the database's grants (EXECUTE on reserve_many), read once.
  const { rows: mayReserve } = await pool.query<{ role: ApiRole }>(
    `select r as role from unnest($1::text[]) r where has_function_privilege(r, 'inventory.reserve_many(jsonb)', 'execute')`, [API_ROLES]);
  const redis = createRedis(redisUrl, log, 'stockroom-api');
  const keys = cacheKeysFor(redis, config.cachePrefix, config.stream);
  const cache = new CachedStockReader({
    redis, pool, metrics: createCacheMetrics(registry), readTimeoutMs: config.api.cacheReadTimeoutMs,
    writer: new CacheWriter(redis, keys, { name: config.stream, maxLength: config.streamMaxLength }),
  });
  const preset = makePreset({
    queryReads: replica?.queryReads,
    pgService: roleRoutedPgService(pools, {
      schemas: ['inventory'],
      // Introspect as the API's strongest role: the RBAC plugin then leaves out
      // everything no API role can execute or write. The requests' statement
      // timeout is not the schema's: building it may take longer.
      pgSettingsForIntrospection: { role: 'stockroom_admin', statement_timeout: '0' },
      pubsub: true,
    }),
    auth: {
      secret: secret ? new TextEncoder().encode(secret.value) : undefined,
      roles: new Set(config.api.roles), maxLifetimeSeconds: config.jwtMaxLifetimeSeconds,
    },
    production: config.production,
    // Outside production GraphiQL starts with a writer's token (8 h, within the maximum lifetime).
    graphiqlHeaders: secret && !config.production
      ? async () => ({ Authorization: `Bearer ${await signToken(secret.value, { role: 'stockroom_writer', sub: 'graphiql' }, Math.min(8 * 3600, config.jwtMaxLifetimeSeconds))}` })
      : undefined,
    limits: { maxDepth: config.api.maxDepth, maxCost: config.api.maxCost, maxPageSize: config.api.maxPageSize, maxAliases: config.api.maxAliases },
    persistedOperationsDirectory: config.api.persistedOperationsDir,
    extensions: makeSchemaExtensions({
      cache, metrics: createApiMetrics(registry), combiner, reserveRoles: new Set(mayReserve.map((r) => r.role)),
    }),
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
  // Always ok: while the replica lags or is down, queries are answered by the primary. The detail shows which.
  if (replica) ops.addCheck('replica', async () => ({ ok: true, detail: replica.monitor.state }));

  lifecycle.onStop('api', async () => {
    const closed = ops.close(); // no new requests; in-flight ones finish
    for (const socket of websockets) socket.destroy();
    await closed;
    await pgl.release();
    for (const service of preset.pgServices ?? []) await service.release?.();
    await combinerPool.end();
    await replica?.stop(); // before the primary's pools: its sampler uses them
    await pools.end();
    await redis.quit().catch(() => redis.disconnect());
  });
  log.info({ graphql: '/graphql', graphiql: config.production ? null : '/graphiql' }, 'api running');
}

/**
 * Query reads from DATABASE_READ_URL: pools per role on the replica, its lag
 * sampled every second. A replica that is not a standby is a configuration
 * mistake (a stop); one that does not answer yet is not (queries go to the
 * primary until it does).
 */
async function startReplicaReads(config: Config, pools: RolePools, registry: Registry, log: Logger, onPoolError: (error: Error) => void) {
  const readPools = makeRolePools(config.databaseReadUrl!, config.api.statementTimeout, onPoolError, { replica: true });
  const monitor = new ReplicaMonitor({ primary: pools.owner, replica: readPools.owner, maxLagSeconds: config.api.replicaMaxLagSeconds, intervalMs: config.api.replicaSampleIntervalMs, registry, log });
  const first = await monitor.start();
  if (first.problem === 'not_standby') {
    monitor.stop();
    await readPools.end();
    throw new ConfigError(`DATABASE_READ_URL ${redact(config.databaseReadUrl!)} is not a streaming replica (pg_is_in_recovery() is false there): point it at a hot standby of DATABASE_URL, or unset it`);
  }
  if (first.status === 'down') log.warn({ err: first.error }, 'read replica (DATABASE_READ_URL) not reachable: queries go to the primary until it is');
  return {
    monitor,
    queryReads: makeQueryReads({ primary: roleRouted(pools), replica: roleRouted(readPools), monitor, metrics: createReadMetrics(registry) }),
    stop: async () => {
      monitor.stop();
      await readPools.end();
    },
  };
}
