// `stockroom start --worker` as its own process, as it runs in service: for
// tests that kill it (-9), restart it, or configure it through the environment.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { waitForExit } from '../../src/harness/processes.ts';
import { CLI, cliEnv } from '../cli/run-cli.ts';
import { waitFor } from '../helpers/cache.ts';
import { testServers } from '../helpers/environment.ts';
import type { LogLine } from './worker-harness.ts';

export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  /** Parsed JSON log lines from stderr so far. */
  logs: LogLine[];
  stdout(): string;
  /** The ops HTTP port (/metrics), once started. */
  port: number;
  /** A counter's value from /metrics (summed over labels). */
  metric(name: string): Promise<number>;
  /** SIGTERM, then SIGKILL if it does not go; resolves with the exit code (null when killed). */
  stop(): Promise<number | null>;
  kill9(): Promise<void>;
  exited(): boolean;
}

const running = new Set<ChildProcess>();

/** Starts a worker process and waits until it says it is running. */
export async function spawnWorker(databaseUrl: string, extraEnv: Record<string, string> = {}, timeoutMs = 30_000): Promise<WorkerProcess> {
  const env = cliEnv({
    DATABASE_URL: databaseUrl, REDIS_URL: testServers().redisUrl, PORT: '0', LOG_LEVEL: 'info', ...extraEnv,
  });
  const child = spawn(process.execPath, [CLI, 'start', '--worker'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  const logs: LogLine[] = [];
  const rawErr: string[] = [];
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  createInterface({ input: child.stderr! }).on('line', (line) => {
    rawErr.push(line);
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      /* not a log line */
    }
  });
  const ready = await waitFor(() => out.includes('Press Ctrl-C to stop.') || child.exitCode !== null, timeoutMs, 50);
  if (!ready || child.exitCode !== null) {
    child.kill('SIGKILL');
    throw new Error(`the worker did not start (exit ${child.exitCode}):\n${out}\n${rawErr.slice(-20).join('\n')}`);
  }
  const port = Number(/HTTP\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  return {
    child, pid: child.pid!, logs, port,
    stdout: () => out,
    metric: async (name) => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return text.split('\n').filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
        .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
    },
    stop: async () => {
      if (!exited()) {
        child.kill('SIGTERM');
        if (!(await waitForExit(child, 15_000))) {
          child.kill('SIGKILL');
          await waitForExit(child, 5_000);
        }
      }
      return child.exitCode;
    },
    kill9: async () => {
      child.kill('SIGKILL');
      await waitForExit(child, 5_000);
    },
    exited,
  };
}

/** Kills every worker process still running (for teardown). */
export async function killAllWorkers(): Promise<void> {
  await Promise.all([...running].map(async (child) => {
    child.kill('SIGKILL');
    await waitForExit(child, 5_000);
  }));
}
