// Bulk demo data: N products × M warehouses, each stock row received with U
// units (one RECEIVE movement per row, so the ledger still adds up). Set-based,
// in batches of products so a progress bar can follow; re-running adds only
// what is missing.
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';

export interface SeedOptions {
  products: number;
  warehouses: number;
  units: number;
  lowStockThreshold: number;
  batchSize?: number;
  onProgress?: (productsDone: number) => void;
}

export interface SeedResult { products: number; warehouses: number; stockRows: number }

const REGIONS = ['eu-west', 'eu-central', 'us-east', 'us-west', 'ap-south'];

export const skuOf = (i: number) => `SKU-${String(i).padStart(6, '0')}`;
export const warehouseCodeOf = (i: number) => `WH${String(i).padStart(2, '0')}`;

export async function seed(pool: DatabasePool, options: SeedOptions): Promise<SeedResult> {
  const batchSize = options.batchSize ?? 500;
  const codes = Array.from({ length: options.warehouses }, (_, i) => warehouseCodeOf(i + 1));
  const result: SeedResult = { products: 0, warehouses: 0, stockRows: 0 };

  result.warehouses = await pool.oneFirst(sql.type(z.object({ created: z.number() }))`
    with created as (
      insert into inventory.warehouses (code, name, region, priority)
      select c.code, 'Warehouse ' || c.code, (${sql.array(REGIONS, 'text')})[1 + (c.n - 1) % ${REGIONS.length}], c.n * 10
      from unnest(${sql.array(codes, 'text')}) with ordinality as c(code, n)
      on conflict (code) do nothing
      returning 1)
    select count(*)::int as created from created`);

  for (let first = 1; first <= options.products; first += batchSize) {
    const last = Math.min(first + batchSize - 1, options.products);
    const skus = Array.from({ length: last - first + 1 }, (_, i) => skuOf(first + i));
    await pool.transaction(async (tx) => {
      result.products += await tx.oneFirst(sql.type(z.object({ created: z.number() }))`
        with created as (
          insert into inventory.products (sku, name)
          select s, 'Product ' || s from unnest(${sql.array(skus, 'text')}) s
          on conflict (sku) do nothing
          returning 1)
        select count(*)::int as created from created`);
      result.stockRows += await tx.oneFirst(sql.type(z.object({ created: z.number() }))`
        with created as (
          insert into inventory.stock_levels (product_id, warehouse_id, on_hand, low_stock_threshold)
          select p.id, w.id, ${options.units}, ${options.lowStockThreshold}
          from inventory.products p cross join inventory.warehouses w
          where p.sku = any(${sql.array(skus, 'text')}) and w.code = any(${sql.array(codes, 'text')})
          on conflict do nothing
          returning product_id, warehouse_id, on_hand),
        received as (
          insert into inventory.movements (
            product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after, reason, actor)
          select product_id, warehouse_id, 'RECEIVE', on_hand, 0, on_hand, 0, 'seed', 'stockroom seed'
          from created where on_hand > 0)
        select count(*)::int as created from created`);
    });
    options.onProgress?.(last);
  }
  return result;
}
