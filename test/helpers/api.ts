// Runs the API role in the test process against a test database, on a free
// port, the way `stockroom start --api` does (ops server + grafserv), and talks
// to it over real HTTP and websockets.
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { Registry } from 'prom-client';
import { loadConfig } from '../../src/config.ts';
import { startApi } from '../../src/graphql/server.ts';
import { startOpsServer } from '../../src/http/ops-server.ts';
import { Lifecycle } from '../../src/lifecycle.ts';
import { createLogger } from '../../src/log.ts';
import { uniqueNames } from './cache.ts';
import { testServers } from './environment.ts';
import { metricValue } from './metrics.ts';

export const JWT_SECRET = 'test-secret-for-the-api-tests-0123456789';

export interface TestApi {
  url: string;
  names: ReturnType<typeof uniqueNames>;
  registry: Registry;
  /** POST /graphql; returns the status and the parsed body. */
  graphql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>, options?: { token?: string; headers?: Record<string, string> }): Promise<GraphQLResponse<T>>;
  /** The value of a counter (summed over labels) or a histogram's count, from /metrics' registry. */
  metric(name: string): Promise<number>;
  stop(): Promise<void>;
}

export interface GraphQLResponse<T> {
  status: number;
  data: T | null | undefined;
  errors: Array<{ message: string; path?: string[]; extensions?: { code?: string; detail?: unknown; [k: string]: unknown } }> | undefined;
}

export async function startTestApi(databaseUrl: string, options: {
  label?: string; names?: ReturnType<typeof uniqueNames>; redisUrl?: string; env?: Record<string, string>; checkSlotConsumer?: boolean;
} = {}): Promise<TestApi> {
  const names = options.names ?? uniqueNames(options.label ?? 'api');
  const config = loadConfig({
    STOCKROOM_CACHE_PREFIX: names.prefix, STOCKROOM_STREAM: names.stream, STOCKROOM_SLOT: names.slot,
    STOCKROOM_PUBLICATION: names.publication, JWT_SECRET, ...options.env,
  }, process.cwd());
  const log = createLogger(process.env.LOG_LEVEL ?? 'silent', 'test-api');
  const lifecycle = new Lifecycle(log);
  const registry = new Registry();
  try {
    const ops = await startOpsServer(0, registry, log);
    lifecycle.onStop('http', () => ops.close());
    await startApi({
      config, databaseUrl, redisUrl: options.redisUrl ?? testServers().redisUrl, ops, registry, lifecycle, log, checkSlotConsumer: options.checkSlotConsumer,
    });
    ops.markStarted();
    const url = `http://127.0.0.1:${(ops.server.address() as AddressInfo).port}`;
    return {
      url, names, registry,
      graphql: async (query, variables, { token, headers } = {}) => {
        const response = await fetch(`${url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
          body: JSON.stringify({ query, variables }),
        });
        const body = (await response.json()) as { data?: never; errors?: never };
        return { status: response.status, data: body.data, errors: body.errors };
      },
      metric: (name) => metricValue(registry, name),
      stop: () => lifecycle.stop('test done'),
    };
  } catch (error) {
    await lifecycle.stop('start failed');
    throw error;
  }
}

/** An HS256 token; `expiresIn` like '1h' or a past timestamp (seconds) to make it expired. */
export function token(role: string, options: { secret?: string; exp?: number | string; sub?: string } = {}): Promise<string> {
  const jwt = new SignJWT({ role }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(options.exp ?? '1h');
  if (options.sub) jwt.setSubject(options.sub);
  return jwt.sign(new TextEncoder().encode(options.secret ?? JWT_SECRET));
}

/** An unsigned token (alg: none) claiming a role. */
export function unsignedToken(role: string): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ role, exp: Math.floor(Date.now() / 1000) + 3600 })}.`;
}

export interface Subscription {
  /** Resolves with the next payload (rejects after timeoutMs). */
  next(timeoutMs: number): Promise<{ data?: Record<string, unknown>; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }>;
  close(): void;
}

/**
 * A subscription over the graphql-transport-ws protocol (what grafserv speaks),
 * on Node's own WebSocket client, so the test sees every frame.
 * Resolves once the server acknowledged the connection and took the subscription.
 */
export async function subscribe(url: string, query: string, variables: Record<string, unknown>, options: { token?: string; connectionParams?: Record<string, string> } = {}): Promise<Subscription> {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
  const queue: Array<{ data?: Record<string, unknown>; errors?: never }> = [];
  const waiters: Array<(value: (typeof queue)[number]) => void> = [];
  const push = (payload: (typeof queue)[number]) => {
    const waiter = waiters.shift();
    if (waiter) waiter(payload);
    else queue.push(payload);
  };
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('error', () => reject(new Error('websocket error')), { once: true });
    socket.addEventListener('close', (event) => reject(new Error(`websocket closed before ack: ${event.code} ${event.reason}`)), { once: true });
    socket.addEventListener('open', () => {
      socket.send(JSON.stringify({ type: 'connection_init', payload: { ...options.connectionParams, ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) } }));
    }, { once: true });
    socket.addEventListener('message', (event) => {
      const message = JSON.parse(String(event.data)) as { type: string; payload?: never };
      if (message.type === 'connection_ack') {
        socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables } }));
        resolve();
      } else if (message.type === 'next') push(message.payload!);
      else if (message.type === 'error') push({ errors: message.payload });
      else if (message.type === 'ping') socket.send(JSON.stringify({ type: 'pong' }));
    });
  });
  return {
    next: (timeoutMs) => {
      const queued = queue.shift();
      if (queued) return Promise.resolve(queued);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no subscription payload within ${timeoutMs} ms`));
        }, timeoutMs);
        const waiter = (value: (typeof queue)[number]) => {
          clearTimeout(timer);
          resolve(value);
        };
        waiters.push(waiter);
      });
    },
    close: () => socket.close(),
  };
}
