// A throwaway Redis Cluster from the system redis-server and redis-cli, for
// tests and benchmarks: N masters (no replicas) on free loopback ports, each
// with its own directory and nodes.conf under one temporary directory, joined
// by `redis-cli --cluster create`. A node can be restarted (same port, same
// nodes.conf, so the same slots) keeping its data (append-only file, flushed
// by a clean shutdown) or losing it (killed, its files removed), as a master
// restarted without persistence would.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ServiceUnavailableError } from '../errors.ts';
import { findExecutable, freePort, sleep, startWatchdog, stopChild, tailOf } from './processes.ts';
import { redisAnswers } from './redis.ts';

export interface RedisClusterOptions {
  masters?: number;
  /** How long a silent node takes to be marked failing (cluster-node-timeout), in ms. */
  nodeTimeoutMs?: number;
}

export interface RunningRedisCluster {
  /** REDIS_URL for Stockroom: redis+cluster://127.0.0.1:<port>,… */
  url: string;
  ports: number[];
  /** Stops node i and starts it again on its port with its nodes.conf; resolves once the cluster is ok again. */
  restartNode(i: number, options: { loseData: boolean }): Promise<void>;
  /** Stops node i (killed when its data is to be lost); startNode(i) brings it back. */
  stopNode(i: number, options: { loseData: boolean }): Promise<void>;
  startNode(i: number): Promise<void>;
  /** Runs redis-cli against node i; its output. */
  cli(i: number, ...args: string[]): string;
  stop(): Promise<void>;
}

export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RunningRedisCluster> {
  const server = findExecutable('redis-server');
  const cliBinary = findExecutable('redis-cli');
  if (!server || !cliBinary) throw new ServiceUnavailableError('redis-server and redis-cli are needed for a Redis Cluster (Debian/Ubuntu: apt-get install redis-server)');
  const masters = options.masters ?? 3;
  const root = mkdtempSync(path.join(os.tmpdir(), 'stockroom-redis-cluster-'));
  const ports: number[] = [];
  for (let i = 0; i < masters; i++) {
    let port = await freePort();
    // The cluster bus listens on port + 10000: both must be free and distinct.
    while (port > 55_000 || ports.includes(port)) port = await freePort();
    ports.push(port);
  }
  const children: Array<ChildProcess | undefined> = [];
  const watchdogs: Array<() => void> = [];
  const dirOf = (i: number) => path.join(root, `node-${i}`);

  const startNode = async (i: number): Promise<void> => {
    const dir = dirOf(i);
    mkdirSync(dir, { recursive: true });
    const logFile = path.join(dir, 'redis.log');
    const logFd = openSync(logFile, 'a');
    const child = spawn(server, [
      '--port', String(ports[i]), '--bind', '127.0.0.1', '--dir', dir, '--daemonize', 'no', '--protected-mode', 'yes',
      '--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf'),
      '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 1_500),
      '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec',
    ], { detached: true, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    children[i] = child;
    watchdogs[i] = startWatchdog(child.pid!, `kill -KILL ${child.pid}`);
    const deadline = Date.now() + 20_000;
    while (!(await redisAnswers(ports[i]!))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new ServiceUnavailableError(`redis-server (cluster node ${i}) did not start on port ${ports[i]}: ${tailOf(logFile) || 'no log output'}`);
      }
      await sleep(50);
    }
  };

  const stopNode = async (i: number, how: { loseData: boolean }): Promise<void> => {
    const child = children[i];
    if (!child) return;
    // A clean shutdown writes the append-only file out; a kill (and its files removed) loses everything.
    await stopChild(child, how.loseData ? [{ signal: 'SIGKILL', waitMs: 5_000 }] : [{ signal: 'SIGTERM', waitMs: 10_000 }, { signal: 'SIGKILL', waitMs: 5_000 }]);
    watchdogs[i]?.();
    children[i] = undefined;
    if (how.loseData) {
      rmSync(path.join(dirOf(i), 'appendonlydir'), { recursive: true, force: true });
      rmSync(path.join(dirOf(i), 'dump.rdb'), { force: true });
    }
  };

  const cli = (i: number, ...args: string[]): string => {
    const result = spawnSync(cliBinary, ['-h', '127.0.0.1', '-p', String(ports[i]), ...args], { encoding: 'utf8', timeout: 30_000 });
    if (result.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${result.stderr || result.stdout}`);
    return result.stdout;
  };

  /** Every node answers cluster_state:ok and knows every node as connected. */
  const waitForOk = async (): Promise<void> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ok = ports.every((_, i) => {
        try {
          return cli(i, 'cluster', 'info').includes('cluster_state:ok')
            && cli(i, 'cluster', 'nodes').split('\n').filter((line) => line.includes('master') && !line.includes('fail') && line.includes('connected')).length === masters;
        } catch {
          return false;
        }
      });
      if (ok) return;
      if (Date.now() > deadline) throw new ServiceUnavailableError(`the Redis Cluster on ports ${ports.join(', ')} did not reach cluster_state:ok`);
      await sleep(100);
    }
  };

  const stopAll = async () => {
    await Promise.all(ports.map((_, i) => stopNode(i, { loseData: true })));
    rmSync(root, { recursive: true, force: true });
  };

  try {
    await Promise.all(ports.map((_, i) => startNode(i)));
    cli(0, '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes');
    await waitForOk();
  } catch (error) {
    await stopAll();
    throw error;
  }
  let stopped: Promise<void> | undefined;
  return {
    url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    ports,
    restartNode: async (i, how) => {
      await stopNode(i, how);
      await startNode(i);
      await waitForOk();
    },
    stopNode,
    startNode: async (i) => {
      await startNode(i);
      await waitForOk();
    },
    cli,
    stop: () => (stopped ??= stopAll()),
  };
}
