// The API's database sessions: a small pool per API role, each session
// running as its role, with the API's statement timeout, from the moment it
// connects. PostGraphile wraps every request that carries settings in a
// transaction of its own (begin, set_config, the query, commit: four round
// trips for one query); with the role already in place, a request whose only
// setting is its role runs each query alone, in one round trip. Settings
// beyond the role (the ledger's actor in a mutation) still go through
// PostGraphile's transaction, on a session of the right role.
//
// This is PostGraphile's own pg adaptor (makePgAdaptorWithPgClient), given a
// pool chosen by role: its public extension point, nothing private.
import pg from 'pg';
import type { WithPgClient } from 'postgraphile/@dataplan/pg';
import { makePgAdaptorWithPgClient, makePgService, type NodePostgresPgClient } from 'postgraphile/adaptors/pg';
import { API_ROLES, type ApiRole } from './auth.ts';

export interface RolePools {
  /** The owner's pool: introspection, LISTEN for subscriptions, health checks. */
  owner: pg.Pool;
  byRole: Record<ApiRole, pg.Pool>;
  end(): Promise<void>;
}

/** A pool whose sessions act as `role` from the start (set in the startup packet), or as the login when role is undefined. */
export function sessionPool(databaseUrl: string, options: {
  role?: string; statementTimeout?: string; max: number; applicationName: string; connectionTimeoutMillis?: number; queryTimeoutMillis?: number;
}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl, max: options.max, application_name: options.applicationName,
    ...(options.connectionTimeoutMillis ? { connectionTimeoutMillis: options.connectionTimeoutMillis } : {}),
    ...(options.queryTimeoutMillis ? { query_timeout: options.queryTimeoutMillis } : {}),
    // Sent in the startup packet: in force before the first query, no round trip of its own.
    options: [
      options.role ? `-c role=${options.role}` : '',
      options.statementTimeout ? `-c statement_timeout=${options.statementTimeout}` : '',
    ].filter(Boolean).join(' ') || undefined,
  });
  return pool;
}

/**
 * options.replica: the pools of a read replica: named so in pg_stat_activity,
 * quick to give up connecting to a replica that is gone, and an owner whose
 * queries (the lag sampler's) give up on a replica that stopped answering.
 */
export function makeRolePools(databaseUrl: string, statementTimeout: string, onError: (error: Error) => void, options: { replica?: boolean } = {}): RolePools {
  const name = options.replica ? 'stockroom api reads' : 'stockroom api';
  const connectionTimeoutMillis = options.replica ? 2000 : undefined;
  const owner = sessionPool(databaseUrl, { max: 4, applicationName: name, connectionTimeoutMillis, queryTimeoutMillis: options.replica ? 2000 : undefined });
  const byRole = Object.fromEntries(API_ROLES.map((role) => [role,
    sessionPool(databaseUrl, { role, statementTimeout, max: 8, applicationName: `${name} (${role})`, connectionTimeoutMillis })])) as Record<ApiRole, pg.Pool>;
  for (const pool of [owner, ...Object.values(byRole)]) pool.on('error', onError);
  return {
    owner, byRole,
    end: async () => {
      await Promise.all([owner, ...Object.values(byRole)].map((pool) => pool.end()));
    },
  };
}

type PgService = ReturnType<typeof makePgService>;

/**
 * The pg service for PostGraphile with an adaptor that routes each request by
 * its `role` setting to that role's pool and passes on only the other settings.
 */
export function roleRoutedPgService(pools: RolePools, options: Omit<Parameters<typeof makePgService>[0], 'pool' | 'connectionString'>): PgService {
  const service = makePgService({ ...options, pool: pools.owner });
  const routed = roleRouted(pools);
  return {
    ...service,
    adaptor: { ...service.adaptor, createWithPgClient: () => routed },
  };
}

/** A withPgClient that runs each request on the pool of its `role` setting, passing on only the other settings. */
export function roleRouted(pools: RolePools): WithPgClient<NodePostgresPgClient> {
  const withOwner = makePgAdaptorWithPgClient(pools.owner);
  const withRole = new Map<string, WithPgClient<NodePostgresPgClient>>(
    API_ROLES.map((role) => [role, makePgAdaptorWithPgClient(pools.byRole[role])]));
  const routed = (async <T>(pgSettings: Record<string, string | undefined> | null, callback: (client: NodePostgresPgClient) => T | Promise<T>): Promise<T> => {
    const { role, ...rest } = pgSettings ?? {};
    const others = Object.values(rest).some((v) => v != null) ? rest : null;
    if (role === undefined) return withOwner(others, callback);
    const target = withRole.get(role);
    if (!target) throw new Error(`no API pool for role ${JSON.stringify(role)}`);
    return target(others, callback);
  }) as WithPgClient<NodePostgresPgClient>;
  routed.release = () => {};
  return routed;
}
