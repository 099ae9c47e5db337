// The events of a lost slot's gap, published late from the ledger.
//
// When the slot is dropped or invalidated, PostgreSQL no longer holds the WAL
// between the cache's position and the new slot's consistent point: the cache
// is rebuilt exactly from the new slot's exported snapshot, but the movements
// committed in that gap never came through the stream. The ledger still has
// every one of them, so the consumer publishes their events itself, reading in
// the same exported snapshot (everything committed before the new slot's
// consistent point is visible, everything after it will stream), before
// streaming resumes.
//
// Which movements lack events is decided against the stream itself:
//   - the window: movements with occurred_at at or after the time of the
//     newest event in the stream less a margin (occurred_at is a movement's
//     transaction start, and a transaction that committed in the gap started
//     at most `margin` before it committed, hence after the newest event's
//     time less the margin). The window never starts before the lost slot was
//     created (movements before that were in its first snapshot, which gives
//     no events), nor, when the stream was trimmed, before its oldest retained
//     event (older events cannot be checked, so older movements are left alone);
//   - the tail: the stream read backwards far enough to hold every event of a
//     movement in the window (down to an event streamed from a commit older
//     than the window); a movement whose `<id>:updated` is there was published;
//   - the rest of the window is the gap, published in movement id order
//     through CacheWriter.apply, with movementEvents() (the one event builder)
//     and the row's policy as the snapshot has it (the ledger does not record
//     the policy in effect at the time: a set_policy in the gap can change the
//     available figures and low_stock events of the gap's movements).
// Backfilled events carry "backfilled": true and get stream ids just below the
// new slot's consistent point ((consistent point - 1 + offset)-n), so they sort
// after everything in the stream and before anything the new slot streams.
// Running it again (a crash mid-way: the consumer redoes the recovery with yet
// another slot and snapshot) finds what it already published in the tail and
// publishes only the rest; the apply script refuses any id at or below the
// stream's top, which the backfill takes for "someone else writes here" and
// stops (the recovery then starts over, and the tail check sorts it out).
// Assumptions, stated: a transaction that writes movements stays open less than
// the margin (10 minutes by default); the stream holds only this database's
// events within the window (a cache taken over from another database keeps the
// old stream, whose movement ids could shadow this one's for a margin's time).
import { inPartitionSql, type Partition } from '../partition.ts';
import pg from 'pg';
import { eventFacts, movementEvents, movementFromRow, type MovementRow } from '../cache/events.ts';
import type { CacheWriter, SlotCreatedRecord, StreamEvent } from '../cache/writer.ts';
import type { Lsn } from '../cache/lsn.ts';

/** The default margin: the longest a transaction writing movements is assumed to stay open. */
export const DEFAULT_BACKFILL_MARGIN_MS = 10 * 60_000;

export interface GapWindow {
  /** Movements with occurred_at at or after this are candidates; undefined when nothing tells where the gap began. */
  from: Date | undefined;
  basis: string;
}

/** Where the gap can begin, from the stream (read before anything is backfilled) and the lost slot's creation. */
export async function gapWindow(writer: CacheWriter, lostSlot: SlotCreatedRecord | undefined, marginMs: number): Promise<GapWindow> {
  const { newest, oldest, trimmed } = await writer.streamEnds();
  const created = lostSlot ? Date.parse(lostSlot.at) : Number.NaN;
  const newestTime = newest ? eventFacts(newest.body).time : Number.NaN;
  if (Number.isNaN(newestTime)) {
    return Number.isNaN(created)
      ? { from: undefined, basis: 'the events stream is empty and the creation of the lost slot is not recorded' }
      : { from: new Date(created), basis: `the events stream is empty: every movement since the lost slot was created (${lostSlot!.at})` };
  }
  let from = newestTime - marginMs;
  let basis = `the newest event in the stream (${new Date(newestTime).toISOString()}) less ${marginMs / 1000} s`;
  if (!Number.isNaN(created) && created > from) {
    from = created;
    basis = `the creation of the lost slot (${lostSlot!.at}); the newest event is from ${new Date(newestTime).toISOString()}`;
  }
  const oldestTime = oldest ? eventFacts(oldest.body).time : Number.NaN;
  if (trimmed && !Number.isNaN(oldestTime) && oldestTime > from) {
    from = oldestTime;
    basis = `the oldest event the trimmed stream retains (${new Date(oldestTime).toISOString()})`;
  }
  return { from: new Date(from), basis };
}

/**
 * Movement ids whose warehouse.stock.updated is in the stream, for every
 * movement with occurred_at at or after `from`: the tail is read down to an
 * event that was streamed (not backfilled) from a transaction that started
 * more than `marginMs` before `from`, so committed before it; every entry
 * below that one committed earlier still. (A backfilled entry sits where its
 * gap was found, not where it committed, so it does not end the read; its
 * movement committed before that earlier recovery, before the window.)
 */
export async function publishedMovements(writer: CacheWriter, from: Date, marginMs: number): Promise<{ ids: Set<number>; read: number }> {
  const ids = new Set<number>();
  const stopBelow = from.getTime() - marginMs;
  let read = 0;
  for await (const entry of writer.streamTail()) {
    read++;
    const colon = entry.eventId.indexOf(':');
    if (entry.eventId.slice(colon + 1) === 'updated') ids.add(Number(entry.eventId.slice(0, colon)));
    const facts = eventFacts(entry.body);
    if (!facts.backfilled && facts.time < stopBelow) break;
  }
  return { ids, read };
}

export interface BackfillOptions {
  databaseUrl: string;
  /** The new slot's exported snapshot. */
  snapshotName: string;
  writer: CacheWriter;
  from: Date;
  /** Movements already published (publishedMovements). */
  published: Set<number>;
  /** Stream ids are "<base>-<n>": the new slot's consistent point - 1, plus the stream offset. */
  baseStreamLsn: Lsn;
  /** Only movements of this partition's products (a partitioned consumer publishes its share). */
  partition?: Partition;
  /** Ledger ids read (and so at most movements published) per batch. */
  batchMovements?: number;
  /** Called before each batch is written; throws to stop (the recovery lost its lease, or the consumer is stopping). */
  beforeBatch?: () => void;
  /** Told each batch once Redis holds it. */
  onBatch?: (batch: { movements: number; events: StreamEvent[] }) => Promise<void> | void;
}

export interface BackfillResult { candidates: number; movements: number; events: number }

interface CandidateRow extends MovementRow { sku: string; code: string; safety_stock: number; low_stock_threshold: number }

/** Publishes the events of every movement in the window that the stream does not have, in id order. */
export async function backfillGap(options: BackfillOptions): Promise<BackfillResult> {
  const perBatch = options.batchMovements ?? 500;
  const client = new pg.Client({ connectionString: options.databaseUrl, application_name: 'stockroom slot-loss backfill' });
  client.on('error', () => {});
  await client.connect();
  const result: BackfillResult = { candidates: 0, movements: 0, events: 0 };
  try {
    await client.query('begin isolation level repeatable read read only');
    await client.query(`set transaction snapshot ${pg.escapeLiteral(options.snapshotName)}`);
    // The BRIN index on occurred_at finds where the window starts; from there the ledger is read in
    // ranges of ids (primary key range scans, whatever the planner thinks of the window).
    const { rows: [bounds] } = await client.query<{ first: string | null; last: string | null }>(
      'select (select min(id) from inventory.movements where occurred_at >= $1)::text as first, (select max(id) from inventory.movements)::text as last',
      [options.from]);
    const last = bounds?.last == null ? 0n : BigInt(bounds.last);
    let index = 0;
    for (let low = bounds?.first == null ? last + 1n : BigInt(bounds.first); low <= last; low += BigInt(perBatch)) {
      const { rows } = await client.query<CandidateRow>(`
        select m.id::text as id, m.kind, m.on_hand_delta, m.reserved_delta, m.on_hand_after, m.reserved_after,
               m.backordered_delta, m.backordered_after, m.transit_delta, m.reason,
               m.reservation_id, m.reference, m.actor, m.occurred_at, p.sku, w.code, s.safety_stock, s.low_stock_threshold
        from inventory.movements m
        join inventory.products p on p.id = m.product_id
        join inventory.warehouses w on w.id = m.warehouse_id
        join inventory.stock_levels s on s.product_id = m.product_id and s.warehouse_id = m.warehouse_id
        where m.id >= $1 and m.id < $2 and m.occurred_at >= $3
          ${options.partition ? `and ${inPartitionSql('m.product_id', options.partition)}` : ''}
        order by m.id`, [low.toString(), (low + BigInt(perBatch)).toString(), options.from]);
      result.candidates += rows.length;
      const events: StreamEvent[] = [];
      let movements = 0;
      for (const row of rows) {
        if (options.published.has(Number(row.id))) continue;
        // The policy the row has in the snapshot: the ledger does not record the one in effect at the movement.
        const built = movementEvents(movementFromRow(row, row.sku, row.code),
          { safetyStock: row.safety_stock, lowStockThreshold: row.low_stock_threshold }, options.baseStreamLsn, index, { backfilled: true });
        index += built.length;
        events.push(...built);
        movements++;
      }
      if (events.length === 0) continue;
      options.beforeBatch?.();
      const applied = await options.writer.apply([], events);
      if (applied.duplicates > 0) {
        throw new Error(`the events stream already has entries above the backfill's ids (${applied.duplicates} refused): another writer is at work; starting the recovery over`);
      }
      result.movements += movements;
      result.events += events.length;
      await options.onBatch?.({ movements, events });
    }
    await client.query('commit');
  } finally {
    await client.end().catch(() => {});
  }
  return result;
}
