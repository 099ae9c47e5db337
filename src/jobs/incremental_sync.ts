// incremental_sync, every 5 minutes: the cache's second line of defence. It
// pages through the stock rows changed since a watermark kept in Postgres
// (minus an overlap, for transactions that committed after their change's
// clock time), compares each with Redis, and rewrites and counts the ones
// that drifted; then checks the per-sku keys of those skus against their rows
// hash. Rows changed in the last few seconds are left to the stream: there, a
// difference is latency, not drift.
// A rows-hash entry ahead of PostgreSQL (a version the database never
// committed) is kept by the version guard of every ordinary write; it is
// rewritten only after PostgreSQL, read again after Redis was, confirms that
// it has no such version, and only if Redis still holds exactly that entry.
// The kits those rows are components of are then checked against a
// recompute from their components' rows as Redis holds them (row.ts, the kit
// rule), and recomputed in Redis when they differ. Each sku's channels hash
// is checked against its rows hash and the channels PostgreSQL has now
// (channels.ts), and every repair writes it with those.
import type { Task } from 'graphile-worker';
import type pg from 'pg';
import { channelAvailability, channelsText, kitChannelAvailability, type ChannelList } from '../cache/channels.ts';
import { writeWithKits } from '../cache/kits.ts';
import { CACHE_ROW_COLUMNS, loadChannels, loadKitDefinitions, loadSkus, toRowState } from '../cache/loader.ts';
import type { CachedRow, CachedSkuKeys } from '../cache/reader.ts';
import { encodeRow, kitMarkSum, kitState, sameRow, skuTotals, type RowState, type SkuTotals } from '../cache/row.ts';
import type { CacheWriter } from '../cache/writer.ts';
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

/** A row of CACHE_ROW_COLUMNS (loader.ts) and its recently_updated cursor. */
type ChangedRow = Parameters<typeof toRowState>[0] & { cursor: string };

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
      select ${CACHE_ROW_COLUMNS}, r.cursor
      from inventory.recently_updated($1::timestamptz, null, $2, $3) r
      join inventory.products p on p.sku = r.sku
      join inventory.warehouses w on w.code = r.warehouse
      join inventory.stock_levels s on s.product_id = p.id and s.warehouse_id = w.id
      where r.last_movement_at < $4::timestamptz - make_interval(secs => $5)`,
      [since, after, options.pageSize, started, options.graceSeconds]);
    if (rows.length === 0) break;
    after = rows.at(-1)!.cursor;
    result.checked += rows.length;
    result.drifted += await repairRows(client, writer, rows.map(toRowState));
    if (rows.length < options.pageSize) break;
  }
  await client.query(`
    insert into stockroom_meta.sync_state (name, watermark) values ('incremental_sync', $1)
    on conflict (name) do update set watermark = excluded.watermark, updated_at = now()`, [started]);
  return result;
}

/** Whether the cache holds this row exactly: its rows-hash entry, and the warehouse key beside it. */
function holds(cached: CachedRow | undefined, expected: RowState): boolean {
  return sameRow(cached, expected) && cached!.warehouseKey === expected.available;
}

/** Repairs what differs in Redis for these rows and their skus' keys; returns how many rows and skus it repaired. */
async function repairRows(db: Pick<pg.Pool, 'query'>, writer: CacheWriter, rows: RowState[]): Promise<number> {
  const [cached, channels] = await Promise.all([writer.reader.rows(rows), loadChannels(db)]);
  writer.useChannels(channels);
  const drifted: RowState[] = [];
  const ahead = new Map<string, Array<{ state: RowState; seen: CachedRow }>>();
  rows.forEach((row, i) => {
    const have = cached[i];
    if (holds(have, row)) return;
    if (have && BigInt(have.version) > BigInt(row.version)) {
      ahead.set(row.sku, [...(ahead.get(row.sku) ?? []), { state: row, seen: have }]);
    } else {
      drifted.push(row);
    }
  });
  let repaired = 0;
  if (drifted.length) repaired += (await writer.apply(drifted, [])).applied;
  if (ahead.size) {
    // Read again now: a change committed since the page was read may have reached Redis legitimately.
    const now = await loadSkus(db, [...ahead.keys()]);
    for (const [sku, entries] of ahead) {
      const current = new Map((now.get(sku) ?? []).map((r) => [r.warehouse, r]));
      const bogus = entries.flatMap(({ state, seen }) => {
        const latest = current.get(state.warehouse);
        return latest && BigInt(latest.version) < BigInt(seen.version) ? [{ state: latest, seen }] : [];
      });
      repaired += await writer.replaceAhead(sku, bogus);
    }
  }
  const skus = [...new Set(rows.map((r) => r.sku))];
  return repaired + await repairSkuKeys(writer, skus, channels) + await repairKits(db, writer, skus, channels);
}

/** Kits of these components whose keys or rows hash differ from a recompute from their components' rows in Redis: recomputed there. */
async function repairKits(db: Pick<pg.Pool, 'query'>, writer: CacheWriter, skus: string[], channels: ChannelList): Promise<number> {
  const kits = await loadKitDefinitions(db, { components: skus });
  if (kits.length === 0) return 0;
  const components = [...new Set(kits.flatMap((kit) => kit.components.map((c) => c.sku)))];
  const kitSkus = kits.map((kit) => kit.sku);
  const [componentRows, kitRows, kitKeys, marks, kitChannels] = await Promise.all([
    writer.reader.rowsHashes(components), writer.reader.rowsHashes(kitSkus), writer.reader.skuKeys(kitSkus, { sums: true }),
    writer.reader.mget(kitSkus.map((sku) => writer.keys.kit(sku))), writer.reader.rawChannelsHashes(kitSkus),
  ]);
  const rowsOf = new Map(components.map((sku, i) => [sku, componentRows[i]]));
  const wrong = kits.filter((kit, i) => {
    const parts = kit.components.map((c) => ({ qty: c.qty, rows: rowsOf.get(c.sku) }));
    const want = kitState(kit, parts);
    const sameChannels = channelsText(kitChannels[i]!) === channelsText(kitChannelAvailability(parts, channels));
    const rows = kitRows[i] ?? new Map();
    const sameRows = rows.size === want.rows.size && [...want.rows].every(([code, row]) => rows.has(code) && encodeRow(rows.get(code)!) === encodeRow(row));
    // The Σ of component versions too: one left above the rows' (a repair lowered a version) would make a cluster refuse the stream's recomputes.
    const sameSum = kitMarkSum(marks[i]) === kitMarkSum(want.mark);
    return !(sameRows && sameSum && sameChannels && sameSkuKeys(kitKeys[i], want.totals));
  });
  if (wrong.length > 0) await writeWithKits(db, writer, [], wrong);
  return wrong.length;
}

/**
 * Per-sku keys (total, available, status, low_stock, preorder_until, the channels hash, and the sums the stream
 * moves them by) that disagree with the sku's rows hash: rewritten from it.
 */
async function repairSkuKeys(writer: CacheWriter, skus: string[], channels: ChannelList): Promise<number> {
  const [keys, hashes, channelHashes] = await Promise.all([writer.reader.skuKeys(skus, { sums: true }), writer.reader.rowsHashes(skus),
    writer.reader.rawChannelsHashes(skus)]);
  const wrong = skus.flatMap((sku, i) => {
    const rows = hashes[i];
    if (!rows) return []; // nothing cached for the sku: its rows were just repaired, or it has none
    const sameChannels = channelsText(channelHashes[i]!) === channelsText(channelAvailability(rows, channels));
    return sameChannels && sameSkuKeys(keys[i], skuTotals(rows.values())) ? [] : [{ sku, rows }];
  });
  if (wrong.length === 0) return 0;
  // Rewriting a sku's own entries (an equal version rewrites) recomputes its keys from the hash.
  await writer.apply(wrong.flatMap(({ sku, rows }) => [...rows].map(([warehouse, row]) => ({ sku, warehouse, ...row }))), []);
  return wrong.length;
}

/** Whether a sku's keys as read hold what its rows make of them. */
function sameSkuKeys(have: CachedSkuKeys | undefined, want: SkuTotals): boolean {
  return have !== undefined && have.total === want.total && have.available === want.available && have.status === want.status
    && (have.lowStock ? '1' : '0') === want.lowStock && have.sums === want.sums && have.preorderUntil === want.preorderUntil && have.unavailable === want.unavailable;
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
