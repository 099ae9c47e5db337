// The one guarded rebuild every caller uses (the consumer, the resync
// listener, `stockroom cache rebuild`): it holds a token in Redis while it
// writes, so a Redis that lost its data meanwhile is reported, never taken for
// a whole cache; rebuilds running at once (an operator's beside the
// consumer's) each keep their own token.
import anyTest, { type TestFn } from 'ava';
import { cacheKeys } from '../../src/cache/keys.ts';
import { parseLsn } from '../../src/cache/lsn.ts';
import { rebuildCache, RebuildInterruptedError } from '../../src/cache/rebuild.ts';
import { CacheWriter } from '../../src/cache/writer.ts';
import { cacheMismatches, testRedis, uniqueNames } from '../helpers/cache.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import { setupCatalog } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

function writerFor(t: { teardown(fn: () => void): void }, label: string) {
  const names = uniqueNames(label);
  const redis = testRedis();
  t.teardown(() => redis.disconnect());
  return { names, redis, writer: new CacheWriter(redis, cacheKeys(names.prefix), { name: names.stream, maxLength: 10_000 }) };
}

test.serial('a rebuild makes the cache equal to PostgreSQL and leaves no token behind', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 5 }, B: { WH1: 7 }, C: { WH2: 1 } });
  const { names, redis, writer } = writerFor(t, 'rebuild_ok');
  const result = await rebuildCache({ databaseUrl: db.url, writer });
  t.like(result, { rows: 4, skus: 3, stale: 0 });
  t.deepEqual(await cacheMismatches(db, redis, names.prefix), []);
  t.is(await redis.exists(writer.keys.rebuilds), 0, 'the token is gone once the rebuild ended');
  t.is(await redis.exists(writer.keys.source), 0, 'a rebuild without a source does not claim the cache for one');
});

test.serial('a Redis that lost its data during a rebuild fails it with RebuildInterruptedError; with a source, nothing is marked complete', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH1: 7 } });
  const { redis, writer } = writerFor(t, 'rebuild_lost');
  // A loss of Redis's data, as FLUSHALL or a restart without persistence makes it: the token goes with everything else.
  const loseData = async () => {
    await redis.del(writer.keys.rebuilds);
  };
  await t.throwsAsync(rebuildCache({ databaseUrl: db.url, writer, beforeComplete: loseData }), { instanceOf: RebuildInterruptedError });
  await t.throwsAsync(rebuildCache({
    databaseUrl: db.url, writer, beforeComplete: loseData, complete: { source: 'db-1', position: () => parseLsn('0/10') },
  }), { instanceOf: RebuildInterruptedError });
  t.is(await redis.get(writer.keys.source), null, 'not marked complete');
  t.is(await redis.get(writer.keys.position), null);

  await rebuildCache({ databaseUrl: db.url, writer, complete: { source: 'db-1', position: () => parseLsn('0/20') } });
  t.is(await redis.get(writer.keys.source), 'db-1');
  t.is(await redis.get(writer.keys.position), '0/20');
});

test.serial('two rebuilds at once both complete: each keeps its own token', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH1: 7 } });
  const { names, redis, writer } = writerFor(t, 'rebuild_two');
  let release!: () => void;
  const held = new Promise<void>((resolve) => { release = resolve; });
  const first = rebuildCache({ databaseUrl: db.url, writer, beforeComplete: () => held });
  const second = rebuildCache({ databaseUrl: db.url, writer });
  await t.notThrowsAsync(second, 'the second ends while the first still runs');
  release();
  await t.notThrowsAsync(first, 'and the first is not taken for interrupted');
  t.deepEqual(await cacheMismatches(db, redis, names.prefix), []);
});
