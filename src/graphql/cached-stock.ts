// cachedStock: stock of many skus from the Redis catalog cache, one pipeline
// round trip for all of them. A sku the cache does not have (evicted, never
// built, Redis just restarted) falls back to Postgres and is written back
// (version-guarded, like every cache write), with at most one query per
// missing sku in flight however many requests ask for it at once.
import { Counter, type Registry } from 'prom-client';
import type pg from 'pg';
import { stockStatus, type CacheKeys, type StockStatus } from '../cache/keys.ts';
import type { Redis } from '../cache/redis.ts';
import type { CacheWriter, RowState } from '../cache/writer.ts';

export interface CachedStock {
  sku: string;
  total: number;
  available: number;
  status: StockStatus;
  lowStock: boolean;
  warehouses: Array<{ warehouse: string; available: number; version: string }>;
  /** Where the answer came from: the cache, or Postgres after a miss. */
  source: 'cache' | 'database';
}

export function createCacheMetrics(registry: Registry) {
  const registers = [registry];
  return {
    hits: new Counter({ name: 'stockroom_cache_hits_total', help: 'cachedStock skus answered from Redis', registers }),
    misses: new Counter({ name: 'stockroom_cache_misses_total', help: 'cachedStock skus Redis did not have (answered from PostgreSQL)', registers }),
  };
}

export class CachedStockReader {
  private readonly inFlight = new Map<string, Promise<CachedStock | null>>();
  private readonly redis: Redis;
  private readonly keys: CacheKeys;
  private readonly pool: pg.Pool;
  private readonly writer: CacheWriter;
  private readonly metrics: ReturnType<typeof createCacheMetrics>;

  constructor(deps: { redis: Redis; keys: CacheKeys; pool: pg.Pool; writer: CacheWriter; metrics: ReturnType<typeof createCacheMetrics> }) {
    this.redis = deps.redis;
    this.keys = deps.keys;
    this.pool = deps.pool;
    this.writer = deps.writer;
    this.metrics = deps.metrics;
  }

  /** One entry per sku asked for, in order; null for a sku Postgres does not know either. */
  async getMany(skus: readonly string[]): Promise<Array<CachedStock | null>> {
    if (skus.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const sku of skus) pipeline.hgetall(this.keys.rows(sku));
    const replies = (await pipeline.exec()) ?? [];
    const results = skus.map((sku, i): CachedStock | undefined => {
      const [error, rows] = replies[i] ?? [];
      if (error) throw error;
      return fromRowsHash(sku, rows as Record<string, string>);
    });
    const hits = results.filter((r) => r !== undefined).length;
    this.metrics.hits.inc(hits);
    this.metrics.misses.inc(skus.length - hits);
    return Promise.all(results.map((r, i) => r ?? this.fallback(skus[i]!)));
  }

  private fallback(sku: string): Promise<CachedStock | null> {
    let pending = this.inFlight.get(sku);
    if (!pending) {
      pending = this.load(sku).finally(() => this.inFlight.delete(sku));
      this.inFlight.set(sku, pending);
    }
    return pending;
  }

  private async load(sku: string): Promise<CachedStock | null> {
    const { rows } = await this.pool.query<{ code: string; version: string; on_hand: number; reserved: number; available: number; low_stock_threshold: number }>(`
      select w.code, s.version::text, s.on_hand, s.reserved, greatest(s.on_hand - s.reserved - s.safety_stock, 0) as available, s.low_stock_threshold
      from inventory.products p
      join inventory.stock_levels s on s.product_id = p.id
      join inventory.warehouses w on w.id = s.warehouse_id
      where p.sku = $1 order by w.code`, [sku]);
    if (rows.length === 0) return null;
    const states: RowState[] = rows.map((r) => ({
      sku, warehouse: r.code, version: r.version, onHand: r.on_hand, reserved: r.reserved, available: r.available, lowStockThreshold: r.low_stock_threshold,
    }));
    await this.writer.apply(states, []);
    const total = rows.reduce((n, r) => n + r.on_hand, 0);
    const available = rows.reduce((n, r) => n + r.available, 0);
    const status = stockStatus(available, rows.reduce((n, r) => n + r.low_stock_threshold, 0));
    return {
      sku, total, available, status, lowStock: status === 'low_stock',
      warehouses: rows.map((r) => ({ warehouse: r.code, available: r.available, version: r.version })), source: 'database',
    };
  }
}

/** A sku's stock from its rows hash ("version:on_hand:reserved:available:threshold" per warehouse), or undefined on a miss. */
function fromRowsHash(sku: string, rows: Record<string, string> | undefined): CachedStock | undefined {
  const entries = Object.entries(rows ?? {});
  if (entries.length === 0) return undefined;
  let total = 0;
  let available = 0;
  let threshold = 0;
  const warehouses = entries.map(([warehouse, value]) => {
    const [version, onHand, , avail, low] = value.split(':');
    total += Number(onHand);
    available += Number(avail);
    threshold += Number(low);
    return { warehouse, available: Number(avail), version: version! };
  }).sort((a, b) => (a.warehouse < b.warehouse ? -1 : 1));
  const status = stockStatus(available, threshold);
  return { sku, total, available, status, lowStock: status === 'low_stock', warehouses, source: 'cache' };
}
