// Reads of the catalog cache, decoded through row.ts: the per-sku keys, whole
// rows hashes, and single rows beside their warehouse keys.
import type { Redis } from 'ioredis';
import type { CacheKeys } from './keys.ts';
import { decodeRow, type CachedRowValue, type StockStatus } from './row.ts';
import { READ_ROWS, runScript } from './scripts.ts';

/**
 * A sku's keys as Redis holds them; undefined when any SPEC key is missing or
 * not a value the cache writes. `sums` is the bookkeeping key (row.ts, SkuTotals.sums).
 */
export interface CachedSkuKeys { total: number; available: number; status: StockStatus; lowStock: boolean; sums: string | undefined }

/** One row as read back: its rows-hash entry, and the plain warehouse key beside it (a person may have changed that). */
export interface CachedRow extends CachedRowValue {
  warehouseKey: number | undefined;
}

const STATUSES: ReadonlySet<string> = new Set<StockStatus>(['in_stock', 'low_stock', 'out_of_stock']);

export class CacheReader {
  private readonly redis: Redis;
  private readonly keys: CacheKeys;

  constructor(redis: Redis, keys: CacheKeys) {
    this.redis = redis;
    this.keys = keys;
  }

  /** The per-sku keys of many skus in one MGET: one round trip, one atomic snapshot (APPLY writes them together). */
  async skuKeys(skus: readonly string[]): Promise<Array<CachedSkuKeys | undefined>> {
    if (skus.length === 0) return [];
    const k = this.keys;
    const values = await this.redis.mget(skus.flatMap((sku) => [k.total(sku), k.available(sku), k.status(sku), k.lowStock(sku), k.sums(sku)]));
    return skus.map((_, i) => {
      const [total, available, status, lowStock, sums] = values.slice(5 * i, 5 * i + 5);
      if (total == null || available == null || status == null || lowStock == null || !STATUSES.has(status)) return undefined;
      return { total: Number(total), available: Number(available), status: status as StockStatus, lowStock: lowStock === '1', sums: sums ?? undefined };
    });
  }

  /** Whole rows hashes (warehouse code → entry) of many skus in one call; undefined where a sku has none. */
  async rowsHashes(skus: readonly string[]): Promise<Array<Map<string, CachedRowValue> | undefined>> {
    if (skus.length === 0) return [];
    const reply = (await runScript(this.redis, READ_ROWS, skus.map((sku) => this.keys.rows(sku)), [])) as string[];
    return reply.map((joined) => {
      if (joined === '') return undefined;
      const parts = joined.split('\0');
      const rows = new Map<string, CachedRowValue>();
      for (let i = 0; i + 1 < parts.length; i += 2) {
        const row = decodeRow(parts[i + 1]);
        if (row) rows.set(parts[i]!, row);
      }
      return rows;
    });
  }

  /** Some rows (rows-hash entry and warehouse key), in order; undefined where nothing is cached. */
  async rows(rows: ReadonlyArray<{ sku: string; warehouse: string }>): Promise<Array<CachedRow | undefined>> {
    if (rows.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const r of rows) {
      pipeline.hget(this.keys.rows(r.sku), r.warehouse);
      pipeline.get(this.keys.warehouse(r.sku, r.warehouse));
    }
    const replies = (await pipeline.exec()) ?? [];
    return rows.map((_, i) => {
      const [hashError, entry] = replies[2 * i] ?? [];
      const [keyError, key] = replies[2 * i + 1] ?? [];
      if (hashError || keyError) throw hashError ?? keyError;
      const row = decodeRow(entry as string | null);
      return row && { ...row, warehouseKey: typeof key === 'string' ? Number(key) : undefined };
    });
  }
}
