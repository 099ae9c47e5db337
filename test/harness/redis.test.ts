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

test('a throwaway redis-server answers, then stops and leaves nothing behind', async (t) => {
  const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'stockroom-harness-')), 'redis');
  const redis = await startPrivateRedis({ dir, persistent: false, log });
  t.true(await redisAnswers(redis.port));
  await redis.stop();
  t.false(isAlive(redis.pid));
  t.false(existsSync(dir));
});

test('a persistent redis-server is found again while it runs', async (t) => {
  const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'stockroom-harness-')), 'redis');
  const first = await startPrivateRedis({ dir, persistent: true, log });
  const second = await startPrivateRedis({ dir, persistent: true, log });
  t.false(second.owned);
  t.is(second.url, first.url);
  await first.stop();
  t.false(isAlive(first.pid));
  rmSync(dir, { recursive: true, force: true });
});

test('when the process that started it is killed -9, redis-server is stopped', async (t) => {
  const { child, first } = await spawnFixture<{ pid: number; dir: string }>('start-and-hang.ts', ['redis']);
  child.kill('SIGKILL');
  t.true(await waitUntilGone(first.pid, 10_000));
});

test('without redis-server the error says what to install or set', (t) => {
  const result = spawnSync(process.execPath, [fixture('start-and-hang.ts'), 'redis'], { env: { PATH: '/nonexistent' }, encoding: 'utf8' });
  t.not(result.status, 0);
  t.regex(result.stderr, /redis-server is not installed: install Redis 7 .* or set REDIS_URL=redis:\/\/host:6379/);
});
