import { parsePartition } from '../src/partition.ts';
import test from 'ava';
import { loadConfig, parseRedisUrl } from '../src/config.ts';
import { ConfigError } from '../src/errors.ts';

test('defaults follow SPEC.md', (t) => {
  const config = loadConfig({}, '/srv/app');
  t.like(config, {
    databaseUrl: undefined, redisUrl: undefined, port: 5678, cachePrefix: 'catalog:',
    publication: 'stockroom', slot: 'stockroom_cache', stream: 'stock-events', dataDir: '/srv/app/.data', production: false,
  });
});

test('values are read and coerced', (t) => {
  const config = loadConfig({
    DATABASE_URL: 'postgresql://u:p@db:5432/stock', REDIS_URL: 'redis://cache:6379/2', PORT: '8080',
    STOCKROOM_SLOT: 'my_slot', NODE_ENV: 'production',
  }, '/srv/app');
  t.like(config, { databaseUrl: 'postgresql://u:p@db:5432/stock', redisUrl: 'redis://cache:6379/2', port: 8080, slot: 'my_slot', production: true });
});

const bad: Array<[Record<string, string>, RegExp]> = [
  [{ DATABASE_URL: 'localhost:5432' }, /^DATABASE_URL must be a URL like postgres:\/\/.* \(got "localhost:5432"\)$/],
  [{ DATABASE_URL: 'mysql://u@h/db' }, /^DATABASE_URL must be a URL like postgres:/],
  [{ REDIS_URL: 'http://cache' }, /^REDIS_URL must be a URL like redis:/],
  [{ REDIS_URL: 'redis+cluster://cache' }, /^REDIS_URL must be a URL like redis:\/\/host:6379\/0, or redis\+cluster:\/\/host1:6379,host2:6379 for a Redis Cluster/],
  [{ REDIS_URL: 'redis+cluster://a:1,b:port' }, /^REDIS_URL must be a URL like /],
  [{ REDIS_URL: 'redis+cluster://a:1', STOCKROOM_STREAM: 'events{1}' }, /^STOCKROOM_STREAM must not contain \{ or \} with a Redis Cluster/],
  [{ REDIS_URL: 'redis+cluster://a:1', STOCKROOM_CACHE_PREFIX: '{c}:' }, /^STOCKROOM_CACHE_PREFIX must not contain \{ or \} with a Redis Cluster/],
  [{ PORT: 'eighty' }, /^PORT /],
  [{ PORT: '70000' }, /^PORT /],
  [{ STOCKROOM_SLOT: 'Bad-Slot' }, /^STOCKROOM_SLOT must be a lower-case SQL identifier/],
  [{ JWT_SECRET: 'short' }, /^JWT_SECRET must be at least 32 characters$/],
  [{ NODE_ENV: 'staging' }, /^NODE_ENV /],
];
for (const [env, message] of bad) {
  test(`refuses ${JSON.stringify(env)} naming the variable`, (t) => {
    const error = t.throws(() => loadConfig(env, '/srv/app'), { instanceOf: ConfigError });
    t.regex(error!.message, message);
  });
}

test('REDIS_URL names a Redis Cluster by its seed nodes: redis+cluster://[user:password@]host:port,…', (t) => {
  t.deepEqual(parseRedisUrl('redis://cache:6379/2'), { cluster: false, url: 'redis://cache:6379/2' });
  t.deepEqual(parseRedisUrl('rediss+cluster://me:p%40ss@10.0.0.1:7000,cache-2:7001'), {
    cluster: true, tls: true, username: 'me', password: 'p@ss', nodes: [{ host: '10.0.0.1', port: 7000 }, { host: 'cache-2', port: 7001 }],
  });
  t.is(loadConfig({ REDIS_URL: 'redis+cluster://a:7000', STOCKROOM_STREAM: 'events' }, '/srv/app').redisUrl, 'redis+cluster://a:7000');
  t.is(loadConfig({ STOCKROOM_STREAM: 'events{1}' }, '/srv/app').stream, 'events{1}', 'braces are fine on one Redis');
  const error = t.throws(() => loadConfig({ REDIS_URL: 'redis+cluster://me:secret@a:1,b:x' }, '/srv/app'));
  t.false(error!.message.includes('secret'));
});

test('a password in a bad URL is not echoed', (t) => {
  const error = t.throws(() => loadConfig({ DATABASE_URL: 'mysql://me:secret@h/db' }, '/srv/app'));
  t.false(error!.message.includes('secret'));
});

test('empty variables count as unset', (t) => {
  t.is(loadConfig({ DATABASE_URL: '', PORT: '' }, '/srv/app').port, 5678);
});

test('STOCKROOM_PARTITION is i/N with 1 ≤ i ≤ N ≤ 64; --partition takes the same form', (t) => {
  t.deepEqual(loadConfig({ STOCKROOM_PARTITION: '2/3' }, '/srv/app').partition, { index: 2, count: 3 });
  t.is(loadConfig({}, '/srv/app').partition, undefined);
  for (const bad of ['3/2', '0/2', '1/0', '1/65', 'half', '1/2/3']) {
    const error = t.throws(() => loadConfig({ STOCKROOM_PARTITION: bad }, '/srv/app'), { instanceOf: ConfigError });
    t.is(error?.message, `STOCKROOM_PARTITION must be i/N with 1 ≤ i ≤ N ≤ 64, like 1/2 (got ${JSON.stringify(bad)})`);
  }
  t.throws(() => parsePartition('9/4', '--partition'), { message: /^--partition must be i\/N/ });
});
