// Stock rows read from PostgreSQL for the cache: the one place that knows
// which columns make a cache row and how they are named. Rebuild, verify,
// resync, cachedStock's fallback and incremental sync all read through here.
// Kits too: their definitions, and their stock as SQL states the kit rule
// (inventory._kit_rows). A kit's own stock rows (all zero: set_kit refuses a
// product holding stock) are never cache rows: its keys are its kit's.
import type pg from 'pg';
import { inPartitionSql, type Partition } from '../partition.ts';
import type { ChannelList } from './channels.ts';
import { kitMark, kitRow, kitTotals, rowState, type BackorderPolicy, type KitDefinition, type KitState, type RowState } from './row.ts';

type Queryable = Pick<pg.ClientBase, 'query'>;

interface Selected {
  sku: string; warehouse: string | null; version: string | null; on_hand: number; reserved: number;
  safety_stock: number; low_stock_threshold: number; unavailable: number;
  backorder_policy: BackorderPolicy; backorder_limit: number; backordered: number; preorder_until: Date | null;
}

/** The columns of a cache row, from inventory.stock_levels s, products p and warehouses w. */
export const CACHE_ROW_COLUMNS = `p.sku, w.code as warehouse, s.version::text as version, s.on_hand, s.reserved,
  s.safety_stock, s.low_stock_threshold, s.unavailable, s.backorder_policy, s.backorder_limit, s.backordered, s.preorder_until`;

export function toRowState(row: Selected): RowState {
  return rowState({
    sku: row.sku, warehouse: row.warehouse!, version: row.version!, onHand: row.on_hand, reserved: row.reserved,
    safetyStock: row.safety_stock, lowStockThreshold: row.low_stock_threshold, unavailable: row.unavailable,
    backorderPolicy: row.backorder_policy, backorderLimit: row.backorder_limit, backordered: row.backordered, preorderUntil: row.preorder_until,
  });
}

/** Groups selected rows by sku, in the order met; a product without stock rows (no warehouse) maps to []. */
function bySku(rows: readonly Selected[]): Map<string, RowState[]> {
  const grouped = new Map<string, RowState[]>();
  for (const row of rows) {
    const list = grouped.get(row.sku) ?? [];
    if (row.warehouse !== null) list.push(toRowState(row));
    grouped.set(row.sku, list);
  }
  return grouped;
}

/** Every stock row of these skus, by sku, warehouses in code order; a sku PostgreSQL does not know is absent. */
export async function loadSkus(db: Queryable, skus: readonly string[]): Promise<Map<string, RowState[]>> {
  return (await loadSkusAndKits(db, skus)).skus;
}

/**
 * loadSkus, and in the same query which of these skus are kits and which
 * are components of a kit (whose kits a writer of their rows recomputes):
 * a reader that writes back asks for the kits only when there are any.
 */
export async function loadSkusAndKits(db: Queryable, skus: readonly string[]):
  Promise<{ skus: Map<string, RowState[]>; kits: string[]; components: string[] }> {
  if (skus.length === 0) return { skus: new Map(), kits: [], components: [] };
  const { rows } = await db.query<Selected & { is_kit: boolean; in_kit: boolean }>(`
    select ${CACHE_ROW_COLUMNS}, p.is_kit,
           exists (select from inventory.kit_components c where c.component_id = p.id) as in_kit
    from inventory.products p
    left join inventory.stock_levels s on s.product_id = p.id and not p.is_kit
    left join inventory.warehouses w on w.id = s.warehouse_id
    where p.sku = any($1::text[])
    order by p.sku, w.code`, [skus]);
  return {
    skus: bySku(rows),
    kits: [...new Set(rows.filter((r) => r.is_kit).map((r) => r.sku))],
    components: [...new Set(rows.filter((r) => r.in_kit).map((r) => r.sku))],
  };
}

/**
 * One page of products in sku order, after `afterSku` ('' for the first),
 * each with its stock rows ([] for a product without any); `last` is the
 * sku to continue after, undefined when there is nothing more.
 */
export async function loadProductPage(db: Queryable, afterSku: string, limit: number, onlySku?: string, partition?: Partition):
  Promise<{ skus: Map<string, RowState[]>; kits: string[]; last: string | undefined }> {
  const { rows } = await db.query<Selected & { is_kit: boolean }>(`
    with page as (
      select id, sku, is_kit from inventory.products
      where sku > $1 and ($3::text is null or sku = $3) ${partition ? `and ${inPartitionSql('id', partition)}` : ''}
      order by sku limit $2)
    select ${CACHE_ROW_COLUMNS}, p.is_kit
    from page p
    left join inventory.stock_levels s on s.product_id = p.id and not p.is_kit
    left join inventory.warehouses w on w.id = s.warehouse_id
    order by p.sku, w.code`, [afterSku, limit, onlySku ?? null]);
  return { skus: bySku(rows.filter((r) => !r.is_kit)), kits: rows.filter((r) => r.is_kit).map((r) => r.sku), last: rows.at(-1)?.sku };
}

/** How many stock rows a full pass (or one sku's) reads, for progress. */
export async function countRows(db: Queryable, onlySku?: string, partition?: Partition): Promise<number> {
  const { rows } = await db.query<{ n: string }>(`
    select count(*) as n from inventory.stock_levels s join inventory.products p on p.id = s.product_id and not p.is_kit
    where ($1::text is null or p.sku = $1) ${partition ? `and ${inPartitionSql('s.product_id', partition)}` : ''}`, [onlySku ?? null]);
  return Number(rows[0]!.n);
}

/**
 * Kit definitions (row.ts), in kit sku order: the kits named, the kits
 * holding any of the components named, and (with a partition) the kits in it
 * or holding a component in it; every kit when no filter is given.
 */
export async function loadKitDefinitions(db: Queryable, filter: { kits?: readonly string[]; components?: readonly string[]; partition?: Partition } = {}):
  Promise<KitDefinition[]> {
  const conditions: string[] = [];
  const values: unknown[] = [];
  if (filter.kits) {
    values.push(filter.kits);
    conditions.push(`kp.sku = any($${values.length}::text[])`);
  }
  if (filter.components) {
    values.push(filter.components);
    conditions.push(`k.product_id in (select c2.kit_id from inventory.kit_components c2 join inventory.products p2 on p2.id = c2.component_id
      where p2.sku = any($${values.length}::text[]))`);
  }
  if (filter.partition) {
    conditions.push(`(${inPartitionSql('k.product_id', filter.partition)} or exists (select from inventory.kit_components c3
      where c3.kit_id = k.product_id and ${inPartitionSql('c3.component_id', filter.partition)}))`);
  }
  const { rows } = await db.query<{ kit: string; version: string; threshold: number; component: string; qty: number }>(`
    select kp.sku as kit, k.version::text as version, k.low_stock_threshold as threshold, cp.sku as component, c.qty
    from inventory.kits k
    join inventory.products kp on kp.id = k.product_id
    join inventory.kit_components c on c.kit_id = k.product_id
    join inventory.products cp on cp.id = c.component_id
    ${conditions.length ? `where ${conditions.join(' or ')}` : ''}
    order by kp.sku, cp.sku`, values);
  const kits = new Map<string, KitDefinition & { components: Array<{ sku: string; qty: number }> }>();
  for (const r of rows) {
    let kit = kits.get(r.kit);
    if (!kit) kits.set(r.kit, kit = { sku: r.kit, version: r.version, lowStockThreshold: r.threshold, components: [] });
    kit.components.push({ sku: r.component, qty: r.qty });
  }
  return [...kits.values()];
}

/** Every kit's definition by product ids, for the consumer's map of components to kits (listener/kits.ts). */
export async function loadKitGraph(db: Queryable): Promise<Array<{ kitId: string; version: string; lowStockThreshold: number; components: Array<{ id: string; qty: number }> }>> {
  const { rows } = await db.query<{ kit_id: string; version: string; threshold: number; components: Array<{ id: string; qty: number }> }>(`
    select k.product_id as kit_id, k.version::text as version, k.low_stock_threshold as threshold,
           coalesce(jsonb_agg(jsonb_build_object('id', c.component_id, 'qty', c.qty)) filter (where c.kit_id is not null), '[]') as components
    from inventory.kits k left join inventory.kit_components c on c.kit_id = k.product_id
    group by k.product_id`);
  return rows.map((r) => ({ kitId: r.kit_id, version: r.version, lowStockThreshold: r.threshold, components: r.components }));
}

/**
 * The kits among these skus as PostgreSQL computes them (inventory._kit_rows):
 * what the cache must hold for each, and the definition it is computed with.
 */
export async function loadKitStock(db: Queryable, skus: readonly string[]): Promise<Map<string, { state: KitState; definition: KitDefinition }>> {
  const result = new Map<string, { state: KitState; definition: KitDefinition }>();
  if (skus.length === 0) return result;
  const { rows } = await db.query<{ sku: string; warehouse: string | null; on_hand: number; available: number; version: string }>(`
    select p.sku, w.code as warehouse, r.on_hand, r.available, r.version::text as version
    from inventory.products p
    cross join lateral inventory._kit_rows(array[p.id]) r
    left join inventory.warehouses w on w.id = r.warehouse_id
    where p.sku = any($1::text[]) and p.is_kit
    order by p.sku, w.code nulls first`, [skus]);
  const definitions = new Map((await loadKitDefinitions(db, { kits: [...new Set(rows.map((r) => r.sku))] })).map((d) => [d.sku, d]));
  for (const r of rows) {
    const definition = definitions.get(r.sku);
    if (!definition) continue;
    let entry = result.get(r.sku);
    if (r.warehouse === null) {
      result.set(r.sku, entry = {
        definition, state: { rows: new Map(), totals: kitTotals(r.on_hand, r.available, definition.lowStockThreshold), mark: kitMark(definition.version, r.version) },
      });
    } else {
      entry!.state.rows.set(r.warehouse, kitRow(r.version, r.on_hand, r.available));
    }
  }
  return result;
}

/** Every sales channel with the codes of the warehouses it sells from (channels.ts), as PostgreSQL has them now. */
export async function loadChannels(db: Queryable): Promise<ChannelList> {
  const { rows } = await db.query<{ code: string; warehouses: string[] }>(`
    select c.code, coalesce(array_agg(w.code order by w.code collate "C") filter (where w.code is not null), '{}') as warehouses
    from inventory.channels c
    left join inventory.channel_warehouses cw on cw.channel_id = c.id
    left join inventory.warehouses w on w.id = cw.warehouse_id
    group by c.code
    order by c.code collate "C"`);
  return rows.map((r) => ({ code: r.code, warehouses: r.warehouses }));
}

/**
 * Availability per channel as PostgreSQL computes it (the total row of
 * inventory.channel_stock, kits by the kit rule): sku → channel code → units.
 * Verify compares the channels hashes of kits with this; cachedStock answers
 * with it when it answers from PostgreSQL.
 */
export async function loadChannelStock(db: Queryable, skus: readonly string[], channels: ChannelList): Promise<Map<string, Map<string, number>>> {
  const result = new Map(skus.map((sku) => [sku, new Map<string, number>()]));
  if (skus.length === 0 || channels.length === 0) return result;
  const { rows } = await db.query<{ sku: string; channel: string; available: number }>(`
    select s.sku, c.code as channel, s.available
    from unnest($2::text[]) c(code)
    cross join lateral inventory.channel_stock($1::text[], c.code) s
    where s.warehouse is null`, [skus, channels.map((c) => c.code)]);
  for (const r of rows) result.get(r.sku)?.set(r.channel, r.available);
  return result;
}
