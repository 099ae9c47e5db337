// The Redis key layout, in one place. Plain values readable with GET, as
// SPEC.md says; the hash `stock:{sku}:rows` and the `meta:` keys are
// Stockroom's own bookkeeping.
import { partitionTag, type Partition } from '../partition.ts';

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
  /** Hash code → "version:on_hand:reserved:available:low_stock_threshold" (row.ts), the version guard and the source of the totals. */
  rows(sku: string): string;
  /** "Σ on_hand:Σ available:Σ low_stock_threshold" the sku's keys were last written from (row.ts, SkuTotals.sums). */
  sums(sku: string): string;
  /** One sku's keys in the order the scripts take them: rows, total, available, status, low_stock, product, sums. */
  skuKeys(sku: string): string[];
  /** Commit LSN of the last change applied. */
  position: string;
  /** Token of the last batch the consumer applied whole: the batch sent behind it checks it (scripts.ts, APPLY). */
  applyChain: string;
  /** Which database and slot this cache mirrors (system identifier, database, slot). */
  source: string;
  /** Hash of the rebuilds under way (token → start time); a token gone means Redis lost its data meanwhile. */
  rebuilds: string;
  /** Added to commit LSNs to make stream entry ids, so they stay above entries of an earlier source. */
  streamOffset: string;
  /** JSON: when the slot the cache streams from was created, and why (first start, or a slot loss). */
  slotCreated: string;
  /** JSON: the last loss of the slot (dropped or invalidated) and the events backfilled from the ledger for its gap. */
  slotLoss: string;
  /** Token of the consumer recovering from a slot loss; expires unless renewed, so a crashed one lets another take over. */
  slotRecovery: string;
}

/**
 * partition: the bookkeeping of one partition's consumer (meta:p1of2:position…);
 * the sku keys are shared, each sku being in exactly one partition.
 */
export function cacheKeys(prefix: string, partition?: Partition): CacheKeys {
  const stock = (sku: string) => `${prefix}stock:${sku}`;
  const meta = partition ? `${prefix}meta:${partitionTag(partition)}:` : `${prefix}meta:`;
  const keys: CacheKeys = {
    prefix,
    warehouse: (sku, code) => `${stock(sku)}:warehouse:${code}`,
    total: (sku) => `${stock(sku)}:total`,
    available: (sku) => `${stock(sku)}:available`,
    status: (sku) => `${stock(sku)}:status`,
    lowStock: (sku) => `${stock(sku)}:low_stock`,
    product: (sku) => `${prefix}product:${sku}`,
    rows: (sku) => `${stock(sku)}:rows`,
    sums: (sku) => `${stock(sku)}:sums`,
    skuKeys: (sku) => [keys.rows(sku), keys.total(sku), keys.available(sku), keys.status(sku), keys.lowStock(sku), keys.product(sku), keys.sums(sku)],
    position: `${meta}position`,
    applyChain: `${meta}apply_chain`,
    source: `${meta}source`,
    streamOffset: `${meta}stream_offset`,
    rebuilds: `${meta}rebuilds`,
    slotCreated: `${meta}slot_created`,
    slotLoss: `${meta}slot_loss`,
    slotRecovery: `${meta}slot_recovery`,
  };
  return keys;
}
