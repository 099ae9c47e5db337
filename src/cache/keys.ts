// The Redis key layout, in one place. Plain values readable with GET, as
// SPEC.md says; the hash `stock:<sku>:rows` and the `meta:` keys are
// Stockroom's own bookkeeping.
//
// Two layouts (README, "Redis Cluster"):
// - single Redis (the default): `catalog:stock:SKU-1:total`, `catalog:meta:position`…
// - Redis Cluster: every key of one sku carries the sku as its hash tag, so
//   they share one slot and one script can write them all:
//   `catalog:stock:{SKU-1}:total`, `catalog:product:{SKU-1}`. A sku holding
//   a brace (which would cut the tag short, or leave it empty: `}X`) is
//   tagged with its hex instead, followed by the sku itself to keep the name
//   unique: `catalog:stock:{7d58}}X:total` (a brace-free sku's key has exactly
//   one `{`, these have more, so the two forms never meet). The `meta:` keys
//   carry the events stream's name as their tag (`catalog:meta:{stock-events}:position`),
//   so they share the stream's slot and one script appends events and moves
//   the position and the chain token together. Per slot, `meta:{<tag>}:slot`
//   (a hash) says whether the slot's data is whole (see writer.ts).
//
// A kit (row.ts, KitDefinition) has the same public keys as a stocked sku,
// and its rows hash holds one kit entry per warehouse; `stock:<kit>:kit` is
// its bookkeeping (the definition version and component versions it was
// computed from).
//
// A partitioned consumer (partition.ts) keeps its bookkeeping apart:
// `catalog:meta:p1of2:position` (in a cluster its stream's name, which
// carries the partition, is already the tag); the sku keys are shared, each
// sku being in exactly one partition.
import { partitionTag, type Partition } from '../partition.ts';
import { slotTag } from './slots.ts';

/**
 * The version of what the keys hold, carried by the source marker
 * (`meta:source`): a consumer that finds a cache of its database written by
 * an earlier layout rebuilds it in place on start (README, "Upgrading").
 * 2: rows entries and sums with backorder room, preorder date and units in
 * quantity states, and the preorder_until and unavailable keys.
 * 3: the channels hash (availability per sales channel, channels.ts).
 */
export const CACHE_LAYOUT = 3;

/** The source marker of a cache of this source (system identifier/database/slot) in today's layout. */
export function sourceMarker(identity: string): string {
  return `${identity}#layout${CACHE_LAYOUT}`;
}

/** Whether a source marker is this source's in an earlier layout (one written before layouts were marked has none). */
export function earlierLayoutOf(marker: string | undefined, identity: string): boolean {
  return marker !== undefined && marker !== sourceMarker(identity) && marker.replace(/#layout\d+$/, '') === identity;
}

export interface CacheKeys {
  prefix: string;
  /** The Redis Cluster layout (hash tags), else the single-Redis one. */
  cluster: boolean;
  /** Available units of one sku in one warehouse. */
  warehouse(sku: string, code: string): string;
  /** Σ on_hand of a sku. */
  total(sku: string): string;
  /** Σ available of a sku. */
  available(sku: string): string;
  /** in_stock | low_stock | out_of_stock | backorder | preorder (row.ts, stockStatus). */
  status(sku: string): string;
  /** 1 when status is low_stock, else 0. */
  lowStock(sku: string): string;
  /** The product document other services cache; deleted on every change. */
  product(sku: string): string;
  /** ISO 8601 time the earliest preorder with room ends; absent unless the sku takes preorders (row.ts, SkuTotals.preorderUntil). */
  preorderUntil(sku: string): string;
  /** Σ on-hand units in quantity states (damaged, quality control…): on hand, not available (row.ts, SkuTotals.unavailable). */
  unavailable(sku: string): string;
  /** Hash channel code → units available through that channel (channels.ts); absent while no writer knew the channels. */
  channels(sku: string): string;
  /** Hash code → "version:on_hand:reserved:available:low_stock_threshold:room:preorder_until" (row.ts), the version guard and the source of the totals. */
  rows(sku: string): string;
  /** The sums the sku's keys were last written from (row.ts, SkuSums). */
  sums(sku: string): string;
  /** A kit's bookkeeping: "definition version:Σ component row versions" its keys were last computed from (row.ts, KitState.mark). */
  kit(sku: string): string;
  /** One sku's keys in the order the scripts take them: rows, total, available, status, low_stock, product, sums, preorder_until, unavailable, channels. */
  skuKeys(sku: string): string[];
  /** A kit's keys in the order the scripts take them: skuKeys, then kit. */
  kitKeys(sku: string): string[];
  /** Commit LSN of the last change applied. */
  position: string;
  /** Token of the last batch the consumer applied whole: the batch sent behind it checks it (scripts.ts, APPLY). */
  applyChain: string;
  /** The channels (channels.ts, channelsArgument) every channels hash of the consumer's skus was last rewritten with. */
  channelsWritten: string;
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
  /** Cluster only: a hash in `slot` ("whole" once a rebuild covered the slot, and the tokens of rebuilds under way). */
  slotState(slot: number): string;
}

/** The sku as its keys carry it in a cluster: `{SKU-1}`, or `{<hex>}<sku>` for a sku holding a brace (skus are never empty). */
function taggedSku(sku: string): string {
  return /[{}]/.test(sku) ? `{${Buffer.from(sku, 'utf8').toString('hex')}}${sku}` : `{${sku}}`;
}

/**
 * cluster: the Redis Cluster layout, with the events stream's name as the tag
 * of the meta keys (config.ts keeps braces out of the prefix and stream name).
 * partition: the bookkeeping of one partition's consumer.
 */
export function cacheKeys(prefix: string, options: { cluster?: { stream: string }; partition?: Partition } = {}): CacheKeys {
  const { cluster, partition } = options;
  const sku = cluster ? taggedSku : (name: string) => name;
  const stock = (name: string) => `${prefix}stock:${sku(name)}`;
  const meta = cluster ? `${prefix}meta:{${cluster.stream}}:` : partition ? `${prefix}meta:${partitionTag(partition)}:` : `${prefix}meta:`;
  const keys: CacheKeys = {
    prefix,
    cluster: cluster !== undefined,
    warehouse: (sku, code) => `${stock(sku)}:warehouse:${code}`,
    total: (sku) => `${stock(sku)}:total`,
    available: (sku) => `${stock(sku)}:available`,
    status: (sku) => `${stock(sku)}:status`,
    lowStock: (sku) => `${stock(sku)}:low_stock`,
    product: (name) => `${prefix}product:${sku(name)}`,
    rows: (sku) => `${stock(sku)}:rows`,
    sums: (sku) => `${stock(sku)}:sums`,
    preorderUntil: (sku) => `${stock(sku)}:preorder_until`,
    unavailable: (sku) => `${stock(sku)}:unavailable`,
    channels: (sku) => `${stock(sku)}:channels`,
    kit: (sku) => `${stock(sku)}:kit`,
    skuKeys: (sku) => [keys.rows(sku), keys.total(sku), keys.available(sku), keys.status(sku), keys.lowStock(sku), keys.product(sku), keys.sums(sku), keys.preorderUntil(sku), keys.unavailable(sku), keys.channels(sku)],
    kitKeys: (sku) => [...keys.skuKeys(sku), keys.kit(sku)],
    position: `${meta}position`,
    applyChain: `${meta}apply_chain`,
    source: `${meta}source`,
    channelsWritten: `${meta}channels`,
    streamOffset: `${meta}stream_offset`,
    rebuilds: `${meta}rebuilds`,
    slotCreated: `${meta}slot_created`,
    slotLoss: `${meta}slot_loss`,
    slotRecovery: `${meta}slot_recovery`,
    slotState: (slot) => `${prefix}meta:{${slotTag(slot)}}:slot`,
  };
  return keys;
}
