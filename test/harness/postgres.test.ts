import { existsSync, mkdtempSync, chmodSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { startEmbeddedPostgres } from '../../src/harness/postgres.ts';
import { isAlive } from '../../src/harness/processes.ts';
import { createLogger } from '../../src/log.ts';
import { spawnFixture, waitUntilGone } from './processes.ts';
import { queryUrl } from '../helpers/database.ts';

const log = createLogger('silent');
const settings = { fsync: 'off', shared_buffers: '32MB' };

const tempDirs: string[] = [];
test.after.always(() => tempDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stockroom-harness-'));
  chmodSync(dir, 0o755);
  tempDirs.push(dir);
  return path.join(dir, 'pg');
}


test('a throwaway server runs with logical WAL and leaves nothing behind', async (t) => {
  const dir = tempDir();
  const server = await startEmbeddedPostgres({ dir, persistent: false, log, settings });
  const { rows } = await queryUrl(server.url(), `select current_setting('wal_level') as wal_level`);
  t.is(rows[0].wal_level, 'logical');
  await server.stop();
  t.false(isAlive(server.pid), 'postmaster gone');
  t.false(existsSync(dir), 'data removed');
});

test('a persistent server keeps its data, and a second start finds it running', async (t) => {
  const dir = tempDir();
  const first = await startEmbeddedPostgres({ dir, persistent: true, log, settings, database: 'stockroom' });
  await queryUrl(first.url(), 'create table kept (x int); insert into kept values (42)');
  const second = await startEmbeddedPostgres({ dir, persistent: true, log, settings, database: 'stockroom' });
  t.false(second.owned);
  t.is(second.port, first.port);
  await second.stop(); // not ours to stop
  t.true(isAlive(first.pid));
  await first.stop();
  t.false(isAlive(first.pid));

  const again = await startEmbeddedPostgres({ dir, persistent: true, log, settings, database: 'stockroom' });
  t.true(again.owned);
  t.is(again.port, first.port, 'the same port as last time, so URLs stay valid');
  const { rows } = await queryUrl(again.url(), 'select x from kept');
  t.deepEqual(rows, [{ x: 42 }]);
  await again.stop();
});

test('a stale postmaster.pid from a killed server does not block the next start', async (t) => {
  const dir = tempDir();
  const first = await startEmbeddedPostgres({ dir, persistent: true, log, settings });
  await first.stop();
  // What a kill -9 leaves: a lock file naming a process that is gone (or reused by another program).
  writeFileSync(path.join(dir, 'cluster', 'postmaster.pid'), `${process.pid}\n${dir}/cluster\n0\n${first.port}\n\n\n`);
  const second = await startEmbeddedPostgres({ dir, persistent: true, log, settings });
  t.true(second.owned);
  await second.stop();
});

test('when the process that started it is killed -9, the server is stopped and its data removed', async (t) => {
  const { child, first } = await spawnFixture<{ pid: number; dir: string }>('start-and-hang.ts', ['postgres']);
  t.true(isAlive(first.pid));
  child.kill('SIGKILL');
  t.true(await waitUntilGone(first.pid, 20_000), 'postmaster stopped by the watchdog');
  const deadline = Date.now() + 10_000;
  while (existsSync(path.join(first.dir, 'pg')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  t.false(existsSync(path.join(first.dir, 'pg')), 'throwaway data removed');
  rmSync(first.dir, { recursive: true, force: true });
});
