// Reads of the catalog cache, decoded through row.ts: the per-sku keys, whole
// rows hashes, and single rows beside their warehouse keys. In a Redis
// Cluster a multi-key command or script must stay in one hash slot: reads of
// many skus go as one call per slot (all keys of a sku share one, keys.ts),
// sent at once, so each sku's keys are still read in one atomic step.
import { isCluster, type Redis } from './redis.ts';
import { groupBySlot } from './slots.ts';
import type { CacheKeys } from './keys.ts';
import { decodeRow, STOCK_STATUSES, type CachedRowValue, type StockStatus } from './row.ts';
import { READ_ROWS, runScript } from './scripts.ts';

/**
 * A sku's keys as Redis holds them; undefined when any SPEC key is missing or
 * not a value the cache writes. `sums` is the bookkeeping key (row.ts, SkuTotals.sums), read only when asked for.
 */
export interface CachedSkuKeys {
  total: number; available: number; status: StockStatus; lowStock: boolean;
  /** The preorder_until key: when the sku's earliest preorder ends (ISO 8601), or null when it takes none. */
  preorderUntil: string | null;
  /** Σ on-hand units in quantity states (the unavailable key). */
  unavailable: number;
  sums: string | undefined;
}

/** One row as read back: its rows-hash entry, and the plain warehouse key beside it (a person may have changed that). */
export interface CachedRow extends CachedRowValue {
  warehouseKey: number | undefined;
}

export class CacheReader {
  private readonly redis: Redis;
  private readonly keys: CacheKeys;

  constructor(redis: Redis, keys: CacheKeys) {
    this.redis = redis;
    this.keys = keys;
  }

  /**
   * Values of many keys, in order, as MGET gives them: one MGET on one Redis
   * (one atomic snapshot); in a cluster one MGET per slot.
   */
  async mget(keys: readonly string[]): Promise<Array<string | null>> {
    if (keys.length === 0) return [];
    if (!isCluster(this.redis)) return this.redis.mget(...keys);
    const values: Array<string | null> = new Array(keys.length);
    await Promise.all(groupBySlot(keys, (key) => key).map(async (group) => {
      const reply = await this.redis.mget(...group.items);
      group.indexes.forEach((index, i) => { values[index] = reply[i] ?? null; });
    }));
    return values;
  }

  /** Runs READ_ROWS over hashes (rows, channels): one call on one Redis, one per slot in a cluster; the joined replies in order. */
  private async readRows(keys: readonly string[]): Promise<string[]> {
    if (!isCluster(this.redis)) return (await runScript(this.redis, READ_ROWS, keys, [])) as string[];
    const joined: string[] = new Array(keys.length);
    await Promise.all(groupBySlot(keys, (key) => key).map(async (group) => {
      const reply = (await runScript(this.redis, READ_ROWS, group.items, [])) as string[];
      group.indexes.forEach((index, i) => { joined[index] = reply[i]!; });
    }));
    return joined;
  }

  /** Whole rows hashes as Redis holds them (field → raw entry; {} when missing), for comparisons that report what is there. */
  async rawRowsHashes(skus: readonly string[]): Promise<Array<Record<string, string>>> {
    return (await this.readRows(skus.map((sku) => this.keys.rows(sku)))).map(fieldsOf);
  }

  /** Channels hashes as Redis holds them (channel code → units as text; {} when missing). */
  async rawChannelsHashes(skus: readonly string[]): Promise<Array<Record<string, string>>> {
    return (await this.readRows(skus.map((sku) => this.keys.channels(sku)))).map(fieldsOf);
  }

  /** The per-sku keys of many skus in one MGET (per slot in a cluster): one atomic snapshot of each sku (APPLY writes them together). */
  async skuKeys(skus: readonly string[], options: { sums?: boolean } = {}): Promise<Array<CachedSkuKeys | undefined>> {
    if (skus.length === 0) return [];
    const k = this.keys;
    // The sums key only when asked (incremental sync checks it): cachedStock reads these keys for many skus per request.
    const width = options.sums ? 7 : 6;
    const values = await this.mget(skus.flatMap((sku) => [k.total(sku), k.available(sku), k.status(sku), k.lowStock(sku), k.preorderUntil(sku),
      k.unavailable(sku), ...(options.sums ? [k.sums(sku)] : [])]));
    return skus.map((_, i) => {
      const [total, available, status, lowStock, preorderUntil, unavailable, sums] = values.slice(width * i, width * i + width);
      if (total == null || available == null || status == null || lowStock == null || !STOCK_STATUSES.has(status)) return undefined;
      return {
        total: Number(total), available: Number(available), status: status as StockStatus, lowStock: lowStock === '1',
        preorderUntil: preorderUntil ?? null, unavailable: Number(unavailable ?? 0), sums: sums ?? undefined,
      };
    });
  }

  /** Whole rows hashes (warehouse code → entry) of many skus in one call; undefined where a sku has none. */
  async rowsHashes(skus: readonly string[]): Promise<Array<Map<string, CachedRowValue> | undefined>> {
    if (skus.length === 0) return [];
    const reply = await this.readRows(skus.map((sku) => this.keys.rows(sku)));
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
    if (isCluster(this.redis)) {
      // A cluster pipeline must stay on one node: separate commands instead, sent at once.
      const redis = this.redis;
      return Promise.all(rows.map(async (r) => {
        const [entry, key] = await Promise.all([redis.hget(this.keys.rows(r.sku), r.warehouse), redis.get(this.keys.warehouse(r.sku, r.warehouse))]);
        const row = decodeRow(entry);
        return row && { ...row, warehouseKey: typeof key === 'string' ? Number(key) : undefined };
      }));
    }
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

/** A hash as READ_ROWS joins it ("field\0value\0…"), as an object. */
function fieldsOf(joined: string): Record<string, string> {
  const parts = joined === '' ? [] : joined.split('\0');
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < parts.length; i += 2) fields[parts[i]!] = parts[i + 1]!;
  return fields;
}
