// cachedStock: stock of many skus from the Redis catalog cache.
// - The per-sku keys (total, available, status, low_stock) of every sku asked
//   for come in one MGET: one round trip, one atomic snapshot (the apply
//   script writes them together).
// - The per-warehouse figures are read only when a query selects them, for all
//   skus of the request in one script call that returns each sku's rows hash as
//   one string (a pipeline of HGETALLs costs about three times as much to
//   parse). They are a second read, so under writes they can be newer than the
//   totals beside them.
// - Availability per sales channel likewise, from each sku's channels hash
//   (cache/channels.ts), read only when a query selects it.
// A sku the cache does not have (evicted, never built, Redis just restarted)
// falls back to Postgres and is written back (version-guarded, like every cache
// write), with at most one query per missing sku in flight however many
// requests ask for it at once.
// A kit reads the same keys (its per-warehouse figures are its rows hash);
// missing, it is answered from PostgreSQL's kit rule (inventory._kit_rows)
// and written back as every writer writes kits: its components' rows, then
// the kit recomputed from them in Redis.
// While Redis is unreachable (not connected, or not answering within
// readTimeoutMs) every sku is answered from Postgres, marked `database`, and
// nothing is written back; ioredis reconnects in the background and the next
// request after it is back reads the cache again.
import { Counter, type Registry } from 'prom-client';
import type pg from 'pg';
import { writeWithKits } from '../cache/kits.ts';
import { loadChannels, loadChannelStock, loadKitDefinitions, loadKitStock, loadSkus, loadSkusAndKits } from '../cache/loader.ts';
import type { Redis } from '../cache/redis.ts';
import { skuTotals, type StockStatus } from '../cache/row.ts';
import type { CacheWriter } from '../cache/writer.ts';

export interface WarehouseAvailability { warehouse: string; available: number; version: string }

/** Units a line through a sales channel can take (channel code), as the channels hash holds them. */
export interface ChannelAvailability { channel: string; available: number }

export interface CachedStock {
  sku: string;
  total: number;
  available: number;
  status: StockStatus;
  lowStock: boolean;
  /** When the sku's earliest preorder ends (ISO 8601), while it takes preorders; else null. */
  preorderUntil: string | null;
  /** On-hand units in quantity states (damaged, quality control…): not available. */
  unavailable: number;
  /** Where the answer came from: the cache, or Postgres after a miss or while Redis is unreachable. */
  source: 'cache' | 'database';
  /** Known at once when the answer came from Postgres; read from the cache on demand otherwise (warehousesOf). */
  warehouses?: WarehouseAvailability[];
}

/** ioredis connection states in which a read would wait for a reconnection. */
const DOWN: ReadonlySet<string> = new Set(['reconnecting', 'close', 'end']);

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
  private readonly pool: pg.Pool;
  private readonly writer: CacheWriter;
  private readonly metrics: ReturnType<typeof createCacheMetrics>;
  private readonly readTimeoutMs: number;

  /** redis: the connection writer uses, watched for being down. */
  constructor(deps: { redis: Redis; pool: pg.Pool; writer: CacheWriter; metrics: ReturnType<typeof createCacheMetrics>; readTimeoutMs: number }) {
    this.readTimeoutMs = deps.readTimeoutMs;
    this.redis = deps.redis;
    this.pool = deps.pool;
    this.writer = deps.writer;
    this.metrics = deps.metrics;
  }

  /** One entry per sku asked for, in order; null for a sku Postgres does not know either. */
  async getMany(skus: readonly string[]): Promise<Array<CachedStock | null>> {
    if (skus.length === 0) return [];
    const cached = await this.fromRedis(() => this.writer.reader.skuKeys(skus));
    if (cached === undefined) return this.fallback(skus, false);
    const results = skus.map((sku, i): CachedStock | undefined => {
      const keys = cached[i];
      return keys && { sku, ...keys, source: 'cache' };
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
      const reply = await this.fromRedis(() => this.writer.reader.rowsHashes(unknown.map((s) => s.sku)));
      reachable = reply !== undefined;
      reply?.forEach((rows, i) => {
        if (rows) {
          read.set(unknown[i]!.sku, [...rows].map(([warehouse, row]) => ({ warehouse, available: row.available, version: row.version }))
            .sort((a, b) => (a.warehouse < b.warehouse ? -1 : a.warehouse > b.warehouse ? 1 : 0)));
        }
      });
    }
    // Gone between the two reads (evicted, flushed) or Redis gone meanwhile: ask Postgres, like any miss.
    const gone = stocks.filter((s) => !s.warehouses && !read.has(s.sku)).map((s) => s.sku);
    if (gone.length > 0) (await this.fallback(gone, reachable)).forEach((stock, i) => read.set(gone[i]!, stock?.warehouses ?? []));
    return stocks.map((s) => s.warehouses ?? read.get(s.sku)!);
  }

  /**
   * Each stock's availability per channel, in order, by channel code (read
   * only when a query selects it): from the cache in one call for answers
   * from the cache, from PostgreSQL for answers from it (and when Redis is
   * gone since the totals were read).
   */
  async channelsOf(stocks: readonly CachedStock[]): Promise<ChannelAvailability[][]> {
    const read = new Map<string, ChannelAvailability[]>();
    const cached = stocks.filter((s) => s.source === 'cache').map((s) => s.sku);
    const reply = cached.length > 0 ? await this.fromRedis(() => this.writer.reader.rawChannelsHashes(cached)) : [];
    reply?.forEach((hash, i) => read.set(cached[i]!, byChannel(Object.entries(hash).map(([channel, units]) => [channel, Number(units)]))));
    const fromDatabase = stocks.filter((s) => !read.has(s.sku)).map((s) => s.sku);
    if (fromDatabase.length > 0) for (const [sku, channels] of await this.channelsFromDatabase(fromDatabase)) read.set(sku, channels);
    return stocks.map((s) => read.get(s.sku) ?? []);
  }

  /** Availability per channel of skus as PostgreSQL has it (inventory.channel_stock). */
  private async channelsFromDatabase(skus: readonly string[]): Promise<Map<string, ChannelAvailability[]>> {
    const channels = await loadChannels(this.pool);
    const stock = await loadChannelStock(this.pool, skus, channels);
    return new Map([...stock].map(([sku, units]) => [sku, byChannel([...units])]));
  }

  /** One row as the cache holds it (undefined when it has none or Redis is unreachable). */
  async rowOf(sku: string, warehouse: string): Promise<{ version: string; onHand: number; reserved: number; available: number } | undefined> {
    const row = (await this.fromRedis(() => this.writer.reader.rows([{ sku, warehouse }])))?.[0];
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
    const { skus: loaded, kits: kitSkus, components: inKits } = await loadSkusAndKits(this.pool, skus);
    const result = new Map<string, CachedStock>();
    const kits = await loadKitStock(this.pool, kitSkus);
    for (const [sku, { state }] of kits) {
      const { total, available, status, preorderUntil, unavailable } = state.totals;
      result.set(sku, {
        sku, total, available, status, lowStock: status === 'low_stock', preorderUntil, unavailable, source: 'database',
        warehouses: [...state.rows].map(([warehouse, row]) => ({ warehouse, available: row.available, version: row.version })),
      });
    }
    if (kits.size > 0 && writeBack && this.redis.status === 'ready') {
      const definitions = [...kits.values()].map((k) => k.definition);
      const components = await loadSkus(this.pool, [...new Set(definitions.flatMap((d) => d.components.map((c) => c.sku)))]);
      await writeWithKits(this.pool, this.writer, [...components.values()].flat(), definitions).catch(() => {});
    }
    const states = [...loaded.values()].flat();
    if (states.length === 0) return result;
    // Written back for the next reader; a Redis that fails meanwhile does not fail the answer.
    // (with the kits they are components of, recomputed from them)
    if (writeBack && this.redis.status === 'ready') {
      const definitions = inKits.length > 0 ? loadKitDefinitions(this.pool, { components: inKits }) : Promise.resolve([]);
      await definitions.then((found) => writeWithKits(this.pool, this.writer, states, found)).catch(() => {});
    }
    for (const [sku, rows] of loaded) {
      if (rows.length === 0) continue; // a product without stock rows has no keys: as unknown as before
      const { total, available, status, preorderUntil, unavailable } = skuTotals(rows);
      result.set(sku, {
        sku, total, available, status, lowStock: status === 'low_stock', preorderUntil, unavailable,
        warehouses: rows.map((r) => ({ warehouse: r.warehouse, available: r.available, version: r.version })), source: 'database',
      });
    }
    return result;
  }
}

/** Channel figures in channel-code order. */
function byChannel(entries: ReadonlyArray<readonly [string, number]>): ChannelAvailability[] {
  return entries.map(([channel, available]) => ({ channel, available })).sort((a, b) => (a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : 0));
}
