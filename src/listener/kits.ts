// Which kits each component is in, and each kit's definition, by product id:
// what the consumer needs to know which kits a batch must recompute (the kits
// of every component whose stock row it changed, and every kit whose
// definition it changed) and with which definition. Loaded with the catalog at
// the start of every session, then kept current by the inventory.kits and
// inventory.kit_components changes of the stream itself (every partition's
// consumer streams all of them: a kit and its components may be in different
// partitions). A definition is taken at the end of each transaction, so a
// batch recomputes a kit with the definition as of its last transaction; the
// cache refuses a definition older than one it already used (row.ts,
// KitDefinition), which covers a replay after a restart (the map is loaded as
// PostgreSQL has it now, then the stream replays older changes over it: each
// of those carries set_kit's older version, and the map is whole again once
// the replay reaches the newest set_kit).
import type pg from 'pg';
import { loadKitGraph } from '../cache/loader.ts';
import type { KitDefinition } from '../cache/row.ts';

interface Kit { version: string; lowStockThreshold: number; components: Map<string, number> }

export class KitMap {
  private readonly kits = new Map<string, Kit>();
  private readonly kitsOfComponent = new Map<string, Set<string>>();

  async load(client: Pick<pg.Pool, 'query'>): Promise<void> {
    const graph = await loadKitGraph(client);
    this.kits.clear();
    this.kitsOfComponent.clear();
    for (const kit of graph) {
      this.setKit(kit.kitId, kit.version, kit.lowStockThreshold);
      for (const c of kit.components) this.setComponent(kit.kitId, c.id, c.qty);
    }
  }

  get size(): number {
    return this.kits.size;
  }

  private kit(kitId: string): Kit {
    let kit = this.kits.get(kitId);
    if (!kit) this.kits.set(kitId, kit = { version: '0', lowStockThreshold: 0, components: new Map() });
    return kit;
  }

  /** An inventory.kits row (insert or update). */
  setKit(kitId: string, version: string, lowStockThreshold: number): void {
    const kit = this.kit(kitId);
    kit.version = version;
    kit.lowStockThreshold = lowStockThreshold;
  }

  /** An inventory.kit_components row inserted or updated. */
  setComponent(kitId: string, componentId: string, qty: number): void {
    this.kit(kitId).components.set(componentId, qty);
    let kits = this.kitsOfComponent.get(componentId);
    if (!kits) this.kitsOfComponent.set(componentId, kits = new Set());
    kits.add(kitId);
  }

  /** An inventory.kit_components row deleted. */
  removeComponent(kitId: string, componentId: string): void {
    this.kits.get(kitId)?.components.delete(componentId);
    this.kitsOfComponent.get(componentId)?.delete(kitId);
  }

  /** A kit (its own stock rows, all zero and frozen by set_kit, are never cache rows: its keys are the kit's). */
  isKit(productId: string): boolean {
    return this.kits.has(productId);
  }

  /** Kit ids a product is a component of (none for most). */
  kitsOf(productId: string): ReadonlySet<string> | undefined {
    return this.kitsOfComponent.get(productId);
  }

  /** Every kit's id. */
  ids(): IterableIterator<string> {
    return this.kits.keys();
  }

  /** A kit's definition with skus, or undefined when it has no components (yet). */
  definition(kitId: string, skuOf: (productId: string) => string): KitDefinition | undefined {
    const kit = this.kits.get(kitId);
    if (!kit || kit.components.size === 0) return undefined;
    return {
      sku: skuOf(kitId), version: kit.version, lowStockThreshold: kit.lowStockThreshold,
      components: [...kit.components].map(([id, qty]) => ({ sku: skuOf(id), qty })),
    };
  }
}
