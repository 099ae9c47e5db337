// Runs `stockroom start --api --listener` as a child process for benchmarks,
// the way it runs in service (NODE_ENV=production, a JWT secret, its own
// port), waits for /ready, and posts GraphQL to it over keep-alive HTTP.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../bin/stockroom.js', import.meta.url));

export interface ApiProcess {
  child: ChildProcess;
  port: number;
  /** Resolves when GET /ready answers 200 with every required check; rejects if the process exits first or the timeout passes. */
  ready: Promise<void>;
  /** SIGTERM, then waits for the exit (SIGKILL after 15 s). Safe to call twice. */
  stop(): Promise<void>;
}

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function startApiProcess(env: Record<string, string>, options: { roles?: string[]; requiredChecks?: string[]; readyTimeoutMs?: number } = {}): Promise<ApiProcess> {
  const { roles = ['--api', '--listener'], requiredChecks = ['postgres', 'redis', 'listener'], readyTimeoutMs = 180_000 } = options;
  const port = await freePort();
  // Its own working directory: no .env of the checkout is read, no .data written there.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stockroom-bench-api-'));
  // BENCH_API_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the API process.
  const nodeArgs = (process.env.BENCH_API_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'start', ...roles], {
    cwd: dir,
    env: {
      PATH: process.env.PATH, HOME: process.env.HOME, PORT: String(port), STOCKROOM_DATA_DIR: path.join(dir, 'data'),
      NODE_ENV: 'production', LOG_LEVEL: 'warn', ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // Last resort: never leave it behind, whatever ends this process.
  const killOnExit = () => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', killOnExit);
  const onSigint = () => child.kill('SIGTERM');
  process.once('SIGINT', onSigint);

  const tail: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
    if (process.env.BENCH_DEBUG) process.stderr.write(`[api] ${line}\n`);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const ready = (async () => {
    const deadline = Date.now() + readyTimeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      try {
        const response = await fetch(`http://127.0.0.1:${port}/ready`, { signal: AbortSignal.timeout(5_000) });
        last = await response.text();
        // /ready answers 200 as soon as the HTTP server listens, before any role added its check:
        // ready means 200 with the checks of the roles asked for.
        const checks = Object.keys((JSON.parse(last) as { checks?: object }).checks ?? {});
        if (response.status === 200 && requiredChecks.every((name) => checks.includes(name))) return;
      } catch (error) {
        last = (error as Error).message;
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 250))]);
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the API process exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${tail.join('\n')}`);
    }
    throw new Error(`the API process was not ready after ${readyTimeoutMs / 1000} s (last /ready: ${last}):\n${tail.join('\n')}`);
  })();
  ready.catch(() => {});

  let stopping: Promise<void> | undefined;
  const stop = () => stopping ??= (async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    process.off('exit', killOnExit);
    process.off('SIGINT', onSigint);
    rmSync(dir, { recursive: true, force: true });
  })();
  return { child, port, ready, stop };
}

export class RequestError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** POST /graphql; resolves with the parsed body and the time to the last byte, rejects on any GraphQL error. */
export function postGraphql(agent: http.Agent, port: number, body: string, headers: Record<string, string>): Promise<{ data: unknown; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: '127.0.0.1', port, path: '/graphql', method: 'POST', agent,
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', 'content-length': Buffer.byteLength(body), ...headers },
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const ms = performance.now() - started;
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: { data?: unknown; errors?: Array<{ message: string; extensions?: { code?: string } }> };
        try {
          parsed = JSON.parse(text);
        } catch {
          return reject(new RequestError(`HTTP_${response.statusCode}`, `HTTP ${response.statusCode}: ${text.slice(0, 300)}`));
        }
        const error = parsed.errors?.[0];
        if (error) return reject(new RequestError(error.extensions?.code ?? 'GRAPHQL_ERROR', `${error.message} ${JSON.stringify(error.extensions ?? {})}`));
        if (response.statusCode !== 200) return reject(new RequestError(`HTTP_${response.statusCode}`, `HTTP ${response.statusCode}: ${text.slice(0, 300)}`));
        resolve({ data: parsed.data, ms });
      });
    });
    request.on('error', reject);
    request.end(body);
  });
}
