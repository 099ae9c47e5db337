// HTTP for operations: /health (the process is up), /ready (every role it
// runs can do its job; 503 otherwise, with the reason), /metrics (Prometheus).
import http from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.ts';

export type ReadinessCheck = () => Promise<{ ok: boolean; detail?: unknown }>;

export interface OpsServer {
  server: http.Server;
  /** Adds a readiness check under a name; /ready passes when all do. */
  addCheck(name: string, check: ReadinessCheck): void;
  /** Every role has started: /ready answers from the checks from now on (503 "starting" before). */
  markStarted(): void;
  /** Routes other paths here (the API mounts itself this way). */
  setFallback(handler: http.RequestListener): void;
  close(): Promise<void>;
}

export async function startOpsServer(port: number, registry: Registry, log: Logger): Promise<OpsServer> {
  const checks = new Map<string, ReadinessCheck>();
  let fallback: http.RequestListener | undefined;
  // Until every role is up, a load balancer must not send traffic (the API may not be mounted yet).
  let started = false;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok' }));
    } else if (req.method === 'GET' && path === '/ready' && !started) {
      res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'starting', checks: {} }));
    } else if (req.method === 'GET' && path === '/ready') {
      void (async () => {
        const results = Object.fromEntries(await Promise.all([...checks].map(async ([name, check]) => {
          try {
            return [name, await check()] as const;
          } catch (error) {
            return [name, { ok: false, detail: (error as Error).message }] as const;
          }
        })));
        const ok = Object.values(results).every((r) => r.ok);
        res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ready' : 'not ready', checks: results }));
      })();
    } else if (req.method === 'GET' && path === '/metrics') {
      void registry.metrics().then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body));
    } else if (fallback) {
      fallback(req, res);
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve());
  });
  log.info({ port }, 'http listening');
  return {
    server,
    addCheck: (name, check) => checks.set(name, check),
    markStarted: () => {
      started = true;
    },
    setFallback: (handler) => {
      fallback = handler;
    },
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    }),
  };
}
