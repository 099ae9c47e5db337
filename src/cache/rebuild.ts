// A full rebuild of the cache from PostgreSQL, in one consistent snapshot:
// either the one a new slot exported (nothing before or after it missing),
// or a fresh one, in which case the version guard makes the overlap with the
// stream harmless: a replayed change older than the snapshot is refused, a
// newer one applies. Writes are guarded too, so a rebuild can run while the
// consumer streams.
import pg from 'pg';
import type { CacheWriter, RowState } from './writer.ts';

export interface RebuildOptions {
  databaseUrl: string;
  writer: CacheWriter;
  /** An exported snapshot to read in (from a slot just created). */
  snapshotName?: string;
  /** Products per round trip to Redis. */
  productsPerBatch?: number;
  onProgress?: (rowsDone: number, rowsTotal: number) => void;
}

export interface RebuildResult { rows: number; skus: number; stale: number; seconds: number }

export async function rebuildCache(options: RebuildOptions): Promise<RebuildResult> {
  const started = performance.now();
  const perBatch = options.productsPerBatch ?? 250;
  const client = new pg.Client({ connectionString: options.databaseUrl, application_name: 'stockroom cache rebuild' });
  client.on('error', () => {});
  await client.connect();
  const result: RebuildResult = { rows: 0, skus: 0, stale: 0, seconds: 0 };
  try {
    await client.query('begin isolation level repeatable read read only');
    if (options.snapshotName) await client.query(`set transaction snapshot ${pg.escapeLiteral(options.snapshotName)}`);
    const total = Number((await client.query<{ n: string }>('select count(*) as n from inventory.stock_levels')).rows[0]!.n);
    options.onProgress?.(0, total);
    let after = '00000000-0000-0000-0000-000000000000';
    let writing: Promise<void> = Promise.resolve();
    for (;;) {
      const { rows } = await client.query<{
        product_id: string; sku: string; code: string | null; version: string; on_hand: number; reserved: number;
        safety_stock: number; low_stock_threshold: number;
      }>(`
        with batch as (select id, sku from inventory.products where id > $1 order by id limit $2)
        select b.id as product_id, b.sku, w.code, s.version::text, s.on_hand, s.reserved, s.safety_stock, s.low_stock_threshold
        from batch b
        left join inventory.stock_levels s on s.product_id = b.id
        left join inventory.warehouses w on w.id = s.warehouse_id
        order by b.id`, [after, perBatch]);
      if (rows.length === 0) break;
      after = rows.at(-1)!.product_id; // products without stock rows come as one row with no warehouse
      const states: RowState[] = rows.filter((r) => r.code !== null).map((r) => ({
        sku: r.sku, warehouse: r.code!, version: r.version, onHand: r.on_hand, reserved: r.reserved,
        available: Math.max(r.on_hand - r.reserved - r.safety_stock, 0), lowStockThreshold: r.low_stock_threshold,
      }));
      result.skus += new Set(states.map((s) => s.sku)).size;
      // Read the next batch from Postgres while Redis applies this one.
      const previous = writing;
      writing = (async () => {
        await previous;
        const applied = await options.writer.apply(states, []);
        result.rows += states.length;
        result.stale += applied.stale;
        options.onProgress?.(result.rows, total);
      })();
      writing.catch(() => {}); // awaited below; this only keeps an early failure from going unhandled
    }
    await writing;
    await client.query('commit');
  } finally {
    await client.end().catch(() => {});
  }
  result.seconds = (performance.now() - started) / 1000;
  return result;
}
