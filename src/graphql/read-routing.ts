// Replica reads (DATABASE_READ_URL): which database a GraphQL operation runs on.
// - A query reads from the replica, as its role (the roles exist there: it is a
//   physical copy), while the replica streams within STOCKROOM_REPLICA_MAX_LAG
//   (db/replica-lag.ts samples it); otherwise from the primary.
// - A mutation runs wholly on the primary: its writes and every field of its
//   payload (read in its transaction, or after the combined reserve's commit,
//   on the primary), so a caller always sees what it just did.
// - A subscription too: its events are confirmed against the cache and any
//   fields it selects are read where the change was made.
// - A caller that must read its own earlier writes in a later query (a
//   mutation, then a query in another request) sends the header
//   `stockroom-read-from: primary` (over websockets, the connection parameter).
// - A replica that cannot be reached when a query asks for a session (stopped,
//   crashed, refusing) makes that query run on the primary, and the replica
//   counts as down until the next sample finds it again: reads keep working.
// - A replica call that fails because of the replica (its connection lost or
//   its server shutting down, or the statement cancelled by a conflict with
//   WAL replay) is run again on the primary: it only read. The replica counts
//   as down after a lost connection; a replay conflict is an incident of one
//   statement. Errors of the query itself (a timeout, a permission) are not retried.
import { SafeError } from 'postgraphile/grafast';
import type { WithPgClient } from 'postgraphile/@dataplan/pg';
import type { NodePostgresPgClient } from 'postgraphile/adaptors/pg';
import { getOperationAST } from 'postgraphile/graphql';
import { Counter, type Registry } from 'prom-client';
import type { ReplicaMonitor } from '../db/replica-lag.ts';

/** The header (and websocket connection parameter) by which a caller picks the database a query reads from. */
export const READ_FROM_HEADER = 'stockroom-read-from';

export type ReadTarget = 'replica' | 'primary';

/** What the caller asked for, or an INVALID_ARGUMENT error for anything but primary or replica. */
function askedTarget(value: unknown): { target?: ReadTarget; error?: { message: string; code: string; detail: { argument: string } } } {
  if (value === undefined || value === 'primary' || value === 'replica') return { target: value };
  return {
    error: {
      message: `${READ_FROM_HEADER} must be primary or replica (got ${JSON.stringify(String(value).slice(0, 40))})`,
      code: 'INVALID_ARGUMENT', detail: { argument: READ_FROM_HEADER },
    },
  };
}

/**
 * Where a query's reads go: the replica unless the caller asks for the
 * primary. Undefined for a mutation or subscription: it keeps the primary's
 * withPgClient PostGraphile gives every request.
 */
export function queryTargetOf(args: Grafast.ExecutionArgs, requestContext: Partial<Grafast.RequestContext>): ReadTarget | undefined {
  const { target, error } = askedTarget(requestContext.http?.headers[READ_FROM_HEADER] ?? requestContext.ws?.normalizedConnectionParams?.[READ_FROM_HEADER]);
  if (error) throw new SafeError(error.message, { code: error.code, statusCode: 400, detail: error.detail });
  if (getOperationAST(args.document, args.operationName)?.operation !== 'query') return undefined;
  return target ?? 'replica';
}

/** Over HTTP, a bad stockroom-read-from header is refused with 400 before the body is read (as a bad token is). */
export const ReadFromHeaderPlugin: GraphileConfig.Plugin = {
  name: 'StockroomReadFromHeaderPlugin',
  version: '1.0.0',
  grafserv: {
    middleware: {
      processRequest(next, { requestDigest, instance }) {
        if (requestDigest.path !== instance.dynamicOptions.graphqlPath) return next();
        const { error } = askedTarget(requestDigest.headers[READ_FROM_HEADER]);
        if (!error) return next();
        return {
          type: 'buffer', statusCode: 400, headers: { 'content-type': 'application/json; charset=utf-8' },
          buffer: Buffer.from(JSON.stringify({ errors: [{ message: error.message, extensions: { code: error.code, detail: error.detail } }] })),
        };
      },
    },
  },
};

export function createReadMetrics(registry: Registry) {
  return {
    reads: new Counter({
      name: 'stockroom_api_query_reads_total', help: 'Database calls of GraphQL queries, by the database that answered them (replica, or primary as the fallback or when asked)',
      labelNames: ['database'], registers: [registry],
    }),
  };
}

/** The withPgClient of each query target (both counted in stockroom_api_query_reads_total). */
export type QueryReads = Record<ReadTarget, WithPgClient<NodePostgresPgClient>>;

/**
 * The withPgClients of query operations. replica: the replica's role-routed
 * sessions while the monitor says it is readable, the primary's otherwise, and
 * the primary's for a call the replica failed (see replicaFailureOf).
 * primary: the primary's, for a query whose caller asked for it.
 */
export function makeQueryReads(deps: {
  primary: WithPgClient<NodePostgresPgClient>;
  replica: WithPgClient<NodePostgresPgClient>;
  monitor: Pick<ReplicaMonitor, 'readable' | 'reportUnreachable'>;
  metrics: ReturnType<typeof createReadMetrics>;
}): QueryReads {
  const { primary, replica, monitor, metrics } = deps;
  const onPrimary = (async <T>(pgSettings: Record<string, string | undefined> | null, callback: (client: NodePostgresPgClient) => T | Promise<T>): Promise<T> => {
    metrics.reads.inc({ database: 'primary' });
    return primary(pgSettings, callback);
  }) as WithPgClient<NodePostgresPgClient>;
  onPrimary.release = () => {};
  const read = (async <T>(pgSettings: Record<string, string | undefined> | null, callback: (client: NodePostgresPgClient) => T | Promise<T>): Promise<T> => {
    if (!monitor.readable) return onPrimary(pgSettings, callback);
    let reached = false;
    try {
      const result = await replica(pgSettings, (client) => {
        reached = true;
        return callback(client);
      });
      metrics.reads.inc({ database: 'replica' });
      return result;
    } catch (error) {
      // The callback never ran: no session could be had, so the primary answers.
      const failure = reached ? replicaFailureOf(error) : 'connection';
      if (!failure) throw error;
      if (failure === 'connection') monitor.reportUnreachable(error as Error);
      return onPrimary(pgSettings, callback);
    }
  }) as WithPgClient<NodePostgresPgClient>;
  read.release = () => {};
  return { replica: read, primary: onPrimary };
}

/** SQLSTATEs of a session the server ended or refused: admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped. */
const SESSION_ENDED = new Set(['57P01', '57P02', '57P03', '57P04']);

/**
 * Whether an error of a call on the replica was the replica's doing, and so
 * worth running again on the primary: its connection lost or ended
 * (`connection`), or the statement cancelled by a conflict with recovery
 * (`conflict`: 40001 on a standby, where nothing else raises it).
 */
function replicaFailureOf(error: unknown): 'connection' | 'conflict' | undefined {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    if (code.startsWith('08') || SESSION_ENDED.has(code)) return 'connection';
    return code === '40001' ? 'conflict' : undefined;
  }
  // node-postgres's own errors for a socket that went away (no SQLSTATE).
  const message = (error as Error).message ?? '';
  return /Connection terminated|ECONNRESET|EPIPE|Client has encountered a connection error/i.test(message) ? 'connection' : undefined;
}
