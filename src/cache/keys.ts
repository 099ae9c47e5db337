// The Redis key layout, in one place. Plain values readable with GET, as
// SPEC.md says; the hash `stock:{sku}:rows` and the `meta:` keys are
// Stockroom's own bookkeeping.
export interface CacheKeys {
  prefix: string;
  /** Available units of one sku in one warehouse. */
  warehouse(sku: string, code: string): string;
  /** Σ on_hand of a sku. */
  total(sku: string): string;
  /** Σ available of a sku. */
  available(sku: string): string;
  /** in_stock | low_stock | out_of_stock. */
  status(sku: string): string;
  /** 1 when status is low_stock, else 0. */
  lowStock(sku: string): string;
  /** The product document other services cache; deleted on every change. */
  product(sku: string): string;
  /** Hash code → "version:on_hand:reserved:available:low_stock_threshold", the version guard and the source of the totals. */
  rows(sku: string): string;
  /** Commit LSN of the last change applied. */
  position: string;
  /** Which database and slot this cache mirrors (system identifier, database, slot). */
  source: string;
  /** Token of the rebuild under way; gone if Redis lost its data meanwhile. */
  rebuilding: string;
  /** Added to commit LSNs to make stream entry ids, so they stay above entries of an earlier source. */
  streamOffset: string;
  /** JSON: when the slot the cache streams from was created, and why (first start, or a slot loss). */
  slotCreated: string;
  /** JSON: the last loss of the slot (dropped or invalidated) and the events backfilled from the ledger for its gap. */
  slotLoss: string;
  /** Token of the consumer recovering from a slot loss; expires unless renewed, so a crashed one lets another take over. */
  slotRecovery: string;
}

export function cacheKeys(prefix: string): CacheKeys {
  const stock = (sku: string) => `${prefix}stock:${sku}`;
  return {
    prefix,
    warehouse: (sku, code) => `${stock(sku)}:warehouse:${code}`,
    total: (sku) => `${stock(sku)}:total`,
    available: (sku) => `${stock(sku)}:available`,
    status: (sku) => `${stock(sku)}:status`,
    lowStock: (sku) => `${stock(sku)}:low_stock`,
    product: (sku) => `${prefix}product:${sku}`,
    rows: (sku) => `${stock(sku)}:rows`,
    position: `${prefix}meta:position`,
    source: `${prefix}meta:source`,
    streamOffset: `${prefix}meta:stream_offset`,
    rebuilding: `${prefix}meta:rebuilding`,
    slotCreated: `${prefix}meta:slot_created`,
    slotLoss: `${prefix}meta:slot_loss`,
    slotRecovery: `${prefix}meta:slot_recovery`,
  };
}

export type StockStatus = 'in_stock' | 'low_stock' | 'out_of_stock';

/** SPEC.md: out_of_stock at Σ available 0, low_stock at or below Σ thresholds, else in_stock. */
export function stockStatus(available: number, threshold: number): StockStatus {
  if (available <= 0) return 'out_of_stock';
  return available <= threshold ? 'low_stock' : 'in_stock';
}
