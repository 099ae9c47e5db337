// cachedStock: stock of many skus from the Redis catalog cache.
// - The per-sku keys (total, available, status, low_stock) of every sku asked
//   for come in one MGET: one round trip, one atomic snapshot (the apply
//   script writes them together).
// - The per-warehouse figures are read only when a query selects them, for all
//   skus of the request in one script call that returns each sku's rows hash as
//   one string (a pipeline of HGETALLs costs about three times as much to
//   parse). They are a second read, so under writes they can be newer than the
//   totals beside them.
// A sku the cache does not have (evicted, never built, Redis just restarted)
// falls back to Postgres and is written back (version-guarded, like every cache
// write), with at most one query per missing sku in flight however many
// requests ask for it at once.
// While Redis is unreachable (not connected, or not answering within
// readTimeoutMs) every sku is answered from Postgres, marked `database`, and
// nothing is written back; ioredis reconnects in the background and the next
// request after it is back reads the cache again.
import { createHash } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import type pg from 'pg';
import { stockStatus, type CacheKeys, type StockStatus } from '../cache/keys.ts';
import type { Redis } from '../cache/redis.ts';
import type { CacheWriter, RowState } from '../cache/writer.ts';

export interface WarehouseAvailability { warehouse: string; available: number; version: string }

export interface CachedStock {
  sku: string;
  total: number;
  available: number;
  status: StockStatus;
  lowStock: boolean;
  /** Where the answer came from: the cache, or Postgres after a miss or while Redis is unreachable. */
  source: 'cache' | 'database';
  /** Known at once when the answer came from Postgres; read from the cache on demand otherwise (warehousesOf). */
  warehouses?: WarehouseAvailability[];
}

/** KEYS: rows hashes. Returns each hash as "field\0value\0field\0value…" ('' when missing). */
const ROWS_SCRIPT = `
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = table.concat(redis.call('HGETALL', key), '\\0')
end
return out
`;
const ROWS_SHA = createHash('sha1').update(ROWS_SCRIPT).digest('hex');

/** ioredis connection states in which a read would wait for a reconnection. */
const DOWN: ReadonlySet<string> = new Set(['reconnecting', 'close', 'end']);

const STATUSES: ReadonlySet<string> = new Set<StockStatus>(['in_stock', 'low_stock', 'out_of_stock']);

export function createCacheMetrics(registry: Registry) {
  const registers = [registry];
  return {
    hits: new Counter({ name: 'stockroom_cache_hits_total', help: 'cachedStock skus answered from Redis', registers }),
    misses: new Counter({ name: 'stockroom_cache_misses_total', help: 'cachedStock skus Redis did not have (answered from PostgreSQL)', registers }),
    unavailable: new Counter({ name: 'stockroom_cache_unavailable_total', help: 'cachedStock reads answered from PostgreSQL because Redis was unreachable or slow', registers }),
  };
}

export class CachedStockReader {
  private readonly inFlight = new Map<string, Promise<CachedStock | null>>();
  private readonly redis: Redis;
  private readonly keys: CacheKeys;
  private readonly pool: pg.Pool;
  private readonly writer: CacheWriter;
  private readonly metrics: ReturnType<typeof createCacheMetrics>;
  private readonly readTimeoutMs: number;

  constructor(deps: { redis: Redis; keys: CacheKeys; pool: pg.Pool; writer: CacheWriter; metrics: ReturnType<typeof createCacheMetrics>; readTimeoutMs: number }) {
    this.readTimeoutMs = deps.readTimeoutMs;
    this.redis = deps.redis;
    this.keys = deps.keys;
    this.pool = deps.pool;
    this.writer = deps.writer;
    this.metrics = deps.metrics;
  }

  /** One entry per sku asked for, in order; null for a sku Postgres does not know either. */
  async getMany(skus: readonly string[]): Promise<Array<CachedStock | null>> {
    if (skus.length === 0) return [];
    const keys = this.keys;
    const values = await this.fromRedis(() => this.redis.mget(skus.flatMap((sku) => [keys.total(sku), keys.available(sku), keys.status(sku), keys.lowStock(sku)])));
    if (values === undefined) return this.fallback(skus, false);
    const results = skus.map((sku, i): CachedStock | undefined => {
      const [total, available, status, lowStock] = values.slice(4 * i, 4 * i + 4);
      if (total == null || available == null || status == null || lowStock == null || !STATUSES.has(status)) return undefined;
      return { sku, total: Number(total), available: Number(available), status: status as StockStatus, lowStock: lowStock === '1', source: 'cache' };
    });
    const hits = results.filter((r) => r !== undefined).length;
    this.metrics.hits.inc(hits);
    this.metrics.misses.inc(skus.length - hits);
    const missing = skus.filter((_, i) => results[i] === undefined);
    const loaded = missing.length > 0 ? await this.fallback(missing) : [];
    const bySku = new Map(missing.map((sku, i) => [sku, loaded[i]!]));
    return results.map((r, i) => r ?? bySku.get(skus[i]!) ?? null);
  }

  /** The per-warehouse figures of each stock, in order: from the answer itself, else from the cache in one call. */
  async warehousesOf(stocks: readonly CachedStock[]): Promise<WarehouseAvailability[][]> {
    const unknown = stocks.filter((s) => !s.warehouses);
    const read = new Map<string, WarehouseAvailability[]>();
    let reachable = true;
    if (unknown.length > 0) {
      const keys = unknown.map((s) => this.keys.rows(s.sku));
      const reply = await this.fromRedis(() => this.script(ROWS_SHA, ROWS_SCRIPT, keys.length, ...keys));
      reachable = reply !== undefined;
      (reply as string[] | undefined)?.forEach((joined, i) => {
        if (joined !== '') read.set(unknown[i]!.sku, parseRows(joined));
      });
    }
    // Gone between the two reads (evicted, flushed) or Redis gone meanwhile: ask Postgres, like any miss.
    const gone = stocks.filter((s) => !s.warehouses && !read.has(s.sku)).map((s) => s.sku);
    if (gone.length > 0) (await this.fallback(gone, reachable)).forEach((stock, i) => read.set(gone[i]!, stock?.warehouses ?? []));
    return stocks.map((s) => s.warehouses ?? read.get(s.sku)!);
  }

  /** One row as the cache holds it (undefined when it has none or Redis is unreachable). */
  async rowOf(sku: string, warehouse: string): Promise<{ version: string; onHand: number; reserved: number; available: number } | undefined> {
    const row = (await this.fromRedis(() => this.writer.readRows([{ sku, warehouse }])))?.[0];
    return row && { version: row.version, onHand: row.onHand, reserved: row.reserved, available: row.available };
  }

  /**
   * A read from Redis, or undefined when Redis is not connected, fails, or
   * does not answer within readTimeoutMs: the caller then asks Postgres.
   */
  private async fromRedis<T>(read: () => Promise<T>): Promise<T | undefined> {
    // Lost and not back yet: do not queue behind the reconnection. (A first connection still under
    // way queues the read, bounded by the timeout like any read.)
    if (DOWN.has(this.redis.status)) {
      this.metrics.unavailable.inc();
      return undefined;
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.readTimeoutMs);
    });
    const reply = read().catch(() => undefined);
    try {
      const result = await Promise.race([reply, timedOut]);
      if (result === undefined) this.metrics.unavailable.inc();
      return result;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs a script by its hash, loading it when Redis does not have it (new, restarted, flushed). */
  private async script(sha: string, source: string, keyCount: number, ...args: string[]): Promise<unknown> {
    try {
      return await this.redis.evalsha(sha, keyCount, ...args);
    } catch (error) {
      if (!String((error as Error).message).startsWith('NOSCRIPT')) throw error;
      return this.redis.eval(source, keyCount, ...args);
    }
  }

  /**
   * Stock of skus the cache lacks, from Postgres in one query for those no
   * other request is loading already (single flight per sku), written back.
   */
  private fallback(skus: readonly string[], writeBack = true): Promise<Array<CachedStock | null>> {
    const toLoad = [...new Set(skus.filter((sku) => !this.inFlight.has(sku)))];
    if (toLoad.length > 0) {
      const batch = this.load(toLoad, writeBack);
      for (const sku of toLoad) {
        const pending = batch.then((bySku) => bySku.get(sku) ?? null).finally(() => this.inFlight.delete(sku));
        pending.catch(() => {}); // rejected to every caller that awaits it; not an unhandled rejection meanwhile
        this.inFlight.set(sku, pending);
      }
    }
    return Promise.all(skus.map((sku) => this.inFlight.get(sku)!));
  }

  private async load(skus: readonly string[], writeBack: boolean): Promise<Map<string, CachedStock>> {
    const { rows } = await this.pool.query<{ sku: string; code: string; version: string; on_hand: number; reserved: number; available: number; low_stock_threshold: number }>(`
      select p.sku, w.code, s.version::text, s.on_hand, s.reserved, greatest(s.on_hand - s.reserved - s.safety_stock, 0) as available, s.low_stock_threshold
      from inventory.products p
      join inventory.stock_levels s on s.product_id = p.id
      join inventory.warehouses w on w.id = s.warehouse_id
      where p.sku = any($1::text[]) order by p.sku, w.code`, [skus]);
    const result = new Map<string, CachedStock>();
    if (rows.length === 0) return result;
    const states: RowState[] = rows.map((r) => ({
      sku: r.sku, warehouse: r.code, version: r.version, onHand: r.on_hand, reserved: r.reserved, available: r.available, lowStockThreshold: r.low_stock_threshold,
    }));
    // Written back for the next reader; a Redis that fails meanwhile does not fail the answer.
    if (writeBack && this.redis.status === 'ready') await this.writer.apply(states, []).catch(() => {});
    const rowsBySku = Map.groupBy(rows, (r) => r.sku);
    for (const [sku, skuRows] of rowsBySku) {
      const total = skuRows.reduce((n, r) => n + r.on_hand, 0);
      const available = skuRows.reduce((n, r) => n + r.available, 0);
      const status = stockStatus(available, skuRows.reduce((n, r) => n + r.low_stock_threshold, 0));
      result.set(sku, {
        sku, total, available, status, lowStock: status === 'low_stock',
        warehouses: skuRows.map((r) => ({ warehouse: r.code, available: r.available, version: r.version })), source: 'database',
      });
    }
    return result;
  }
}

/** "code\0version:on_hand:reserved:available:threshold\0…" → warehouses in code order. */
function parseRows(joined: string): WarehouseAvailability[] {
  const parts = joined.split('\0');
  const warehouses: WarehouseAvailability[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const value = parts[i + 1]!;
    const first = value.indexOf(':');
    const available = value.split(':')[3];
    warehouses.push({ warehouse: parts[i]!, version: value.slice(0, first), available: Number(available) });
  }
  return warehouses.sort((a, b) => (a.warehouse < b.warehouse ? -1 : a.warehouse > b.warehouse ? 1 : 0));
}
