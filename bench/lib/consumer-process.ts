// Runs `stockroom start --listener` as a child process for benchmarks, the
// way it runs in service, and knows when it is streaming.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../bin/stockroom.js', import.meta.url));

export interface ConsumerProcess {
  child: ChildProcess;
  /** Resolves when the log says the replication stream started. */
  streaming: Promise<void>;
  stop(): Promise<void>;
}

export function startConsumerProcess(env: Record<string, string>): ConsumerProcess {
  // BENCH_CONSUMER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the consumer.
  const nodeArgs = (process.env.BENCH_CONSUMER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'stockroom-bench-consumer-'));
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'start', '--listener'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: '0', LOG_LEVEL: 'info', STOCKROOM_DATA_DIR: dataDir, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.once('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  const streaming = new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stderr! });
    lines.on('line', (line) => {
      if (line.includes('"replication stream started"')) resolve();
      if (process.env.BENCH_DEBUG) process.stderr.write(`[consumer] ${line}\n`);
    });
    child.once('exit', (code) => reject(new Error(`consumer exited with ${code} before streaming`)));
  });
  streaming.catch(() => {});
  return {
    child,
    streaming,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}
