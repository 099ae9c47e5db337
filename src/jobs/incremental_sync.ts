// incremental_sync, every 5 minutes: the cache's second line of defence. It
// pages through the stock rows changed since a watermark kept in Postgres
// (minus an overlap, for transactions that committed after their change's
// clock time), compares each with Redis, and rewrites and counts the ones
// that drifted. Rows changed in the last few seconds are left to the stream:
// there, a difference is latency, not drift.
import type { Task } from 'graphile-worker';
import type pg from 'pg';
import type { CacheWriter, RowState } from '../cache/writer.ts';
import type { JobMetrics } from './metrics.ts';

export const INCREMENTAL_SYNC = 'incremental_sync';

export interface SyncOptions {
  /** How far before the watermark each run starts reading again. */
  overlapSeconds: number;
  /** Changes younger than this belong to the stream. */
  graceSeconds: number;
  pageSize: number;
}

export const DEFAULT_SYNC: SyncOptions = { overlapSeconds: 60, graceSeconds: 10, pageSize: 1000 };

export interface SyncResult { checked: number; drifted: number; watermark: string }

interface ChangedRow {
  sku: string; warehouse: string; on_hand: number; reserved: number; available: number;
  version: string; last_movement_at: Date; cursor: string; low_stock_threshold: number;
}

export async function incrementalSync(client: Pick<pg.Pool, 'query'>, writer: CacheWriter, options: SyncOptions = DEFAULT_SYNC): Promise<SyncResult> {
  // Timestamps stay text between the queries: a JS Date keeps milliseconds, and
  // a bound cut to the millisecond would leave the last changes before it to the next run.
  const { rows: [state] } = await client.query<{ since: string; started: string; startedAt: Date }>(`
    select (coalesce((select watermark from stockroom_meta.sync_state where name = 'incremental_sync'), '-infinity')
             - make_interval(secs => $1))::text as since,
           now()::text as started, now() as "startedAt"`, [options.overlapSeconds]);
  const { since, started, startedAt } = state!;
  const result: SyncResult = { checked: 0, drifted: 0, watermark: startedAt.toISOString() };
  let after: string | null = null;
  for (;;) {
    const { rows }: { rows: ChangedRow[] } = await client.query(`
      select r.sku, r.warehouse, r.on_hand, r.reserved, r.available, r.version::text, r.last_movement_at, r.cursor,
             s.low_stock_threshold
      from inventory.recently_updated($1::timestamptz, null, $2, $3) r
      join inventory.products p on p.sku = r.sku
      join inventory.warehouses w on w.code = r.warehouse
      join inventory.stock_levels s on s.product_id = p.id and s.warehouse_id = w.id
      where r.last_movement_at < $4::timestamptz - make_interval(secs => $5)`,
      [since, after, options.pageSize, started, options.graceSeconds]);
    if (rows.length === 0) break;
    after = rows.at(-1)!.cursor;
    result.checked += rows.length;
    const drifted = await driftedRows(writer, rows);
    if (drifted.length) {
      await writer.apply(drifted, []);
      result.drifted += drifted.length;
    }
    if (rows.length < options.pageSize) break;
  }
  await client.query(`
    insert into stockroom_meta.sync_state (name, watermark) values ('incremental_sync', $1)
    on conflict (name) do update set watermark = excluded.watermark, updated_at = now()`, [started]);
  return result;
}

/** The rows whose Redis state (rows hash and warehouse key) differs from Postgres. */
async function driftedRows(writer: CacheWriter, rows: ChangedRow[]): Promise<RowState[]> {
  const cached = await writer.readRows(rows.map((r) => ({ sku: r.sku, warehouse: r.warehouse })));
  const drifted: RowState[] = [];
  rows.forEach((r, i) => {
    const expected: RowState = {
      sku: r.sku, warehouse: r.warehouse, version: r.version, onHand: r.on_hand, reserved: r.reserved,
      available: r.available, lowStockThreshold: r.low_stock_threshold,
    };
    const have = cached[i];
    const same = have && have.version === expected.version && have.onHand === expected.onHand && have.reserved === expected.reserved
      && have.available === expected.available && have.lowStockThreshold === expected.lowStockThreshold && have.warehouseKey === expected.available;
    if (!same) drifted.push(expected);
  });
  return drifted;
}

export function incrementalSyncTask(writer: CacheWriter, metrics: JobMetrics): Task {
  return async (_payload, helpers) => {
    const result = await helpers.withPgClient((client) => incrementalSync(client, writer));
    metrics.syncRowsChecked.inc(result.checked);
    metrics.syncDrift.inc(result.drifted);
    const message = `incremental sync checked ${result.checked} changed row(s), repaired ${result.drifted}`;
    if (result.drifted) helpers.logger.warn(message, { ...result });
    else helpers.logger.info(message, { ...result });
  };
}
