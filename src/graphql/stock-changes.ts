// The stockChanged subscription's source. The consumer NOTIFYs a sku's
// channel after applying a change to Redis, but any database role may NOTIFY
// any channel with any payload. So a notification is only a hint that a row
// changed: a subscriber receives the row as the cache holds it, and only when
// the cache holds the very version the notification names, for the sku whose
// channel it came on. A forged payload yields nothing, or figures that are
// true; a notification overtaken by a newer change is dropped (the newer one
// has its own notification).
import type { GrafastSubscriber } from 'postgraphile/grafast';
import { stockChannel } from '../db/channels.ts';

export interface StockChange { sku: string; warehouse: string; onHand: number; reserved: number; available: number; version: string }

/** The cache's row for a sku and warehouse, or undefined when it has none (or cannot be read). */
export type ReadCachedRow = (sku: string, warehouse: string) => Promise<Omit<StockChange, 'sku' | 'warehouse'> | undefined>;

/** The change a notification on `channel` announces, as the cache confirms it; undefined to drop it. */
export async function confirmedChange(channel: string, payload: unknown, readRow: ReadCachedRow): Promise<StockChange | undefined> {
  if (typeof payload !== 'string' || payload.length > 8000) return undefined; // NOTIFY payloads are under 8000 bytes
  let claimed: { sku?: unknown; warehouse?: unknown; version?: unknown };
  try {
    claimed = JSON.parse(payload) as typeof claimed;
  } catch {
    return undefined;
  }
  const { sku, warehouse, version } = claimed ?? {};
  if (typeof sku !== 'string' || typeof warehouse !== 'string' || typeof version !== 'string') return undefined;
  if (stockChannel(sku) !== channel) return undefined;
  const row = await readRow(sku, warehouse).catch(() => undefined);
  if (!row || row.version !== version) return undefined;
  return { sku, warehouse, ...row };
}

/**
 * A subscriber that yields confirmed changes only. Hand-rolled rather than an
 * async generator: ending a subscription must end the LISTEN at once, not
 * after the next notification.
 */
export function confirmedStockChanges(subscriber: GrafastSubscriber, readRow: ReadCachedRow): GrafastSubscriber {
  return {
    async subscribe(topic) {
      const channel = String(topic);
      const source = await subscriber.subscribe(topic);
      const iterator: AsyncIterableIterator<StockChange> = {
        async next() {
          for (;;) {
            const item = await source.next();
            if (item.done) return { done: true, value: undefined };
            const change = await confirmedChange(channel, item.value, readRow);
            if (change) return { done: false, value: change };
          }
        },
        async return() {
          await source.return?.();
          return { done: true, value: undefined };
        },
        [Symbol.asyncIterator]() {
          return iterator;
        },
      };
      return iterator;
    },
  };
}
