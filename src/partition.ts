// Partitions of the change stream: `stockroom start --listener --partition
// i/N` streams only the skus whose product falls in partition i of N, through
// a slot and publications of its own, into events streams and cache
// bookkeeping of its own. Which partition a product is in is decided here,
// once, as SQL over its id: the publications' row filters and the rebuild's
// reads use the same expression. Row filters may only use built-in immutable
// functions, so the hash is the last two bytes of the product's uuid (random
// in both v4 and v7 ids): stable, even, and computed by PostgreSQL alone.
import { ConfigError } from './errors.ts';

export interface Partition {
  /** 1-based. */
  index: number;
  count: number;
}

/** The most partitions: the hash has 65,536 values, and each partition is a slot and a walsender. */
export const MAX_PARTITIONS = 64;

/** "2/4" → { index: 2, count: 4 }; throws ConfigError naming `source` on anything else. */
export function parsePartition(text: string, source: string): Partition {
  const match = /^(\d{1,3})\/(\d{1,3})$/.exec(text.trim());
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (!match || count < 1 || count > MAX_PARTITIONS || index < 1 || index > count) {
    throw new ConfigError(`${source} must be i/N with 1 ≤ i ≤ N ≤ ${MAX_PARTITIONS}, like 1/2 (got ${JSON.stringify(text.slice(0, 40))})`);
  }
  return { index, count };
}

/** Text of a partition, as it appears in names: "p1of2". */
export function partitionTag(partition: Partition): string {
  return `p${partition.index}of${partition.count}`;
}

/** The SQL expression (0 … count-1) of the partition a product id is in; `column` is trusted SQL (a column name). */
export function partitionOfSql(column: string, count: number): string {
  return `((get_byte(uuid_send(${column}), 14) * 256 + get_byte(uuid_send(${column}), 15)) % ${count})`;
}

/** Whether a product id (uuid text) is in `partition`: partitionOfSql computed here, from the uuid's last two bytes. */
export function inPartition(productId: string, partition: Partition): boolean {
  return Number.parseInt(productId.slice(-4), 16) % partition.count === partition.index - 1;
}

/** SQL condition: the product id in `column` belongs to `partition`. */
export function inPartitionSql(column: string, partition: Partition): string {
  return `${partitionOfSql(column, partition.count)} = ${partition.index - 1}`;
}

/** Names of what one partition streams through: the base names with the partition's tag (the base names themselves without partitions). */
export function partitionNames(base: { slot: string; publication: string; stream: string }, partition: Partition | undefined):
  { slot: string; publication: string; ledgerPublication: string | undefined; stream: string } {
  if (!partition) return { ...base, ledgerPublication: undefined };
  const tag = partitionTag(partition);
  return {
    slot: `${base.slot}_${tag}`,
    publication: `${base.publication}_${tag}`,
    ledgerPublication: `${base.publication}_${tag}_ledger`,
    stream: `${base.stream}:${tag}`,
  };
}
