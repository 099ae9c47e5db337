// Compares the Redis catalog cache with PostgreSQL, key by key, as SPEC.md
// defines the keys; reads the events stream.
import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { cacheKeys, type CacheKeys } from '../../src/cache/keys.ts';
import { stockStatus } from '../../src/cache/row.ts';
import { parseRedisUrl } from '../../src/config.ts';
import type { Queryable } from './invariants.ts';
import { testServers } from './environment.ts';

export function uniqueNames(label: string): { prefix: string; stream: string; slot: string; publication: string } {
  const id = `${label.toLowerCase().replace(/[^a-z0-9]+/g, '_').slice(0, 20)}_${randomBytes(4).toString('hex')}`;
  return { prefix: `t:${id}:`, stream: `t:${id}:events`, slot: `s_${id}`, publication: `p_${id}` };
}

export function testRedis(url = testServers().redisUrl): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  return redis;
}

/** A client of a Redis Cluster (redis+cluster:// URL), for tests of the cluster layout. */
export function testCluster(url: string): Cluster {
  const target = parseRedisUrl(url);
  if (!target?.cluster) throw new Error(`not a cluster URL: ${url}`);
  const cluster = new Cluster(target.nodes, { redisOptions: { maxRetriesPerRequest: 1 } });
  cluster.on('error', () => {});
  return cluster;
}

/**
 * Every key that differs from what Postgres says (empty when the cache is
 * exact). layout: the prefix (single-Redis layout), or the keys of any layout
 * (with a cluster client, keys are read one by one: they span slots).
 */
export async function cacheMismatches(db: Queryable, redis: Redis | Cluster, layout: string | CacheKeys): Promise<string[]> {
  const k = typeof layout === 'string' ? cacheKeys(layout) : layout;
  // Room beyond available as the README states it, in SQL: the limit less what waits, unless DENY.
  const { rows } = await db.query<{ sku: string; code: string; on_hand: number; reserved: number; available: number; threshold: number;
    backorder_room: number; preorder_room: number; preorder_until: string | null; unavailable: number }>(`
    select p.sku, w.code, s.on_hand, s.reserved, greatest(s.on_hand - s.reserved - s.safety_stock - s.unavailable, 0) as available,
           (select coalesce(sum(t.qty), 0)::int from inventory.stock_level_states t where t.product_id = s.product_id and t.warehouse_id = s.warehouse_id) as unavailable,
           s.low_stock_threshold as threshold,
           case when s.backorder_policy = 'BACKORDER' then greatest(s.backorder_limit - s.backordered, 0) else 0 end as backorder_room,
           case when s.backorder_policy = 'PREORDER' then greatest(s.backorder_limit - s.backordered, 0) else 0 end as preorder_room,
           case when s.backorder_policy = 'PREORDER' and s.backorder_limit > s.backordered
             then to_char(date_trunc('second', s.preorder_until) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') end as preorder_until
    from inventory.stock_levels s
    join inventory.products p on p.id = s.product_id
    join inventory.warehouses w on w.id = s.warehouse_id`);
  const expected = new Map<string, string | null>();
  const perSku = new Map<string, { total: number; available: number; threshold: number; backorderRoom: number; preorderRoom: number; preorderUntil: string | null; unavailable: number }>();
  for (const r of rows) {
    expected.set(k.warehouse(r.sku, r.code), String(r.available));
    const sums = perSku.get(r.sku) ?? { total: 0, available: 0, threshold: 0, backorderRoom: 0, preorderRoom: 0, preorderUntil: null, unavailable: 0 };
    sums.total += r.on_hand;
    sums.unavailable += r.unavailable;
    sums.available += r.available;
    sums.threshold += r.threshold;
    sums.backorderRoom += r.backorder_room;
    sums.preorderRoom += r.preorder_room;
    if (r.preorder_until !== null && (sums.preorderUntil === null || r.preorder_until < sums.preorderUntil)) sums.preorderUntil = r.preorder_until;
    perSku.set(r.sku, sums);
  }
  for (const [sku, sums] of perSku) {
    const status = stockStatus(sums.available, sums.threshold, sums.backorderRoom, sums.preorderRoom);
    expected.set(k.total(sku), String(sums.total));
    expected.set(k.available(sku), String(sums.available));
    expected.set(k.status(sku), status);
    expected.set(k.lowStock(sku), status === 'low_stock' ? '1' : '0');
    expected.set(k.preorderUntil(sku), sums.preorderUntil);
    expected.set(k.unavailable(sku), String(sums.unavailable));
    // The sums the stream moves the keys by: they must stay what the rows add up to.
    const untilSeconds = sums.preorderUntil === null ? 0 : Date.parse(sums.preorderUntil) / 1000;
    expected.set(k.sums(sku), `${sums.total}:${sums.available}:${sums.threshold}:${sums.backorderRoom}:${sums.preorderRoom}:${untilSeconds}:${sums.unavailable}`);
  }
  // Kits: what inventory.kit_stock says (per warehouse, and the total row with its status).
  const { rows: kitRows } = await db.query<{ sku: string; warehouse: string | null; on_hand: number; available: number; low_stock_threshold: number; status: string | null }>(`
    select k.* from inventory.products p, inventory.kit_stock(array[p.sku]) k where p.is_kit`);
  const kitWarehouses = new Map<string, string[]>();
  for (const r of kitRows) {
    if (!kitWarehouses.has(r.sku)) kitWarehouses.set(r.sku, []);
    if (r.warehouse !== null) {
      expected.set(k.warehouse(r.sku, r.warehouse), String(r.available));
      kitWarehouses.get(r.sku)!.push(r.warehouse);
      continue;
    }
    expected.set(k.total(r.sku), String(r.on_hand));
    expected.set(k.available(r.sku), String(r.available));
    expected.set(k.status(r.sku), r.status!);
    expected.set(k.lowStock(r.sku), r.status === 'low_stock' ? '1' : '0');
    expected.set(k.sums(r.sku), `${r.on_hand}:${r.available}:${r.low_stock_threshold}:0:0:0:0`);
    expected.set(k.preorderUntil(r.sku), null);
    expected.set(k.unavailable(r.sku), '0');
  }
  const keys = [...expected.keys()];
  const problems: string[] = await channelMismatches(db, redis, k, [...perSku.keys(), ...kitWarehouses.keys()]);
  for (const [sku, codes] of kitWarehouses) {
    const cached = (await redis.hkeys(k.rows(sku))).sort();
    if (cached.join() !== [...codes].sort().join()) problems.push(`${k.rows(sku)}: redis warehouses ${cached.join()} postgres ${[...codes].sort().join()}`);
  }
  for (let i = 0; i < keys.length && problems.length < 20; i += 5000) {
    const chunk = keys.slice(i, i + 5000);
    const values = redis instanceof Cluster ? await Promise.all(chunk.map((key) => redis.get(key))) : await redis.mget(...chunk);
    chunk.forEach((key, j) => {
      if (values[j] !== expected.get(key) && problems.length < 20) problems.push(`${key}: redis ${values[j]} postgres ${expected.get(key)}`);
    });
  }
  return problems;
}

/**
 * The channels hash of each sku against inventory.channel_stock's total row
 * per channel (the SQL statement of the rule), as "code=units" by code.
 * Skipped while no channel exists.
 */
async function channelMismatches(db: Queryable, redis: Redis | Cluster, k: CacheKeys, skus: string[]): Promise<string[]> {
  if ((await db.query('select 1 from inventory.channels limit 1')).rowCount === 0) return [];
  const { rows } = await db.query<{ sku: string; channel: string; available: number }>(`
    select s.sku, c.code as channel, s.available
    from inventory.channels c
    cross join lateral inventory.channel_stock($1::text[], c.code) s
    where s.warehouse is null`, [skus]);
  const expected = new Map(skus.map((sku) => [sku, [] as string[]]));
  for (const r of rows) expected.get(r.sku)?.push(`${r.channel}=${r.available}`);
  const problems: string[] = [];
  for (const sku of skus) {
    const cached = Object.entries(await redis.hgetall(k.channels(sku))).map(([code, units]) => `${code}=${units}`).sort().join(' ');
    const want = expected.get(sku)!.sort().join(' ');
    if (cached !== want) problems.push(`${k.channels(sku)}: redis ${cached || '(none)'} postgres ${want || '(none)'}`);
    if (problems.length >= 20) break;
  }
  return problems;
}

/** Polls until the cache matches Postgres; returns the mismatches left at the deadline (empty on success). */
export async function waitForCache(db: Queryable, redis: Redis | Cluster, prefix: string | CacheKeys, timeoutMs = 15_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let problems = await cacheMismatches(db, redis, prefix);
  while (problems.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    problems = await cacheMismatches(db, redis, prefix);
  }
  return problems;
}

export interface StreamEntry { streamId: string; type: string; id: string; subject: string; event: { data: Record<string, unknown>; [k: string]: unknown } }

export async function readStream(redis: Redis | Cluster, stream: string): Promise<StreamEntry[]> {
  const entries = await redis.xrange(stream, '-', '+');
  return entries.map(([streamId, fields]) => {
    const f: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
    return { streamId, type: f.type!, id: f.id!, subject: f.subject!, event: JSON.parse(f.event!) };
  });
}

/**
 * Problems with the stream against the ledger: each movement must have exactly
 * one warehouse.stock.updated and exactly one typed event.
 */
export async function eventProblems(db: Queryable, entries: StreamEntry[]): Promise<string[]> {
  const { rows } = await db.query<{ id: string; kind: string }>('select id::text, kind from inventory.movements');
  const updated = new Map<string, number>();
  const typed = new Map<string, number>();
  for (const e of entries) {
    const movementId = String(e.event.data.movement_id);
    if (e.type === 'warehouse.stock.updated') updated.set(movementId, (updated.get(movementId) ?? 0) + 1);
    else if (e.type !== 'warehouse.inventory.low_stock') typed.set(movementId, (typed.get(movementId) ?? 0) + 1);
  }
  const problems: string[] = [];
  for (const m of rows) {
    if (updated.get(m.id) !== 1) problems.push(`movement ${m.id} (${m.kind}): ${updated.get(m.id) ?? 0} updated events`);
    if (typed.get(m.id) !== 1) problems.push(`movement ${m.id} (${m.kind}): ${typed.get(m.id) ?? 0} typed events`);
    if (problems.length >= 20) break;
  }
  if (updated.size > rows.length) problems.push(`${updated.size - rows.length} updated events for movements that do not exist`);
  return problems;
}

export async function waitFor(condition: () => Promise<boolean> | boolean, timeoutMs: number, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return condition();
}
