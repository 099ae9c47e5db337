// Stock rows read from PostgreSQL for the cache: the one place that knows
// which columns make a cache row and how they are named. Rebuild, verify,
// resync, cachedStock's fallback and incremental sync all read through here.
import type pg from 'pg';
import { inPartitionSql, type Partition } from '../partition.ts';
import { rowState, type RowState } from './row.ts';

type Queryable = Pick<pg.ClientBase, 'query'>;

interface Selected {
  sku: string; warehouse: string | null; version: string | null; on_hand: number; reserved: number;
  safety_stock: number; low_stock_threshold: number;
}

/** The columns of a cache row, from inventory.stock_levels s, products p and warehouses w. */
export const CACHE_ROW_COLUMNS = `p.sku, w.code as warehouse, s.version::text as version, s.on_hand, s.reserved,
  s.safety_stock, s.low_stock_threshold`;

export function toRowState(row: Selected): RowState {
  return rowState({
    sku: row.sku, warehouse: row.warehouse!, version: row.version!, onHand: row.on_hand, reserved: row.reserved,
    safetyStock: row.safety_stock, lowStockThreshold: row.low_stock_threshold,
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
  if (skus.length === 0) return new Map();
  const { rows } = await db.query<Selected>(`
    select ${CACHE_ROW_COLUMNS}
    from inventory.products p
    left join inventory.stock_levels s on s.product_id = p.id
    left join inventory.warehouses w on w.id = s.warehouse_id
    where p.sku = any($1::text[])
    order by p.sku, w.code`, [skus]);
  return bySku(rows);
}

/**
 * One page of products in sku order, after `afterSku` ('' for the first),
 * each with its stock rows ([] for a product without any); `last` is the
 * sku to continue after, undefined when there is nothing more.
 */
export async function loadProductPage(db: Queryable, afterSku: string, limit: number, onlySku?: string, partition?: Partition):
  Promise<{ skus: Map<string, RowState[]>; last: string | undefined }> {
  const { rows } = await db.query<Selected>(`
    with page as (
      select id, sku from inventory.products
      where sku > $1 and ($3::text is null or sku = $3) ${partition ? `and ${inPartitionSql('id', partition)}` : ''}
      order by sku limit $2)
    select ${CACHE_ROW_COLUMNS}
    from page p
    left join inventory.stock_levels s on s.product_id = p.id
    left join inventory.warehouses w on w.id = s.warehouse_id
    order by p.sku, w.code`, [afterSku, limit, onlySku ?? null]);
  return { skus: bySku(rows), last: rows.at(-1)?.sku };
}

/** How many stock rows a full pass (or one sku's) reads, for progress. */
export async function countRows(db: Queryable, onlySku?: string, partition?: Partition): Promise<number> {
  const { rows } = await db.query<{ n: string }>(`
    select count(*) as n from inventory.stock_levels s join inventory.products p on p.id = s.product_id
    where ($1::text is null or p.sku = $1) ${partition ? `and ${inPartitionSql('s.product_id', partition)}` : ''}`, [onlySku ?? null]);
  return Number(rows[0]!.n);
}
