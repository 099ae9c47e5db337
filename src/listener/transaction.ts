// One replicated transaction, decoded from pgoutput messages into what the
// cache needs: the final state of each stock row it touched, the events of
// each movement it wrote, and the kits to recompute (those of the components
// whose rows it touched, and those it defined or redefined).
import type { Pgoutput } from 'pg-logical-replication';
import { movementEvents, movementFromRow, type Movement, type MovementRow, type RowPolicy } from '../cache/events.ts';
import type { StreamEvent } from '../cache/writer.ts';
import { rowState, type BackorderPolicy, type RowState } from '../cache/row.ts';
import type { Catalog } from './catalog.ts';
import { parseLsn, type Lsn } from '../cache/lsn.ts';

export class ReplicatedTransaction {
  /** Start LSN of the commit record: unique per transaction and increasing in commit order. */
  readonly commitLsn: Lsn;
  /** Commit time in microseconds since the epoch. */
  readonly commitTimeMicros: bigint;
  private rows = new Map<string, RowState>();
  private events: StreamEvent[] = [];
  private movements: Array<{ movement: Movement; policy: RowPolicy }> = [];
  /** The latest policy of every row seen in the transaction, kept across chunks. */
  private readonly policies = new Map<string, RowPolicy>();
  private eventIndex = 0;
  /** Products whose stock rows changed, and kits whose definition changed, since the last drain. */
  private products = new Set<string>();
  private kits = new Set<string>();
  /** A channel or a channel's warehouses changed since the last drain. */
  private channelsChanged = false;
  private catalog: Catalog | undefined;
  changes = 0;

  /** Added to the commit LSN in stream entry ids (see CacheWriter.claimStream). */
  private readonly streamIdOffset: bigint;

  constructor(begin: Pgoutput.MessageBegin, streamIdOffset = 0n) {
    this.commitLsn = parseLsn(begin.commitLsn ?? '0/0');
    this.streamIdOffset = streamIdOffset;
    this.commitTimeMicros = begin.commitTime as bigint;
  }

  /** Takes one change message; catalog changes apply to the catalog at once. */
  accept(message: Pgoutput.Message, catalog: Catalog): void {
    this.catalog = catalog;
    if (message.tag === 'delete' && message.relation.schema === 'inventory' && message.relation.name === 'kit_components') {
      const key = message.key ?? message.old;
      if (key) {
        catalog.kits.removeComponent(key.kit_id, key.component_id);
        this.kits.add(key.kit_id);
      }
      return;
    }
    if (message.tag === 'delete' && message.relation.schema === 'inventory' && message.relation.name === 'channel_warehouses') {
      const key = message.key ?? message.old;
      if (key) catalog.channels.removeWarehouse(key.channel_id, key.warehouse_id);
      this.channelsChanged = true;
      return;
    }
    if (message.tag === 'delete' && message.relation.schema === 'inventory' && message.relation.name === 'channels') {
      const key = message.key ?? message.old;
      if (key) catalog.channels.removeChannel(key.id);
      this.channelsChanged = true;
      return;
    }
    if (message.tag !== 'insert' && message.tag !== 'update') return; // no other deletes or truncates reach the cache tables
    const { name, schema } = message.relation;
    if (schema !== 'inventory') return;
    const row = message.new;
    switch (name) {
      case 'kits':
        catalog.kits.setKit(row.product_id, String(row.version), row.low_stock_threshold as number);
        this.kits.add(row.product_id);
        break;
      case 'kit_components':
        catalog.kits.setComponent(row.kit_id, row.component_id, row.qty as number);
        this.kits.add(row.kit_id);
        break;
      case 'stock_levels': {
        if (catalog.kits.isKit(row.product_id)) break;
        const rowKey = `${row.product_id}/${row.warehouse_id}`;
        const onHand = row.on_hand as number;
        const reserved = row.reserved as number;
        const safetyStock = row.safety_stock as number;
        const unavailable = (row.unavailable as number | null) ?? 0;
        this.policies.set(rowKey, { safetyStock, lowStockThreshold: row.low_stock_threshold as number, unavailable });
        this.products.add(row.product_id);
        this.rows.set(rowKey, rowState({
          sku: catalog.sku(row.product_id),
          warehouse: catalog.code(row.warehouse_id),
          version: String(row.version),
          onHand, reserved, safetyStock, unavailable,
          lowStockThreshold: row.low_stock_threshold as number,
          backorderPolicy: row.backorder_policy as BackorderPolicy,
          backorderLimit: row.backorder_limit as number,
          backordered: row.backordered as number,
          preorderUntil: (row.preorder_until as Date | null) ?? null,
        }));
        this.changes++;
        break;
      }
      case 'movements':
        this.movements.push({
          // The policy in effect now: every SQL API path updates the row before writing its
          // movement, and a later set_policy in the same transaction must not rewrite history.
          policy: this.policies.get(`${row.product_id}/${row.warehouse_id}`) ?? { safetyStock: 0, lowStockThreshold: 0, unavailable: 0 },
          movement: movementFromRow(row as MovementRow, catalog.sku(row.product_id), catalog.code(row.warehouse_id)),
        });
        this.changes++;
        break;
      case 'products':
        catalog.setProduct(row.id, row.sku);
        break;
      case 'warehouses':
        catalog.setWarehouse(row.id, row.code);
        break;
      case 'channels':
        if (catalog.channels.setChannel(row.id, row.code)) this.channelsChanged = true;
        break;
      case 'channel_warehouses':
        if (catalog.channels.addWarehouse(row.channel_id, row.warehouse_id)) this.channelsChanged = true;
        break;
    }
  }

  /**
   * Hands over what has accumulated (a chunk of a large transaction, or all of
   * it at commit) and starts collecting afresh. Movement events are built here,
   * when the row changes of the same transaction have been seen.
   */
  drain(): { rows: RowState[]; events: StreamEvent[]; kits: Set<string>; channelsChanged: boolean } {
    for (const { movement, policy } of this.movements) {
      const events = movementEvents(movement, policy, this.commitLsn + this.streamIdOffset, this.eventIndex);
      this.eventIndex += events.length;
      this.events.push(...events);
    }
    // The kits to recompute, by id: the batch takes their definitions when it is cut (session.ts).
    const kits = this.kits;
    const catalog = this.catalog;
    if (catalog && catalog.kits.size > 0) {
      for (const product of this.products) for (const kit of catalog.kits.kitsOf(product) ?? []) kits.add(kit);
    }
    const drained = { rows: [...this.rows.values()], events: this.events, kits, channelsChanged: this.channelsChanged };
    this.channelsChanged = false;
    this.products = new Set();
    this.kits = new Set();
    this.rows = new Map();
    this.events = [];
    this.movements = [];
    this.changes = 0;
    return drained;
  }
}
