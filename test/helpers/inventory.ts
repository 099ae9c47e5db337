// Small builders and assertions for SQL API tests.
import type { ExecutionContext } from 'ava';
import type { DatabaseError } from 'pg';
import type { Queryable } from './invariants.ts';

/** Creates products, warehouses (priority in name order: WH1=10, WH2=20, …) and received stock. */
export async function setupCatalog(db: Queryable, stock: Record<string, Record<string, number>>): Promise<void> {
  const warehouses = [...new Set(Object.values(stock).flatMap((w) => Object.keys(w)))].sort();
  for (const [i, code] of warehouses.entries()) {
    await db.query('select inventory.upsert_warehouse($1, $2, null, $3)', [code, `Warehouse ${code}`, (i + 1) * 10]);
  }
  for (const [sku, rows] of Object.entries(stock)) {
    await db.query('select inventory.upsert_product($1, $2)', [sku, `Product ${sku}`]);
    for (const [code, units] of Object.entries(rows)) {
      if (units > 0) await db.query(`select inventory.adjust($1, $2, $3, 'receipt')`, [sku, code, units]);
    }
  }
}

export interface StockRow { on_hand: number; reserved: number; safety_stock: number; available: number; version: number }

export async function stockOf(db: Queryable, sku: string, warehouse: string): Promise<StockRow | undefined> {
  const { rows } = await db.query<StockRow & { version: string }>(
    'select on_hand, reserved, safety_stock, available, version from inventory.stock(array[$1]) where warehouse = $2',
    [sku, warehouse]);
  return rows[0] && { ...rows[0], version: Number(rows[0].version) };
}

/** Asserts a query fails with a SQLSTATE, and returns the error for more checks. */
export async function rejectsWithCode(t: ExecutionContext, promise: Promise<unknown>, code: string): Promise<DatabaseError> {
  const error = await t.throwsAsync(promise) as DatabaseError;
  t.is(error?.code, code, `expected SQLSTATE ${code}, got ${error?.code}: ${error?.message}`);
  return error;
}

/** The single row a query returns (fails loudly otherwise). */
export async function queryOne<R extends Record<string, any> = Record<string, any>>(db: Queryable, text: string, values?: unknown[]): Promise<R> {
  const { rows } = await db.query(text, values);
  if (rows.length !== 1) throw new Error(`expected one row, got ${rows.length}: ${text}`);
  return rows[0] as R;
}

/**
 * A stock row's last_movement_at in microseconds, as PostgreSQL keeps it: a
 * Date has milliseconds only, and two changes within one millisecond would
 * look simultaneous.
 */
export async function movedAt(db: Queryable, sku: string, warehouse: string): Promise<bigint> {
  const { us } = await queryOne<{ us: string }>(db, `
    select (extract(epoch from s.last_movement_at) * 1000000)::bigint::text as us
    from inventory.stock_levels s join inventory.products p on p.id = s.product_id join inventory.warehouses w on w.id = s.warehouse_id
    where p.sku = $1 and w.code = $2`, [sku, warehouse]);
  return BigInt(us);
}
