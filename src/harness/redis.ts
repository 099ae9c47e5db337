// A private redis-server from the system binary: persistent (append-only
// file) under .data/ for `npm start`, throwaway on a free port for tests.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { NothingRunningError, ServiceUnavailableError } from '../errors.ts';
import { clearOwner, liveOwner, recordOwner, takeOver } from './ownership.ts';
import type { Logger } from '../log.ts';
import { commandLineOf, findExecutable, freePort, isAlive, portIsFree, sleep, startWatchdog, stopChild, tailOf } from './processes.ts';

export interface PrivateRedisOptions {
  dir: string;
  persistent: boolean;
  log: Logger;
  /** Only use a server already running on the data directory: NothingRunningError when there is none. */
  reuseOnly?: boolean;
}

export interface RunningRedis {
  port: number;
  pid: number;
  url: string;
  readonly owned: boolean;
  stop(): Promise<void>;
}

const PREFERRED_PORT = 63790;

/** True when something on the port answers PING with PONG. */
export function redisAnswers(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

export async function startPrivateRedis(options: PrivateRedisOptions): Promise<RunningRedis> {
  const { dir, persistent, log } = options;
  const stateFile = path.join(dir, 'redis.json');
  const saved = existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, 'utf8')) as { pid: number; port: number }) : undefined;

  if (persistent && saved && isAlive(saved.pid) && commandLineOf(saved.pid).includes('redis-server') && (await redisAnswers(saved.port))) {
    const found = { port: saved.port, pid: saved.pid, url: `redis://127.0.0.1:${saved.port}` };
    const owner = liveOwner(dir);
    if (owner !== undefined) {
      log.debug({ port: saved.port, owner }, 'using the private redis-server of the Stockroom already running');
      return { ...found, owned: false, stop: async () => {} };
    }
    if (options.reuseOnly) throw new NothingRunningError('Redis', dir, saved.pid);
    log.warn({ pid: saved.pid, port: saved.port, dir },
      `found a redis-server (pid ${saved.pid}) left running on ${dir} by an earlier run: taking it over (it stops when this Stockroom stops)`);
    const stopServer = takeOver(dir, saved.pid, [{ signal: 'SIGTERM', waitMs: 10_000 }, { signal: 'SIGKILL', waitMs: 5_000 }]);
    return { ...found, owned: true, stop: async () => {
      await stopServer();
      rmSync(stateFile, { force: true });
    } };
  }
  if (options.reuseOnly) throw new NothingRunningError('Redis', dir);

  const binary = findExecutable('redis-server');
  if (!binary) {
    throw new ServiceUnavailableError(
      'redis-server is not installed: install Redis 7 (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL=redis://host:6379');
  }
  mkdirSync(dir, { recursive: true });
  const port = saved?.port && (await portIsFree(saved.port)) ? saved.port
    : persistent && (await portIsFree(PREFERRED_PORT)) ? PREFERRED_PORT
    : await freePort();
  const logFile = path.join(dir, 'redis.log');
  const logFd = openSync(logFile, 'a');
  const child = spawn(binary, [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--daemonize', 'no',
    '--save', '', '--appendonly', persistent ? 'yes' : 'no', '--protected-mode', 'yes',
  ], { detached: true, stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  const dismissWatchdog = startWatchdog(child.pid!,
    persistent ? `kill -TERM ${child.pid}` : `kill -TERM ${child.pid}; sleep 2; kill -KILL ${child.pid} 2>/dev/null; rm -rf '${dir}'`);

  const deadline = Date.now() + 20_000;
  while (!(await redisAnswers(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      dismissWatchdog();
      child.kill('SIGKILL');
      throw new ServiceUnavailableError(`redis-server did not start on port ${port}: ${tailOf(logFile) || 'no log output'} (log: ${logFile})`);
    }
    await sleep(50);
  }
  writeFileSync(stateFile, JSON.stringify({ pid: child.pid, port }));
  if (persistent) recordOwner(dir);
  log.info({ port, dir }, 'private redis-server started');

  let stopped: Promise<void> | undefined;
  return {
    port, pid: child.pid!, url: `redis://127.0.0.1:${port}`, owned: true,
    stop: () => (stopped ??= (async () => {
      await stopChild(child, [{ signal: 'SIGTERM', waitMs: 10_000 }, { signal: 'SIGKILL', waitMs: 5_000 }]);
      dismissWatchdog();
      if (persistent) {
        rmSync(stateFile, { force: true });
        clearOwner(dir);
      } else {
        rmSync(dir, { recursive: true, force: true });
      }
      log.info({ port }, 'private redis-server stopped');
    })()),
  };
}
