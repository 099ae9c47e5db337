// CacheWriter and its Lua apply script, straight against Redis (no
// PostgreSQL): the version guard, the per-sku totals and status of SPEC.md,
// invalidation of the product key, the events stream with replay detection,
// the position and source markers, and clear().
import test, { type ExecutionContext } from 'ava';
import type { Redis } from 'ioredis';
import { cacheKeys } from '../../src/cache/keys.ts';
import { CacheWriter, type StreamEvent } from '../../src/cache/writer.ts';
import { decodeRow, encodeRow, stockStatus, type RowState } from '../../src/cache/row.ts';
import { parseLsn } from '../../src/cache/lsn.ts';
import { readStream, testRedis, uniqueNames } from '../helpers/cache.ts';

interface Fixture {
  redis: Redis;
  writer: CacheWriter;
  names: ReturnType<typeof uniqueNames>;
  /** GET of a key under the prefix. */
  get(key: string): Promise<string | null>;
  /** The plain keys of a sku, as SPEC.md names them. */
  skuKeys(sku: string): Promise<{ total: string | null; available: string | null; status: string | null; lowStock: string | null }>;
}

function fixture(t: ExecutionContext, label: string, prefix?: string): Fixture {
  const redis = testRedis();
  const names = uniqueNames(label);
  if (prefix !== undefined) {
    names.prefix = prefix;
    names.stream = `${prefix}events`;
  }
  const writer = new CacheWriter(redis, cacheKeys(names.prefix), { name: names.stream, maxLength: 1_000_000 });
  t.teardown(async () => {
    const doomed = await redis.keys(`${names.prefix.replace(/[*?[\]\\]/g, '\\$&')}*`);
    if (doomed.length) await redis.del(...doomed);
    redis.disconnect();
  });
  return {
    redis, writer, names,
    get: (key) => redis.get(`${names.prefix}${key}`),
    skuKeys: async (sku) => {
      const k = writer.keys;
      const [total, available, status, lowStock] = await redis.mget(k.total(sku), k.available(sku), k.status(sku), k.lowStock(sku));
      return { total: total ?? null, available: available ?? null, status: status ?? null, lowStock: lowStock ?? null };
    },
  };
}

function row(sku: string, warehouse: string, version: number | string, onHand: number, reserved: number, available: number, lowStockThreshold = 0): RowState {
  return { sku, warehouse, version: String(version), onHand, reserved, available, lowStockThreshold, room: 0, preorderUntil: 0, unavailable: 0 };
}

function event(streamId: string, movementId: number, type = 'warehouse.stock.updated'): StreamEvent {
  const id = `${movementId}:${type.split('.').pop()}`;
  return { streamId, type, id, subject: 'A/WH1', body: JSON.stringify({ specversion: '1.0', id, type, data: { movement_id: movementId } }) };
}

/** Everything under the prefix except the stream, as key → value (hashes as objects). */
async function dump(f: Fixture): Promise<Record<string, unknown>> {
  const keys = (await f.redis.keys(`${f.names.prefix}*`)).filter((k) => k !== f.names.stream).sort();
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const type = await f.redis.type(key);
    out[key] = type === 'hash' ? await f.redis.hgetall(key) : await f.redis.get(key);
  }
  return out;
}

test('the same batch applied twice leaves the same state; equal versions rewrite (applied again, not stale)', async (t) => {
  const f = fixture(t, 'cw_twice');
  const batch = [row('A', 'WH1', 3, 10, 2, 8, 1), row('A', 'WH2', 5, 4, 0, 4, 1), row('B', 'WH1', 1, 0, 0, 0, 0)];
  const first = await f.writer.apply(batch, []);
  t.like(first, { applied: 3, stale: 0, appended: 0, duplicates: 0 });
  const after = await dump(f);
  const second = await f.writer.apply(batch, []);
  t.like(second, { applied: 3, stale: 0 }, 'an equal version is rewritten (that is what repairs a hand-edited key)');
  t.deepEqual(await dump(f), after);
  t.is(await f.get('stock:A:warehouse:WH1'), '8');
  t.is(await f.get('stock:A:warehouse:WH2'), '4');
  t.is(await f.get('stock:B:warehouse:WH1'), '0');
  t.deepEqual(await f.skuKeys('A'), { total: '14', available: '12', status: 'in_stock', lowStock: '0' });
  t.deepEqual(await f.skuKeys('B'), { total: '0', available: '0', status: 'out_of_stock', lowStock: '0' });
});

test('an equal version repairs keys edited by hand', async (t) => {
  const f = fixture(t, 'cw_repair');
  const batch = [row('A', 'WH1', 3, 10, 2, 8)];
  await f.writer.apply(batch, []);
  await f.redis.set(f.writer.keys.warehouse('A', 'WH1'), '999');
  await f.redis.set(f.writer.keys.total('A'), '999');
  await f.redis.set(f.writer.keys.status('A'), 'out_of_stock');
  t.like(await f.writer.apply(batch, []), { applied: 1, stale: 0 });
  t.is(await f.get('stock:A:warehouse:WH1'), '8');
  t.deepEqual(await f.skuKeys('A'), { total: '10', available: '8', status: 'in_stock', lowStock: '0' });
});

test('an older version is refused and counted stale; the newer state stays', async (t) => {
  const f = fixture(t, 'cw_stale');
  t.like(await f.writer.apply([row('A', 'WH1', 7, 10, 0, 10)], []), { applied: 1, stale: 0 });
  const result = await f.writer.apply([row('A', 'WH1', 6, 3, 0, 3), row('A', 'WH2', 1, 5, 0, 5)], []);
  t.like(result, { applied: 1, stale: 1 });
  t.deepEqual(result.appliedRows.map((r) => r.warehouse), ['WH2'], 'only the row written is reported (and announced)');
  t.is(await f.get('stock:A:warehouse:WH1'), '10');
  t.is(await f.redis.hget(f.writer.keys.rows('A'), 'WH1'), '7:10:0:10:0:0:0:0');
  t.deepEqual(await f.skuKeys('A'), { total: '15', available: '15', status: 'in_stock', lowStock: '0' }, 'totals use the kept newer row');
  // Version 10 against a stored 9: numbers, not text ("10" < "9" as text).
  await f.writer.apply([row('A', 'WH3', 9, 1, 0, 1)], []);
  t.like(await f.writer.apply([row('A', 'WH3', 10, 2, 0, 2)], []), { applied: 1, stale: 0 });
  t.like(await f.writer.apply([row('A', 'WH3', 9, 1, 0, 1)], []), { applied: 0, stale: 1 });
  t.is(await f.get('stock:A:warehouse:WH3'), '2');
});

test('batches applied out of order end at the newest version', async (t) => {
  const f = fixture(t, 'cw_order');
  // Twelve successive states of two rows of A and one of B; batch i holds version i + 1 of each.
  const batches = Array.from({ length: 12 }, (_, i) => [
    row('A', 'WH1', i + 1, 100 - i, i, 100 - 2 * i, 50),
    row('A', 'WH2', i + 1, 10 + i, 0, 10 + i, 0),
    row('B', 'WH1', i + 1, i, 0, i, 5),
  ]);
  // A fixed shuffle (deterministic): versions 4, 1, 12, 6, 2, 10, 3, 11, 5, 9, 7, 8.
  const order = [3, 0, 11, 5, 1, 9, 2, 10, 4, 8, 6, 7];
  let applied = 0;
  let stale = 0;
  for (const i of order) {
    const result = await f.writer.apply(batches[i]!, []);
    applied += result.applied;
    stale += result.stale;
  }
  t.is(applied, 6, 'only versions 4 and then 12 were newer than what Redis held (2 batches × 3 rows)');
  t.is(stale, 30);
  t.is(await f.redis.hget(f.writer.keys.rows('A'), 'WH1'), '12:89:11:78:50:0:0:0');
  t.is(await f.redis.hget(f.writer.keys.rows('A'), 'WH2'), '12:21:0:21:0:0:0:0');
  t.is(await f.get('stock:A:warehouse:WH1'), '78');
  t.is(await f.get('stock:A:warehouse:WH2'), '21');
  t.deepEqual(await f.skuKeys('A'), { total: '110', available: '99', status: 'in_stock', lowStock: '0' });
  t.deepEqual(await f.skuKeys('B'), { total: '11', available: '11', status: 'in_stock', lowStock: '0' });

  // And the reverse order of the same batches on a fresh prefix ends the same way.
  const g = fixture(t, 'cw_order_rev');
  for (const batch of [...batches].reverse()) await g.writer.apply(batch, []);
  t.deepEqual(await g.skuKeys('A'), await f.skuKeys('A'));
  t.is(await g.get('stock:A:warehouse:WH1'), '78');
});

test('per-sku total, available, status and low_stock follow SPEC.md, summed over warehouses', async (t) => {
  const f = fixture(t, 'cw_status');
  // out_of_stock: Σ available 0 (on_hand may be > 0: all reserved or safety stock).
  await f.writer.apply([row('OUT', 'WH1', 1, 5, 5, 0, 3), row('OUT', 'WH2', 1, 2, 0, 0, 0)], []);
  t.deepEqual(await f.skuKeys('OUT'), { total: '7', available: '0', status: 'out_of_stock', lowStock: '0' });
  // low_stock: 0 < Σ available (3 + 2 = 5) ≤ Σ thresholds (1 + 4 = 5), though each row alone compares otherwise.
  await f.writer.apply([row('LOW', 'WH1', 1, 3, 0, 3, 1), row('LOW', 'WH2', 1, 2, 0, 2, 4)], []);
  t.deepEqual(await f.skuKeys('LOW'), { total: '5', available: '5', status: 'low_stock', lowStock: '1' });
  t.is(await f.get('stock:LOW:warehouse:WH1'), '3');
  t.is(await f.get('stock:LOW:warehouse:WH2'), '2');
  // One unit above Σ thresholds: in_stock.
  await f.writer.apply([row('LOW', 'WH2', 2, 3, 0, 3, 4)], []);
  t.deepEqual(await f.skuKeys('LOW'), { total: '6', available: '6', status: 'in_stock', lowStock: '0' });
  // Back down to exactly Σ thresholds through another warehouse.
  await f.writer.apply([row('LOW', 'WH1', 2, 3, 1, 2, 1)], []);
  t.deepEqual(await f.skuKeys('LOW'), { total: '6', available: '5', status: 'low_stock', lowStock: '1' });
  // Thresholds 0: any available is in_stock.
  await f.writer.apply([row('ONE', 'WH1', 1, 1, 0, 1, 0)], []);
  t.deepEqual(await f.skuKeys('ONE'), { total: '1', available: '1', status: 'in_stock', lowStock: '0' });
  // A row added later joins the sums.
  await f.writer.apply([row('ONE', 'WH9', 1, 10, 4, 6, 10)], []);
  t.deepEqual(await f.skuKeys('ONE'), { total: '11', available: '7', status: 'low_stock', lowStock: '1' });
  // Another sku's rows never mix in.
  t.deepEqual(await f.skuKeys('OUT'), { total: '7', available: '0', status: 'out_of_stock', lowStock: '0' });
});

test('the stream\'s batches move a sku\'s sums by their changes (shiftSums) to the same keys a recompute from the rows gives', async (t) => {
  const shifted = fixture(t, 'cw_shift');
  const recomputed = fixture(t, 'cw_recompute');
  const batches: RowState[][] = [
    [row('S', 'WH1', 1, 10, 0, 10, 2), row('S', 'WH2', 1, 5, 1, 4, 1), row('T', 'WH1', 1, 3, 0, 3, 0)],
    [row('S', 'WH1', 2, 10, 8, 2, 2)], // a change of one row of several
    [row('S', 'WH1', 3, 10, 9, 1, 2), row('S', 'WH1', 4, 10, 10, 0, 2), row('S', 'WH3', 1, 7, 0, 7, 5)], // two changes of a row, and a new row, in one batch
    [row('S', 'WH2', 1, 5, 1, 4, 1)], // a replay: an equal version moves nothing
    [row('S', 'WH2', 0, 99, 0, 99, 0)], // stale: refused, moves nothing
    [row('T', 'WH1', 2, 0, 0, 0, 0), row('S', 'WH2', 2, 5, 5, 0, 1)],
  ];
  for (const batch of batches) {
    await shifted.writer.apply(batch, [], undefined, undefined, { shiftSums: true });
    await recomputed.writer.apply(batch, []);
    for (const sku of ['S', 'T']) {
      t.deepEqual(await shifted.skuKeys(sku), await recomputed.skuKeys(sku), `sku ${sku} after ${JSON.stringify(batch.map((r) => r.version))}`);
      t.is(await shifted.redis.get(shifted.writer.keys.sums(sku)), await recomputed.redis.get(recomputed.writer.keys.sums(sku)));
    }
  }
  t.deepEqual(await shifted.skuKeys('S'), { total: '22', available: '7', status: 'low_stock', lowStock: '1' });
  t.is(await shifted.get('stock:S:sums'), '22:7:8:0:0:0:0');

  // No sums key (a cache written before it existed, or deleted): recomputed from the rows, then shifted again.
  await shifted.redis.del(shifted.writer.keys.sums('S'));
  await shifted.writer.apply([row('S', 'WH3', 2, 8, 0, 8, 5)], [], undefined, undefined, { shiftSums: true });
  t.is(await shifted.get('stock:S:sums'), '23:8:8:0:0:0:0');
  t.deepEqual(await shifted.skuKeys('S'), { total: '23', available: '8', status: 'low_stock', lowStock: '1' });
  // An entry edited by hand into something that is not an entry: the sku is recomputed, not shifted from it.
  await shifted.redis.hset(shifted.writer.keys.rows('S'), 'WH1', 'garbage');
  await shifted.writer.apply([row('S', 'WH1', 9, 4, 0, 4, 2)], [], undefined, undefined, { shiftSums: true });
  t.is(await shifted.get('stock:S:sums'), '17:12:8:0:0:0:0');
});

test('the product key of a sku is deleted on every applied change, and only that sku\'s', async (t) => {
  const f = fixture(t, 'cw_product');
  const k = f.writer.keys;
  await f.redis.mset(k.product('A'), '{"doc":1}', k.product('B'), '{"doc":2}');
  await f.writer.apply([row('A', 'WH1', 1, 1, 0, 1)], []);
  t.is(await f.redis.exists(k.product('A')), 0);
  t.is(await f.redis.get(k.product('B')), '{"doc":2}', 'an untouched sku keeps its product document');
  await f.redis.set(k.product('A'), '{"doc":3}');
  await f.writer.apply([row('A', 'WH2', 1, 1, 0, 1)], []);
  t.is(await f.redis.exists(k.product('A')), 0, 'a change to another warehouse of the sku invalidates too');
  await f.redis.set(k.product('A'), '{"doc":4}');
  await f.writer.apply([row('A', 'WH2', 2, 0, 0, 0)], []);
  t.is(await f.redis.exists(k.product('A')), 0);
});

test('events are appended with the given stream ids; an id at or below the top is a duplicate', async (t) => {
  const f = fixture(t, 'cw_events');
  const first = await f.writer.apply([], [event('100-0', 1), event('100-1', 1, 'warehouse.stock.adjusted'), event('205-0', 2)]);
  t.like(first, { applied: 0, appended: 3, duplicates: 0 });
  let entries = await readStream(f.redis, f.names.stream);
  t.deepEqual(entries.map((e) => [e.streamId, e.type, e.id, e.subject]), [
    ['100-0', 'warehouse.stock.updated', '1:updated', 'A/WH1'],
    ['100-1', 'warehouse.stock.adjusted', '1:adjusted', 'A/WH1'],
    ['205-0', 'warehouse.stock.updated', '2:updated', 'A/WH1'],
  ]);
  t.deepEqual(entries[1]!.event, JSON.parse(event('100-1', 1, 'warehouse.stock.adjusted').body));

  // A replay: the same batch again appends nothing.
  t.like(await f.writer.apply([], [event('100-0', 1), event('100-1', 1), event('205-0', 2)]), { appended: 0, duplicates: 3 });
  // Mixed: below the top, equal to the top, then above it.
  const mixed = await f.writer.apply([], [event('150-7', 9), event('205-0', 2), event('205-1', 3), event('300-0', 4)]);
  t.like(mixed, { appended: 2, duplicates: 2 });
  entries = await readStream(f.redis, f.names.stream);
  t.deepEqual(entries.map((e) => e.streamId), ['100-0', '100-1', '205-0', '205-1', '300-0']);
  t.deepEqual(entries.map((e) => e.id), ['1:updated', '1:adjusted', '2:updated', '3:updated', '4:updated']);

  // Stream ids made from LSNs above 2^53 still compare as 64-bit integers.
  const big = (parseLsn('FFFFFFF/FFFFFF00') + 5n).toString();
  t.like(await f.writer.apply([], [event(`${big}-0`, 10)]), { appended: 1, duplicates: 0 });
  t.like(await f.writer.apply([], [event(`${big}-0`, 10)]), { appended: 0, duplicates: 1 });
});

test('rows and events of one batch land together', async (t) => {
  const f = fixture(t, 'cw_together');
  const written = row('A', 'WH1', 2, 9, 1, 8);
  const result = await f.writer.apply([written], [event('10-0', 5), event('10-1', 5, 'warehouse.stock.reserved')], parseLsn('0/10'));
  t.deepEqual(result, { applied: 1, stale: 0, appended: 2, duplicates: 0, lost: true, skipped: false, appliedRows: [written], kitsRefused: [] });
  t.is(await f.get('stock:A:warehouse:WH1'), '8');
  t.is(await f.redis.xlen(f.names.stream), 2);
  t.is(await f.get('meta:position'), '0/10');
});

test('the position is set only when a position is given', async (t) => {
  const f = fixture(t, 'cw_position');
  await f.writer.apply([row('A', 'WH1', 1, 1, 0, 1)], []);
  t.is(await f.redis.exists(f.writer.keys.position), 0, 'no position given: no position key');
  t.is(await f.writer.readPosition(), undefined);
  const lsn = parseLsn('16/B374D848');
  await f.writer.apply([row('A', 'WH1', 2, 2, 0, 2)], [], lsn);
  t.is(await f.get('meta:position'), '16/B374D848');
  t.is(await f.writer.readPosition(), lsn);
  await f.writer.apply([row('A', 'WH1', 3, 3, 0, 3)], []);
  t.is(await f.writer.readPosition(), lsn, 'a batch without a position leaves it as it is');
  // Recorded even when everything in the batch is stale or empty (the stream moved on).
  await f.writer.apply([row('A', 'WH1', 1, 1, 0, 1)], [], parseLsn('16/B374D900'));
  t.is(await f.get('meta:position'), '16/B374D900');
  await f.writer.setPosition(parseLsn('17/0'));
  t.is(await f.writer.readPosition(), parseLsn('17/0'));
});

test('lost is true while the source marker is missing and false after markSource()', async (t) => {
  const f = fixture(t, 'cw_lost');
  t.false(await f.writer.hasSource());
  t.true((await f.writer.apply([row('A', 'WH1', 1, 1, 0, 1)], [])).lost);
  t.true((await f.writer.apply([], [])).lost, 'even an empty batch reports it');
  await f.writer.markSource('42/db/slot', parseLsn('1/2'));
  t.true(await f.writer.hasSource());
  t.is(await f.writer.readSource(), '42/db/slot');
  t.is(await f.writer.readPosition(), parseLsn('1/2'), 'markSource records the position with the marker');
  t.false((await f.writer.apply([row('A', 'WH1', 2, 1, 0, 1)], [])).lost);
  await f.redis.del(f.writer.keys.source);
  t.true((await f.writer.apply([row('A', 'WH1', 3, 1, 0, 1)], [])).lost, 'a marker deleted later (FLUSHALL) is seen again');
});

test('clear() deletes every key under the prefix but not the events stream, nor other prefixes', async (t) => {
  const f = fixture(t, 'cw_clear');
  const other = fixture(t, 'cw_clear_other');
  await f.writer.apply([row('A', 'WH1', 1, 5, 0, 5), row('B', 'WH2', 1, 5, 0, 5)], [event('1-0', 1)], parseLsn('0/1'));
  await f.writer.markSource('x/y/z', parseLsn('0/1'));
  await f.redis.set(f.writer.keys.product('A'), 'doc');
  await other.writer.apply([row('A', 'WH1', 1, 5, 0, 5)], [event('1-0', 1)], parseLsn('0/1'));
  const before = (await f.redis.keys(`${f.names.prefix}*`)).length;
  t.true(before > 10);
  const deleted = await f.writer.clear();
  t.is(deleted, before - 1, 'every key under the prefix but the stream');
  t.deepEqual(await f.redis.keys(`${f.names.prefix}*`), [f.names.stream]);
  t.is(await f.redis.xlen(f.names.stream), 1);
  t.is(await other.get('stock:A:warehouse:WH1'), '5', 'another prefix is untouched');
  t.is(await other.get('meta:position'), '0/1');
  t.is(await f.writer.clear(), 0, 'clearing an empty cache deletes nothing');
});

test('clear() takes the prefix literally (glob characters in it match only themselves)', async (t) => {
  const id = uniqueNames('glob').prefix.slice(2, -1);
  const f = fixture(t, 'cw_glob', `t:${id}*[a]?:`);
  const neighbour = fixture(t, 'cw_glob_n', `t:${id}x[a]y:`);
  const lookalike = fixture(t, 'cw_glob_l', `t:${id}zab:`);
  for (const x of [f, neighbour, lookalike]) await x.writer.apply([row('A', 'WH1', 1, 5, 0, 5)], [], parseLsn('0/1'));
  t.true((await f.writer.clear()) > 0);
  t.is(await f.get('stock:A:warehouse:WH1'), null);
  t.is(await neighbour.get('stock:A:warehouse:WH1'), '5');
  t.is(await lookalike.get('stock:A:warehouse:WH1'), '5');
});

test('the status the apply script writes is stockStatus of row.ts, at every boundary, and entries round-trip through encodeRow', async (t) => {
  const f = fixture(t, 'cw_status_rule');
  const until = Date.UTC(2030, 0, 2, 3, 4, 5) / 1000;
  const cases: Array<[available: number, threshold: number, room: number, preorderUntil: number]> = [
    [0, 0, 0, 0], [0, 5, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [4, 5, 0, 0], [5, 5, 0, 0], [6, 5, 0, 0], [100, 99, 0, 0],
    [0, 0, 1, 0], [0, 5, 3, 0], [1, 0, 3, 0], [0, 0, 1, until], [0, 0, 0, until], [2, 5, 4, until]];
  const rows = cases.map(([available, threshold, room, preorderUntil], i) => ({ ...row(`S${i}`, 'WH1', 1, available + 3, 3, available, threshold), room, preorderUntil }));
  await f.writer.apply(rows, []);
  for (const [i, [available, threshold, room, preorderUntil]] of cases.entries()) {
    const keys = await f.skuKeys(`S${i}`);
    const status = preorderUntil > 0 ? stockStatus(available, threshold, 0, room) : stockStatus(available, threshold, room, 0);
    t.is(keys.status, status, `available ${available}, threshold ${threshold}, room ${room}, preorder ${preorderUntil}`);
    t.is(keys.lowStock, status === 'low_stock' ? '1' : '0');
    t.is(await f.get(`stock:S${i}:preorder_until`), room > 0 && preorderUntil > 0 ? '2030-01-02T03:04:05Z' : null);
    t.is(await f.redis.hget(f.writer.keys.rows(`S${i}`), 'WH1'), encodeRow(rows[i]!));
  }
  t.deepEqual(decodeRow(encodeRow(rows[3]!)), { version: '1', onHand: 4, reserved: 3, available: 1, lowStockThreshold: 1, room: 0, preorderUntil: 0, unavailable: 0 });
  t.deepEqual(decodeRow('1:4:3:1:1'), { version: '1', onHand: 4, reserved: 3, available: 1, lowStockThreshold: 1, room: 0, preorderUntil: 0, unavailable: 0 }, 'an entry written before backorders');
  t.is(decodeRow('1:2:3'), undefined, 'a hand-edited entry is no entry');
  t.is(decodeRow('1:4:3:1:1:2'), undefined, 'nor is one of six fields');
  t.is(decodeRow('1:4:3:1:1:0:0'), undefined, 'nor one of seven');
});

test('a batch sent behind another applies only if that one was applied whole (the chain): otherwise nothing, and it says so', async (t) => {
  const f = fixture(t, 'cw_chain');
  const first = await f.writer.apply([row('A', 'WH1', 1, 5, 0, 5)], [event('100-0', 1)], parseLsn('0/100'), { after: '', token: 's:1' });
  t.like(first, { applied: 1, appended: 1, skipped: false });
  // Sent behind a batch that never made it (its token is not the last applied one): nothing of it is written.
  const orphan = await f.writer.apply([row('A', 'WH1', 2, 9, 0, 9)], [event('200-0', 2)], parseLsn('0/200'), { after: 's:2', token: 's:3' });
  t.like(orphan, { applied: 0, appended: 0, skipped: true });
  t.is(await f.get('stock:A:warehouse:WH1'), '5');
  t.is(await f.get('meta:position'), '0/100');
  t.is((await readStream(f.redis, f.names.stream)).length, 1, 'no event of it either');
  const next = await f.writer.apply([row('A', 'WH1', 2, 9, 0, 9)], [event('200-0', 2)], parseLsn('0/200'), { after: 's:1', token: 's:2' });
  t.like(next, { applied: 1, appended: 1, skipped: false });
  t.is(await f.get('stock:A:warehouse:WH1'), '9');
});

test('replaceAhead rewrites an entry only while Redis still holds exactly the one seen, and recomputes the sku', async (t) => {
  const f = fixture(t, 'cw_replace_ahead');
  await f.writer.apply([row('A', 'WH1', 50, 9, 0, 9), row('A', 'WH2', 1, 1, 0, 1)], []); // WH1 ahead of a database at version 3
  const truth = row('A', 'WH1', 3, 4, 0, 4);
  const stale = { version: '49', onHand: 9, reserved: 0, available: 9, lowStockThreshold: 0, room: 0, preorderUntil: 0, unavailable: 0 };
  t.is(await f.writer.replaceAhead('A', [{ state: truth, seen: stale }]), 0, 'not what Redis holds now (the stream wrote since): left alone');
  t.is(await f.get('stock:A:warehouse:WH1'), '9');
  const seen = { version: '50', onHand: 9, reserved: 0, available: 9, lowStockThreshold: 0, room: 0, preorderUntil: 0, unavailable: 0 };
  t.is(await f.writer.replaceAhead('A', [{ state: truth, seen }]), 1);
  t.is(await f.redis.hget(f.writer.keys.rows('A'), 'WH1'), encodeRow(truth));
  t.deepEqual(await f.skuKeys('A'), { total: '5', available: '5', status: 'in_stock', lowStock: '0' });
});

test('kits: recomputed from the components\' rows after the batch\'s rows; an older definition is refused; warehouses gone are deleted', async (t) => {
  const f = fixture(t, 'cw_kits');
  const kit = (version: string, components: Array<[string, number]>, threshold = 0) => ({ sku: 'K', version, lowStockThreshold: threshold, components: components.map(([sku, qty]) => ({ sku, qty })) });
  // A writer that has seen no warehouse yet: the kit script names the codes it lacks, and the writer retries with them.
  const fresh = new CacheWriter(f.redis, f.writer.keys, { name: f.names.stream, maxLength: 1000 });
  await f.writer.apply([row('A', 'WH1', 1, 10, 0, 10), row('A', 'WH2', 1, 4, 0, 4), row('B', 'WH1', 1, 9, 0, 9)], []);
  t.deepEqual(await fresh.recomputeKits([kit('1', [['A', 1], ['B', 2]], 5)]), []);
  t.deepEqual(await f.skuKeys('K'), { total: '4', available: '4', status: 'low_stock', lowStock: '1' }, 'min(14/1, 9/2)');
  t.is(await f.get('stock:K:warehouse:WH1'), '4');
  t.is(await f.get('stock:K:warehouse:WH2'), '0', 'B has no row in WH2: it counts 0');
  t.is(await f.get('stock:K:kit'), '1:3');

  // In the stream's batch: B's row changes, and the kit with it, in the same script.
  await f.redis.set(f.writer.keys.product('K'), 'doc');
  const batch = await f.writer.apply([row('B', 'WH1', 2, 20, 0, 20)], [], undefined, undefined, { shiftSums: true, kits: [kit('1', [['A', 1], ['B', 2]], 5)] });
  t.deepEqual(batch.kitsRefused, []);
  t.deepEqual(await f.skuKeys('K'), { total: '10', available: '10', status: 'in_stock', lowStock: '0' });
  t.is(await f.get('product:K'), null, 'the product key is deleted when the kit changes');
  t.is(await f.get('stock:K:kit'), '1:4');

  t.deepEqual(await f.writer.recomputeKits([kit('0', [['A', 1]])]), ['K'], 'an older definition is refused');
  // On one Redis a recompute reads its components atomically, at their newest: a Σ of versions left
  // higher (a repair lowered a component's version) does not stop it (the cluster's guard, cluster.test.ts).
  await f.redis.set(f.writer.keys.kit('K'), '1:99');
  t.deepEqual(await f.writer.recomputeKits([kit('1', [['A', 1], ['B', 2]], 5)]), []);
  t.is(await f.get('stock:K:kit'), '1:4');

  // Redefined onto B alone: WH2 (only A had a row there) goes, with its key.
  t.deepEqual(await f.writer.recomputeKits([kit('2', [['B', 1]])]), []);
  t.deepEqual(Object.keys(await f.redis.hgetall(f.writer.keys.rows('K'))), ['WH1']);
  t.is(await f.get('stock:K:warehouse:WH2'), null);
  t.deepEqual(await f.skuKeys('K'), { total: '20', available: '20', status: 'in_stock', lowStock: '0' });
  t.is(await f.redis.hget(f.writer.keys.rows('K'), 'WH1'), '2:20:0:20:0:0:0:0', 'version: the sum of the component rows\' versions there');
});
