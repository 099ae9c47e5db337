// The one place that reads the environment. Validated at start; a bad value
// stops the program with a message naming the variable.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { parsePartition, type Partition } from './partition.ts';

/** The database roles the API can act as, weakest first (each a member of the one before); stockroom_public is a caller without a token. */
export const API_ROLES = ['stockroom_public', 'stockroom_reader', 'stockroom_writer', 'stockroom_admin'] as const;
export type ApiRole = (typeof API_ROLES)[number];

const identifier = () =>
  z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case SQL identifier (a-z, 0-9, _; at most 63 characters)');

const url = (schemes: string[], example: string) =>
  z.string().refine((value) => {
    try {
      return schemes.includes(new URL(value).protocol);
    } catch {
      return false;
    }
  }, `must be a URL like ${example}`);

const schema = z.object({
  DATABASE_URL: url(['postgres:', 'postgresql:'], 'postgres://user:password@host:5432/database').optional(),
  DATABASE_READ_URL: url(['postgres:', 'postgresql:'], 'postgres://user:password@replica-host:5432/database (a streaming replica of DATABASE_URL)').optional(),
  STOCKROOM_REPLICA_MAX_LAG: z.string().regex(/^\d+(ms|s|min)$/, 'must be a duration like 500ms, 5s or 1min').default('5s'),
  STOCKROOM_REPLICA_SAMPLE_INTERVAL: z.string().default('1s')
    .refine((d) => /^\d+(ms|s|min)$/.test(d) && durationSeconds(d) >= 0.1 && durationSeconds(d) <= 60, 'must be a duration from 100ms to 1min, like 250ms, 1s or 1min'),
  REDIS_URL: z.string().refine((value) => parseRedisUrl(value) !== undefined,
    'must be a URL like redis://host:6379/0, or redis+cluster://host1:6379,host2:6379 for a Redis Cluster (seed nodes)').optional(),
  PORT: z.coerce.number().int().min(0).max(65535).default(5678), // 0: any free port
  STOCKROOM_CACHE_PREFIX: z.string().min(1).max(64).default('catalog:'),
  STOCKROOM_PUBLICATION: identifier().default('stockroom'),
  STOCKROOM_SLOT: identifier().default('stockroom_cache'),
  STOCKROOM_STREAM: z.string().min(1).max(200).default('stock-events'),
  STOCKROOM_PARTITION: z.string().optional(),
  STOCKROOM_STREAM_MAXLEN: z.coerce.number().int().min(1000).default(1_000_000),
  STOCKROOM_DATA_DIR: z.string().min(1).default('.data'),
  STOCKROOM_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(4),
  STOCKROOM_WORKER_HEARTBEAT_MS: z.coerce.number().int().min(100).max(60_000).default(5_000),
  STOCKROOM_VERIFY_FIX: z.enum(['true', 'false']).default('false'),
  STOCKROOM_STATEMENT_TIMEOUT: z.string().regex(/^\d+(ms|s|min)?$/, "must be a duration like 5s, 500ms or 1min").default('5s'),
  STOCKROOM_MAX_QUERY_DEPTH: z.coerce.number().int().min(2).max(100).default(12),
  STOCKROOM_MAX_QUERY_COST: z.coerce.number().int().min(10).default(50_000),
  STOCKROOM_PERSISTED_OPERATIONS_DIR: z.string().min(1).optional(),
  STOCKROOM_RESERVE_CONNECTIONS: z.coerce.number().int().min(1).max(32).default(2),
  STOCKROOM_RESERVE_MAX_BATCH: z.coerce.number().int().min(1).max(1000).default(64),
  STOCKROOM_MAX_PAGE_SIZE: z.coerce.number().int().min(1).max(100_000).default(1000),
  STOCKROOM_MAX_ALIASES: z.coerce.number().int().min(0).max(10_000).default(20),
  STOCKROOM_CACHE_READ_TIMEOUT: z.string().regex(/^\d+(ms|s)$/, 'must be a duration like 250ms or 1s').default('250ms'),
  STOCKROOM_API_ROLES: z.string().default(API_ROLES.join(',')).transform((list, ctx) => {
    const roles = list.split(',').map((r) => r.trim()).filter(Boolean);
    const unknown = roles.find((r) => !(API_ROLES as readonly string[]).includes(r));
    if (unknown !== undefined || roles.length === 0) {
      ctx.addIssue({ code: 'custom', message: `must be a comma-separated list of ${API_ROLES.join(', ')}${unknown ? ` (${JSON.stringify(unknown.slice(0, 64))} is none of them)` : ''}` });
      return z.NEVER;
    }
    return roles as ApiRole[];
  }),
  STOCKROOM_JWT_MAX_LIFETIME: z.string().regex(/^\d+(s|min|h|d)$/, 'must be a duration like 3600s, 15min, 24h or 7d').default('24h'),
  JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
});

export interface Config {
  databaseUrl: string | undefined;
  /** A streaming replica of the database: GraphQL queries read from it (src/graphql/read-routing.ts). */
  databaseReadUrl: string | undefined;
  redisUrl: string | undefined;
  port: number;
  cachePrefix: string;
  publication: string;
  slot: string;
  stream: string;
  /** The listener streams only this partition of the skus (STOCKROOM_PARTITION or --partition i/N). */
  partition: Partition | undefined;
  streamMaxLength: number;
  dataDir: string;
  workerConcurrency: number;
  /** How often a worker pool records that it lives; one silent for 6 beats is dead and its jobs are unlocked. */
  workerHeartbeatMs: number;
  /** The nightly verify_counters repairs what it finds. */
  verifyFix: boolean;
  jwtSecret: string | undefined;
  /** The longest a token may live (exp − iat), in seconds. */
  jwtMaxLifetimeSeconds: number;
  api: {
    /** Roles the API serves (stockroom_public is the caller without a token). */
    roles: ApiRole[];
    /** The largest page (first/last/max) a query may ask for. */
    maxPageSize: number;
    /** The most aliased fields one operation may hold. */
    maxAliases: number;
    /** How long cachedStock waits for Redis before answering from PostgreSQL, in ms. */
    cacheReadTimeoutMs: number;
    statementTimeout: string;
    maxDepth: number;
    maxCost: number;
    /** When set, only the operations in this directory are accepted (<documentId>.graphql files). */
    persistedOperationsDir: string | undefined;
    /** Queries go to the primary while the replica is further behind than this, in seconds. */
    replicaMaxLagSeconds: number;
    /** How often the replica's lag is sampled, in ms. */
    replicaSampleIntervalMs: number;
    /** Transactions the reserve mutation's combiner runs at once. */
    reserveConnections: number;
    /** The most reserve mutations one combined call carries. */
    reserveMaxBatch: number;
  };
  production: boolean;
  logLevel: string;
  /** auto: readable lines on a terminal, JSON otherwise. */
  logFormat: 'auto' | 'json' | 'pretty';
}

/** Reads .env (when present; real environment variables win), then validates. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  const dotenv = path.join(cwd, '.env');
  if (env === process.env && existsSync(dotenv)) process.loadEnvFile(dotenv);
  const parsed = schema.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0]);
    const got = env[name];
    const shown = name === 'JWT_SECRET' || got === undefined ? '' : ` (got ${JSON.stringify(redact(got))})`;
    throw new ConfigError(`${name} ${issue.message}${shown}`);
  }
  const c = parsed.data;
  if (c.REDIS_URL && parseRedisUrl(c.REDIS_URL)!.cluster) {
    // The cluster layout (src/cache/keys.ts) puts hash tags of its own into keys; a brace here would change them.
    for (const name of ['STOCKROOM_CACHE_PREFIX', 'STOCKROOM_STREAM'] as const) {
      if (/[{}]/.test(c[name])) throw new ConfigError(`${name} must not contain { or } with a Redis Cluster (REDIS_URL=redis+cluster://…): Stockroom sets the keys' hash tags itself (got ${JSON.stringify(c[name])})`);
    }
  }
  return {
    databaseUrl: c.DATABASE_URL,
    databaseReadUrl: c.DATABASE_READ_URL,
    redisUrl: c.REDIS_URL,
    port: c.PORT,
    cachePrefix: c.STOCKROOM_CACHE_PREFIX,
    publication: c.STOCKROOM_PUBLICATION,
    slot: c.STOCKROOM_SLOT,
    stream: c.STOCKROOM_STREAM,
    partition: c.STOCKROOM_PARTITION === undefined ? undefined : parsePartition(c.STOCKROOM_PARTITION, 'STOCKROOM_PARTITION'),
    streamMaxLength: c.STOCKROOM_STREAM_MAXLEN,
    dataDir: path.resolve(cwd, c.STOCKROOM_DATA_DIR),
    workerConcurrency: c.STOCKROOM_WORKER_CONCURRENCY,
    workerHeartbeatMs: c.STOCKROOM_WORKER_HEARTBEAT_MS,
    verifyFix: c.STOCKROOM_VERIFY_FIX === 'true',
    jwtSecret: c.JWT_SECRET,
    jwtMaxLifetimeSeconds: durationSeconds(c.STOCKROOM_JWT_MAX_LIFETIME),
    api: {
      roles: c.STOCKROOM_API_ROLES as ApiRole[],
      maxPageSize: c.STOCKROOM_MAX_PAGE_SIZE,
      maxAliases: c.STOCKROOM_MAX_ALIASES,
      cacheReadTimeoutMs: durationSeconds(c.STOCKROOM_CACHE_READ_TIMEOUT) * 1000,
      statementTimeout: c.STOCKROOM_STATEMENT_TIMEOUT,
      maxDepth: c.STOCKROOM_MAX_QUERY_DEPTH,
      maxCost: c.STOCKROOM_MAX_QUERY_COST,
      persistedOperationsDir: c.STOCKROOM_PERSISTED_OPERATIONS_DIR ? path.resolve(cwd, c.STOCKROOM_PERSISTED_OPERATIONS_DIR) : undefined,
      replicaMaxLagSeconds: durationSeconds(c.STOCKROOM_REPLICA_MAX_LAG),
      replicaSampleIntervalMs: durationSeconds(c.STOCKROOM_REPLICA_SAMPLE_INTERVAL) * 1000,
      reserveConnections: c.STOCKROOM_RESERVE_CONNECTIONS,
      reserveMaxBatch: c.STOCKROOM_RESERVE_MAX_BATCH,
    },
    production: c.NODE_ENV === 'production',
    logLevel: c.LOG_LEVEL,
    logFormat: c.LOG_FORMAT,
  };
}

/** A Redis to connect to: one server (its URL as given), or a Redis Cluster by its seed nodes. */
export type RedisTarget =
  | { cluster: false; url: string }
  | { cluster: true; nodes: Array<{ host: string; port: number }>; username: string | undefined; password: string | undefined; tls: boolean };

/**
 * REDIS_URL's forms: redis://[user:password@]host:port[/db] (rediss:// with
 * TLS) for one server; redis+cluster://[user:password@]host:port[,host:port…]
 * (rediss+cluster:// with TLS) for a Redis Cluster, naming one or more seed
 * nodes (the client discovers the rest). Undefined for anything else.
 */
export function parseRedisUrl(value: string): RedisTarget | undefined {
  const cluster = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/?#@]+)\/?$/.exec(value);
  if (cluster) {
    const [, scheme, auth, hosts] = cluster;
    const nodes = hosts!.split(',').map((hostPort) => /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(hostPort.trim()));
    if (nodes.some((n) => !n || Number(n[2]) < 1 || Number(n[2]) > 65535)) return undefined;
    const [username, password] = auth === undefined ? [undefined, undefined]
      : auth.includes(':') ? [auth.slice(0, auth.indexOf(':')), auth.slice(auth.indexOf(':') + 1)] : [auth, undefined];
    return {
      cluster: true, tls: scheme === 'rediss',
      nodes: nodes.map((n) => ({ host: n![1]!.replace(/^\[|\]$/g, ''), port: Number(n![2]) })),
      username: username ? decodeURIComponent(username) : undefined, password: password ? decodeURIComponent(password) : undefined,
    };
  }
  try {
    return ['redis:', 'rediss:'].includes(new URL(value).protocol) ? { cluster: false, url: value } : undefined;
  } catch {
    return undefined;
  }
}

const SECONDS: Record<string, number> = { ms: 0.001, s: 1, min: 60, h: 3600, d: 86_400 };

/** "250ms", "15min", "24h" → seconds (the formats the schema accepts). */
function durationSeconds(text: string): number {
  const [, amount, unit] = /^(\d+)([a-z]+)$/.exec(text)!;
  return Number(amount) * SECONDS[unit!]!;
}

/** A URL with its password masked, for messages and logs. */
export function redact(value: string): string {
  const cluster = /^(rediss?\+cluster:\/\/[^:@/]*:)[^@/]*@/.exec(value);
  if (cluster) return value.replace(cluster[0], `${cluster[1]}***@`);
  try {
    const u = new URL(value);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return value;
  }
}
