// CloudEvents 1.0 for ledger movements, as SPEC.md lists them: for every
// movement one warehouse.stock.updated and one typed event, plus
// warehouse.inventory.low_stock when the row's available crosses its
// low_stock_threshold downward. Event ids derive from the movement id, so
// downstream consumers can dedupe; stream entry ids derive from the commit
// LSN, so a replay after a crash appends nothing twice. Events published late
// from the ledger, for the gap a lost slot left (src/listener/backfill.ts),
// are built here too and carry the extension attribute "backfilled": true.
import { streamId, type Lsn } from './lsn.ts';
import { availableOf } from './row.ts';
import type { StreamEvent } from './writer.ts';

export interface Movement {
  id: number;
  sku: string;
  warehouse: string;
  kind: string;
  onHandDelta: number;
  reservedDelta: number;
  onHandAfter: number;
  reservedAfter: number;
  /** Units this movement added to (or, negative, took from) the row's backordered; 0 for most. */
  backorderedDelta: number;
  /** The row's backordered after it, when it changed (null otherwise). */
  backorderedAfter: number | null;
  /** Units this movement put into transit (TRANSIT_OUT) or took out of it (negative: TRANSIT_IN, TRANSIT_LOST); 0 for others. */
  transitDelta: number;
  reason: string | null;
  reservationId: string | null;
  reference: string | null;
  actor: string;
  occurredAt: Date;
}

/** A row of inventory.movements with its own column names, as the replication stream and a query both give it. */
export interface MovementRow {
  id: number | string | bigint;
  kind: string;
  on_hand_delta: number;
  reserved_delta: number;
  on_hand_after: number;
  reserved_after: number;
  backordered_delta: number;
  backordered_after: number | null;
  transit_delta: number;
  reason: string | null;
  reservation_id: string | null;
  reference: string | null;
  actor: string;
  occurred_at: Date;
}

/** The movement of a ledger row, its product and warehouse ids already turned into sku and code. */
export function movementFromRow(row: MovementRow, sku: string, warehouse: string): Movement {
  return {
    id: Number(row.id),
    sku,
    warehouse,
    kind: row.kind,
    onHandDelta: row.on_hand_delta,
    reservedDelta: row.reserved_delta,
    onHandAfter: row.on_hand_after,
    reservedAfter: row.reserved_after,
    backorderedDelta: row.backordered_delta ?? 0,
    backorderedAfter: row.backordered_after ?? null,
    transitDelta: row.transit_delta ?? 0,
    reason: row.reason,
    reservationId: row.reservation_id,
    reference: row.reference,
    actor: row.actor,
    occurredAt: row.occurred_at,
  };
}

/** The row's policy, which turns on_hand/reserved into available. */
export interface RowPolicy { safetyStock: number; lowStockThreshold: number }

export const EVENT_SOURCE = '/stockroom/inventory';

const TYPED: Record<string, string> = {
  RECEIVE: 'warehouse.stock.adjusted',
  ADJUST: 'warehouse.stock.adjusted',
  COUNT: 'warehouse.stock.adjusted',
  RESERVE: 'warehouse.stock.reserved',
  CONFIRM: 'warehouse.stock.confirmed',
  RELEASE: 'warehouse.stock.released',
  EXPIRE: 'warehouse.stock.released',
  TRANSFER_OUT: 'warehouse.stock.transferred',
  TRANSFER_IN: 'warehouse.stock.transferred',
  BACKORDER: 'warehouse.stock.backordered',
  FILL: 'warehouse.stock.backorder_filled',
  // Transfers in transit (README "Transfers in transit"): shipped, received, written off.
  TRANSIT_OUT: 'warehouse.stock.transit_shipped',
  TRANSIT_IN: 'warehouse.stock.transit_received',
  TRANSIT_LOST: 'warehouse.stock.transit_lost',
};


/** A CloudEvent as JSON text; `data` is passed serialized, so one movement's data is serialized once for all its events. */
function cloudEvent(type: string, id: string, subject: string, time: string, dataJson: string, backfilled: boolean): string {
  return `{"specversion":"1.0","id":${JSON.stringify(id)},"source":"${EVENT_SOURCE}","type":"${type}","subject":${JSON.stringify(subject)},"time":"${time}","datacontenttype":"application/json",${backfilled ? '"backfilled":true,' : ''}"data":${dataJson}}`;
}

/** What the slot-loss backfill reads back from a stream entry's CloudEvent: its time (ms) and whether it was backfilled. */
export function eventFacts(body: string): { time: number; backfilled: boolean } {
  const event = JSON.parse(body) as { time?: string; backfilled?: boolean };
  return { time: event.time ? Date.parse(event.time) : Number.NaN, backfilled: event.backfilled === true };
}

/**
 * The events of one movement. `commitLsn` and `firstIndex` place them in the
 * stream: the n-th event of a transaction gets id "<commit lsn>-<n>".
 * `backfilled` marks events published from the ledger after a slot loss (they
 * sit in the stream where the gap was found, not where their commit was).
 */
export function movementEvents(movement: Movement, policy: RowPolicy, commitLsn: Lsn, firstIndex: number, options: { backfilled?: boolean } = {}): StreamEvent[] {
  const backfilled = options.backfilled === true;
  const before = { on_hand: movement.onHandAfter - movement.onHandDelta, reserved: movement.reservedAfter - movement.reservedDelta };
  const after = { on_hand: movement.onHandAfter, reserved: movement.reservedAfter };
  const oldAvailable = availableOf(before.on_hand, before.reserved, policy.safetyStock);
  const newAvailable = availableOf(after.on_hand, after.reserved, policy.safetyStock);
  const subject = `${movement.sku}/${movement.warehouse}`;
  const data = {
    movement_id: movement.id,
    sku: movement.sku,
    warehouse: movement.warehouse,
    kind: movement.kind,
    reason: movement.reason,
    reference: movement.reference,
    reservation_id: movement.reservationId,
    actor: movement.actor,
    old: { ...before, available: oldAvailable },
    new: { ...after, available: newAvailable },
    // Only where the movement changed the row's backordered (BACKORDER, FILL,
    // a release cancelling waiting units): other events keep their shape.
    ...(movement.backorderedDelta !== 0 && movement.backorderedAfter !== null
      ? { backordered: { delta: movement.backorderedDelta, old: movement.backorderedAfter - movement.backorderedDelta, new: movement.backorderedAfter } }
      : {}),
    // Only on transit movements: the units the movement put into transit or
    // took out of it (a write-off changes no on_hand: this is its quantity).
    ...(movement.transitDelta !== 0 ? { transit: { delta: movement.transitDelta } } : {}),
  };
  const typed = TYPED[movement.kind] ?? 'warehouse.stock.adjusted';
  const events: StreamEvent[] = [
    { streamId: '', type: 'warehouse.stock.updated', id: `${movement.id}:updated`, subject, body: '' },
    { streamId: '', type: typed, id: `${movement.id}:${typed.split('.').pop()}`, subject, body: '' },
  ];
  const time = movement.occurredAt.toISOString();
  const dataJson = JSON.stringify(data);
  for (const event of events) event.body = cloudEvent(event.type, event.id, subject, time, dataJson, backfilled);
  const threshold = policy.lowStockThreshold;
  // A threshold of 0 means "no low-stock alert": running out is out_of_stock, not low.
  if (threshold > 0 && oldAvailable > threshold && newAvailable <= threshold) {
    const id = `${movement.id}:low_stock`;
    events.push({
      streamId: '', type: 'warehouse.inventory.low_stock', id, subject,
      body: cloudEvent('warehouse.inventory.low_stock', id, subject, time, JSON.stringify({
        movement_id: movement.id, sku: movement.sku, warehouse: movement.warehouse,
        available: newAvailable, low_stock_threshold: threshold, previous_available: oldAvailable,
      }), backfilled),
    });
  }
  for (const [i, event] of events.entries()) event.streamId = streamId(commitLsn, firstIndex + i);
  return events;
}
