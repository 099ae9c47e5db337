// Product and warehouse ids → sku and warehouse code. Stock rows and
// movements arrive with ids; the cache is keyed by sku and code. Loaded once
// per session, then kept current by the products and warehouses changes in
// the stream itself (a product is always inserted before, or in the same
// transaction as, the first stock row that names it).
// The kits (kits.ts) and the sales channels (channels.ts) are loaded and kept
// current the same way.
import type pg from 'pg';
import type { ChannelList } from '../cache/channels.ts';
import { inPartition, type Partition } from '../partition.ts';
import { ChannelMap } from './channels.ts';
import { KitMap } from './kits.ts';

export class Catalog {
  private readonly skus = new Map<string, string>();
  private readonly codes = new Map<string, string>();
  readonly kits = new KitMap();
  readonly channels = new ChannelMap();

  async load(client: Pick<pg.Pool, 'query'>): Promise<void> {
    const [products, warehouses] = await Promise.all([
      client.query<{ id: string; sku: string }>('select id, sku from inventory.products'),
      client.query<{ id: string; code: string }>('select id, code from inventory.warehouses'),
      this.kits.load(client),
      this.channels.load(client),
    ]);
    this.skus.clear();
    this.codes.clear();
    for (const p of products.rows) this.skus.set(p.id, p.sku);
    for (const w of warehouses.rows) this.codes.set(w.id, w.code);
  }

  setProduct(id: string, sku: string): void {
    this.skus.set(id, sku);
  }

  setWarehouse(id: string, code: string): void {
    this.codes.set(id, code);
  }

  /** Every channel with its warehouses' codes. */
  channelList(): ChannelList {
    return this.channels.list((warehouseId) => this.code(warehouseId));
  }

  /** Skus of the stocked products (not kits) in a partition (every one without). */
  stockedSkus(partition: Partition | undefined): string[] {
    const skus: string[] = [];
    for (const [id, sku] of this.skus) {
      if (!this.kits.isKit(id) && (!partition || inPartition(id, partition))) skus.push(sku);
    }
    return skus;
  }

  sku(productId: string): string {
    const sku = this.skus.get(productId);
    if (sku === undefined) throw new Error(`stream names product ${productId}, which the catalog does not know`);
    return sku;
  }

  code(warehouseId: string): string {
    const code = this.codes.get(warehouseId);
    if (code === undefined) throw new Error(`stream names warehouse ${warehouseId}, which the catalog does not know`);
    return code;
  }
}
