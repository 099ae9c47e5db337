// Stopping is clean whoever sends the signal, tried as a process manager
// does it, with the embedded servers (no DATABASE_URL / REDIS_URL): SIGTERM to
// the `npm start` process, SIGTERM to `npx stockroom start`, kill -9 of the
// Stockroom process itself, and servers left behind by an earlier run. After
// each, within 10 s, nothing of the project runs on its data directory, and the
// next start comes up on the same data with nothing lost.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { isAlive } from '../../src/harness/processes.ts';
import { waitFor } from '../helpers/cache.ts';
import { CLI } from './run-cli.ts';
import { queryUrl } from '../helpers/database.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NODE_BIN = path.join(ROOT, 'node_modules', '.bin');

interface Started { child: ChildProcess; stdout: () => string; stderr: () => string; databaseUrl: string; exited: Promise<number | null> }

/** The environment of a user in the project: the data directory given, any free HTTP port. */
function userEnv(dataDir: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, STOCKROOM_DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'warn' };
}

async function start(t: ExecutionContext, command: string, args: string[], dataDir: string): Promise<Started> {
  const child = spawn(command, args, { cwd: ROOT, env: userEnv(dataDir), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const up = await waitFor(() => out.includes('Press Ctrl-C to stop.') || child.exitCode !== null, 90_000, 50);
  if (!up || child.exitCode !== null) throw new Error(`${command} ${args.join(' ')} did not come up:\n${out}\n${err}`);
  const databaseUrl = /PostgreSQL {2}(postgres:\/\/\S+)/.exec(out)![1]!;
  return { child, stdout: () => out, stderr: () => err, databaseUrl, exited };
}

/** The embedded servers' pids, from their files in the data directory (redis-server renames its process title). */
function serverPids(dataDir: string): number[] {
  const pids: number[] = [];
  try {
    pids.push(Number(readFileSync(path.join(dataDir, 'postgres', 'cluster', 'postmaster.pid'), 'utf8').split('\n')[0]));
  } catch { /* not running */ }
  try {
    pids.push((JSON.parse(readFileSync(path.join(dataDir, 'redis', 'redis.json'), 'utf8')) as { pid: number }).pid);
  } catch { /* not running */ }
  return pids.filter((pid) => pid > 0);
}

/** Processes whose command line names the data directory (PostgreSQL does). */
function projectProcesses(dataDir: string): string[] {
  const lines = execFileSync('ps', ['-eww', '-o', 'pid=,args='], { encoding: 'utf8' }).split('\n');
  return lines.filter((line) => line.includes(dataDir) && !line.includes('ps -e')).map((line) => line.trim());
}

/** What of the project is still alive: processes naming the data directory, and the given pids. */
function leftovers(dataDir: string, pids: number[]): string[] {
  return [...projectProcesses(dataDir), ...pids.filter((pid) => isAlive(pid)).map((pid) => `pid ${pid}`)];
}

async function nothingLeft(t: ExecutionContext, dataDir: string, pids: number[], what: string): Promise<void> {
  const gone = await waitFor(() => leftovers(dataDir, pids).length === 0, 10_000, 100);
  t.true(gone, `${what}: still running after 10 s:\n${leftovers(dataDir, pids).join('\n')}`);
}


/**
 * The pid of the Stockroom process itself (`node bin/stockroom.js start`) under a launcher, on this data
 * directory (other tests may run a Stockroom of their own meanwhile): read from each candidate's environment.
 */
function stockroomPid(dataDir: string): number[] {
  const lines = execFileSync('ps', ['-eww', '-o', 'pid=,args='], { encoding: 'utf8' }).split('\n');
  return lines.filter((l) => /node\S* \S*bin\/stockroom\.js start/.test(l)).map((l) => Number(l.trim().split(/\s+/)[0])).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`STOCKROOM_DATA_DIR=${dataDir}`);
    } catch {
      return false; // gone, or not ours to read
    }
  });
}

function tempDataDir(t: ExecutionContext, label: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `stockroom-stop-${label}-`));
  chmodSync(dir, 0o755); // PostgreSQL runs as its own user when we are root
  const dataDir = path.join(dir, 'data');
  t.teardown(() => {
    // A failed test may leave servers behind: none outlives it.
    for (const pid of serverPids(dataDir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch { /* gone */ }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return dataDir;
}

test.serial('SIGTERM to the npm start process stops every role and the embedded servers within 10 s; the next start has the data', async (t) => {
  t.timeout(180_000);
  const dataDir = tempDataDir(t, 'npm');
  const first = await start(t, 'npm', ['start', '--silent'], dataDir);
  await queryUrl(first.databaseUrl, `select inventory.upsert_product('KEEP-1', 'kept across restarts')`);
  const pids = [first.child.pid!, ...stockroomPid(dataDir), ...serverPids(dataDir)];
  t.is(serverPids(dataDir).filter((pid) => isAlive(pid)).length, 2, 'PostgreSQL and Redis run on the data directory');
  first.child.kill('SIGTERM');
  t.is(await first.exited, 0, first.stderr());
  await nothingLeft(t, dataDir, pids, 'npm start after SIGTERM');

  const second = await start(t, 'npm', ['start', '--silent'], dataDir);
  const { rows } = await queryUrl(second.databaseUrl, `select name from inventory.products where sku = 'KEEP-1'`);
  t.deepEqual(rows, [{ name: 'kept across restarts' }], 'nothing lost');
  t.notRegex(second.stderr(), /taking it over/, 'nothing was left to take over');
  second.child.kill('SIGTERM');
  const secondPids = [second.child.pid!, ...serverPids(dataDir)];
  t.is(await second.exited, 0);
  await nothingLeft(t, dataDir, secondPids, 'the second npm start');
});

test.serial('SIGTERM to npx stockroom start stops everything within 10 s', async (t) => {
  t.timeout(120_000);
  const dataDir = tempDataDir(t, 'npx');
  const started = await start(t, 'npx', ['stockroom', 'start'], dataDir);
  const pids = [started.child.pid!, ...stockroomPid(dataDir), ...serverPids(dataDir)];
  started.child.kill('SIGTERM');
  t.is(await started.exited, 0, started.stderr());
  await nothingLeft(t, dataDir, pids, 'npx stockroom start after SIGTERM');
});

test.serial('kill -9 of the Stockroom process: its watchdogs stop the embedded servers; servers an earlier run left are taken over, said in one line, and stopped', async (t) => {
  t.timeout(180_000);
  const dataDir = tempDataDir(t, 'kill9');
  const first = await start(t, path.join(NODE_BIN, 'node'), [CLI, 'start'], dataDir);
  await queryUrl(first.databaseUrl, `select inventory.upsert_product('KEEP-2', 'kept')`);
  const firstServers = serverPids(dataDir);
  first.child.kill('SIGKILL');
  await first.exited;
  await nothingLeft(t, dataDir, [first.child.pid!, ...firstServers], 'the servers after kill -9 of Stockroom');

  // Servers whose owner died with its watchdogs (an older Stockroom had none): orphans.
  const second = await start(t, path.join(NODE_BIN, 'node'), [CLI, 'start'], dataDir);
  const watchdogs = execFileSync('ps', ['-eww', '-o', 'pid=,args='], { encoding: 'utf8' }).split('\n')
    .filter((l) => l.includes(`kill -0 ${second.child.pid} `)).map((l) => Number(l.trim().split(/\s+/)[0]));
  t.true(watchdogs.length >= 2, 'a watchdog per server');
  for (const pid of watchdogs) process.kill(pid, 'SIGKILL');
  second.child.kill('SIGKILL');
  await second.exited;
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const orphans = serverPids(dataDir);
  t.is(orphans.filter((pid) => isAlive(pid)).length, 2, 'the orphans run');

  const third = await start(t, path.join(NODE_BIN, 'node'), [CLI, 'start'], dataDir);
  const said = third.stderr().split('\n').filter((line) => /taking it over/.test(line));
  t.is(said.length, 2, `one line per server taken over:\n${third.stderr()}`);
  t.regex(said.join('\n'), /found an embedded PostgreSQL \(pid \d+\) left running on .* by an earlier run: taking it over/);
  const { rows } = await queryUrl(third.databaseUrl, `select count(*)::int as n from inventory.products where sku = 'KEEP-2'`);
  t.deepEqual(rows, [{ n: 1 }]);
  third.child.kill('SIGTERM');
  t.is(await third.exited, 0, third.stderr());
  await nothingLeft(t, dataDir, [third.child.pid!, ...orphans], 'the servers taken over, after SIGTERM');
});
