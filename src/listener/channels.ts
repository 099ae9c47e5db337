// The sales channels and the warehouses each sells from, by id: what the
// consumer writes each sku's channels hash with (cache/channels.ts). Loaded
// with the catalog at the start of every session, then kept current by the
// inventory.channels and inventory.channel_warehouses changes of the stream
// itself (every partition's consumer streams all of them), so a batch is
// written with the channels as of its last transaction. A change to them
// touches no stock row, so the consumer then rewrites the channels hash of
// every sku it owns (consumer.ts).
import type pg from 'pg';
import type { ChannelList } from '../cache/channels.ts';

export class ChannelMap {
  private readonly codes = new Map<string, string>();
  private readonly warehouses = new Map<string, Set<string>>();
  /** The list as last made (list()), until a change. */
  private made: ChannelList | undefined;

  async load(client: Pick<pg.Pool, 'query'>): Promise<void> {
    const [channels, members] = await Promise.all([
      client.query<{ id: string; code: string }>('select id, code from inventory.channels'),
      client.query<{ channel_id: string; warehouse_id: string }>('select channel_id, warehouse_id from inventory.channel_warehouses'),
    ]);
    this.codes.clear();
    this.warehouses.clear();
    this.made = undefined;
    for (const c of channels.rows) this.setChannel(c.id, c.code);
    for (const m of members.rows) this.addWarehouse(m.channel_id, m.warehouse_id);
  }

  /** An inventory.channels row inserted or updated; whether that changed what the cache shows (a new code: not a new strategy). */
  setChannel(id: string, code: string): boolean {
    if (this.codes.get(id) === code) return false;
    this.codes.set(id, code);
    this.made = undefined;
    return true;
  }

  /** An inventory.channels row deleted (its channel_warehouses rows are deleted with it). */
  removeChannel(id: string): void {
    this.codes.delete(id);
    this.warehouses.delete(id);
    this.made = undefined;
  }

  /** An inventory.channel_warehouses row inserted or updated; whether that changed what the cache shows (not a new priority). */
  addWarehouse(channelId: string, warehouseId: string): boolean {
    let set = this.warehouses.get(channelId);
    if (!set) this.warehouses.set(channelId, set = new Set());
    if (set.has(warehouseId)) return false;
    set.add(warehouseId);
    this.made = undefined;
    return true;
  }

  /** An inventory.channel_warehouses row deleted. */
  removeWarehouse(channelId: string, warehouseId: string): void {
    this.warehouses.get(channelId)?.delete(warehouseId);
    this.made = undefined;
  }

  /** The channels by code, each with its warehouses' codes (codeOf: warehouse id → code). */
  list(codeOf: (warehouseId: string) => string): ChannelList {
    this.made ??= [...this.codes].map(([id, code]) => ({ code, warehouses: [...(this.warehouses.get(id) ?? [])].map(codeOf).sort() }))
      .sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0));
    return this.made;
  }
}
