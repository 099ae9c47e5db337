import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { isAlive } from '../../src/harness/processes.ts';
import { redisAnswers, startPrivateRedis } from '../../src/harness/redis.ts';
import { createLogger } from '../../src/log.ts';
import { fixture, spawnFixture, waitUntilGone } from './processes.ts';

const log = createLogger('silent');

const tempDirs: string[] = [];
test.after.always(() => tempDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));
function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stockroom-harness-'));
  tempDirs.push(dir);
  return path.join(dir, 'redis');
}

test('a throwaway redis-server answers, then stops and leaves nothing behind', async (t) => {
  const dir = tempDir();
  const redis = await startPrivateRedis({ dir, persistent: false, log });
  t.true(await redisAnswers(redis.port));
  await redis.stop();
  t.false(isAlive(redis.pid));
  t.false(existsSync(dir));
});

test('a persistent redis-server is found again while it runs', async (t) => {
  const dir = tempDir();
  const first = await startPrivateRedis({ dir, persistent: true, log });
  const second = await startPrivateRedis({ dir, persistent: true, log });
  t.false(second.owned);
  t.is(second.url, first.url);
  await first.stop();
  t.false(isAlive(first.pid));
});

test('when the process that started it is killed -9, redis-server is stopped', async (t) => {
  const { child, first } = await spawnFixture<{ pid: number; dir: string }>('start-and-hang.ts', ['redis']);
  child.kill('SIGKILL');
  t.true(await waitUntilGone(first.pid, 10_000));
  tempDirs.push(first.dir);
});

test('without redis-server the error says what to install or set', (t) => {
  const result = spawnSync(process.execPath, [fixture('start-and-hang.ts'), 'redis'], { env: { PATH: '/nonexistent' }, encoding: 'utf8' });
  t.not(result.status, 0);
  t.regex(result.stderr, /redis-server is not installed: install Redis 7 .* or set REDIS_URL=redis:\/\/host:6379/);
});
