// Redis Cluster hash slots, for the cluster layout of the cache (keys.ts):
// which slot a key lands in (the CRC16 rule of the cluster spec, through the
// `cluster-key-slot` package ioredis itself routes with), a short hash tag for
// every one of the 16384 slots (so a script can name a key of its own in any
// slot, e.g. the slot's loss marker), and grouping work by slot (one script
// may only touch keys of one slot).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** CRC16 of the key's hash tag (the first non-empty `{…}`) or of the whole key, mod 16384. */
export const slotOf = require('cluster-key-slot') as (key: string) => number;

export const SLOT_COUNT = 16384;

let tags: string[] | undefined;

/**
 * A short string whose slot is `slot`: `{<tag>}` in a key puts the key there.
 * Found once by trying base-36 numbers in order (about 150,000 CRCs, a few ms).
 */
export function slotTag(slot: number): string {
  if (!tags) {
    const found: string[] = new Array(SLOT_COUNT);
    let missing = SLOT_COUNT;
    for (let n = 0; missing > 0; n++) {
      const candidate = n.toString(36);
      const s = slotOf(candidate);
      if (found[s] === undefined) {
        found[s] = candidate;
        missing--;
      }
    }
    tags = found;
  }
  return tags[slot]!;
}

/** Items grouped by the slot of their key, each group with the items' indexes in the input. */
export function groupBySlot<T>(items: readonly T[], keyOf: (item: T) => string): Array<{ slot: number; items: T[]; indexes: number[] }> {
  const groups = new Map<number, { slot: number; items: T[]; indexes: number[] }>();
  items.forEach((item, i) => {
    const slot = slotOf(keyOf(item));
    let group = groups.get(slot);
    if (!group) groups.set(slot, group = { slot, items: [], indexes: [] });
    group.items.push(item);
    group.indexes.push(i);
  });
  return [...groups.values()];
}
