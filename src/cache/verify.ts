// Compares the cache with PostgreSQL key by key (every key of a sku,
// plus the rows hash behind them), product by product; optionally repairs
// the skus that differ by rewriting their rows (version-guarded, so safe
// beside a running consumer). A kit is compared with what inventory._kit_rows
// gives in the same snapshot (its keys, its rows hash, and the definition and
// component versions it was computed from); a kit that differs, or whose
// components were repaired, is recomputed from its components' rows at the
// end (kits.ts). The channels hash of each is compared too: a stocked sku's
// with the channel rule over its rows (channels.ts), a kit's with what
// inventory.channel_stock gives.
import pg from 'pg';
import { channelAvailability, channelsText, type ChannelList } from './channels.ts';
import type { CacheKeys } from './keys.ts';
import { writeWithKits } from './kits.ts';
import { countRows, loadChannels, loadChannelStock, loadKitDefinitions, loadKitStock, loadProductPage } from './loader.ts';
import type { Redis } from './redis.ts';
import { encodeRow, skuTotals, type KitState, type RowState } from './row.ts';
import type { CacheWriter } from './writer.ts';

export interface Mismatch { sku: string; key: string; postgres: string | null; redis: string | null }

export interface VerifyResult {
  skus: number;
  rows: number;
  mismatches: Mismatch[];
  /** Skus with at least one mismatch. */
  driftedSkus: number;
  /** Skus rewritten (with --fix). */
  fixedSkus: number;
  seconds: number;
}

export interface VerifyOptions {
  databaseUrl: string;
  redis: Redis;
  writer: CacheWriter;
  keys: CacheKeys;
  fix: boolean;
  /** Only this sku. */
  sku?: string;
  /** Mismatches kept in the result (all are counted). */
  maxMismatches?: number;
  onProgress?: (rowsDone: number, rowsTotal: number) => void;
}

export async function verifyCache(options: VerifyOptions): Promise<VerifyResult> {
  const started = performance.now();
  const { keys } = options;
  const keep = options.maxMismatches ?? 100;
  const result: VerifyResult = { skus: 0, rows: 0, mismatches: [], driftedSkus: 0, fixedSkus: 0, seconds: 0 };
  const kitsToFix = new Set<string>();
  const client = new pg.Client({ connectionString: options.databaseUrl, application_name: 'stockroom cache verify' });
  client.on('error', () => {});
  await client.connect();
  try {
    // One snapshot: the comparison is against one consistent state of Postgres.
    await client.query('begin isolation level repeatable read read only');
    const total = await countRows(client, options.sku);
    const channels = await loadChannels(client);
    options.writer.useChannels(channels);
    options.onProgress?.(0, total);
    let after = '';
    for (;;) {
      const page = await loadProductPage(client, after, 250, options.sku);
      if (page.last === undefined) break;
      after = page.last;
      const drifted = await compareSkus(options.writer, keys, page.skus, channels, (m) => {
        if (result.mismatches.length < keep) result.mismatches.push(m);
      });
      const kits = await loadKitStock(client, page.kits);
      const kitChannels = await loadChannelStock(client, [...kits.keys()], channels);
      const driftedKits = await compareKits(options.writer, keys, kits, kitChannels, (m) => {
        if (result.mismatches.length < keep) result.mismatches.push(m);
      });
      const rows = [...page.skus.values()].flat();
      result.skus += page.skus.size + page.kits.length;
      result.rows += rows.length;
      result.driftedSkus += drifted.length + driftedKits.length;
      if (options.fix && drifted.length) {
        await options.writer.apply(drifted.flatMap((sku) => page.skus.get(sku)!), []);
        result.fixedSkus += drifted.length;
        for (const kit of await loadKitDefinitions(client, { components: drifted })) kitsToFix.add(kit.sku);
      }
      if (options.fix) {
        for (const kit of driftedKits) kitsToFix.add(kit);
        result.fixedSkus += driftedKits.length;
      }
      options.onProgress?.(result.rows, total);
    }
    await client.query('commit');
    // After every component was repaired, and out of the snapshot (the newest definitions).
    if (kitsToFix.size > 0) await writeWithKits(client, options.writer, [], await loadKitDefinitions(client, { kits: [...kitsToFix] }));
  } finally {
    await client.end().catch(() => {});
  }
  result.seconds = (performance.now() - started) / 1000;
  return result;
}

/**
 * Compares skus with what PostgreSQL has for them (rows by sku; [] for a
 * product without stock rows, which has no keys): every key the README lists for a sku (its sums key included)
 * and each rows-hash entry. Reports each mismatch and returns the skus that
 * have any.
 */
async function compareSkus(writer: CacheWriter, keys: CacheKeys, bySku: ReadonlyMap<string, readonly RowState[]>, channels: ChannelList,
  report: (m: Mismatch) => void): Promise<string[]> {
  const expected: Array<{ sku: string; key: string; value: string | null }> = [];
  for (const [sku, rows] of bySku) {
    for (const r of rows) expected.push({ sku, key: keys.warehouse(sku, r.warehouse), value: String(r.available) });
    const none = rows.length === 0;
    const totals = skuTotals(rows);
    expected.push(
      { sku, key: keys.total(sku), value: none ? null : String(totals.total) },
      { sku, key: keys.available(sku), value: none ? null : String(totals.available) },
      { sku, key: keys.status(sku), value: none ? null : totals.status },
      { sku, key: keys.lowStock(sku), value: none ? null : totals.lowStock },
      { sku, key: keys.sums(sku), value: none ? null : totals.sums },
      { sku, key: keys.preorderUntil(sku), value: none ? null : totals.preorderUntil },
      { sku, key: keys.unavailable(sku), value: none ? null : String(totals.unavailable) },
    );
  }
  if (expected.length === 0) return [];
  const skus = [...bySku.keys()];
  // Through the reader: in a Redis Cluster it reads slot by slot.
  const [values, hashes, channelHashes] = await Promise.all([writer.reader.mget(expected.map((e) => e.key)), writer.reader.rawRowsHashes(skus),
    writer.reader.rawChannelsHashes(skus)]);
  const drifted = keysThatDiffer(expected, values, report);
  skus.forEach((sku, i) => {
    const rows = bySku.get(sku)!;
    const want = rows.length === 0 ? '' : channelsText(channelAvailability(new Map(rows.map((r) => [r.warehouse, r])), channels));
    compareChannels(sku, keys, want, channelHashes[i]!, drifted, report);
  });
  skus.forEach((sku, i) => {
    const cached = hashes[i]!;
    for (const r of bySku.get(sku)!) {
      const want = encodeRow(r);
      if (cached[r.warehouse] !== want) {
        drifted.add(sku);
        report({ sku, key: `${keys.rows(sku)} ${r.warehouse}`, postgres: want, redis: cached[r.warehouse] ?? null });
      }
    }
  });
  return [...drifted];
}

/**
 * Compares kits with what PostgreSQL computes for them: every public key,
 * the sums key, the kit key (definition version and Σ component versions)
 * and the rows hash, entry by entry (an entry PostgreSQL has no row for
 * differs too). Returns the kits that differ.
 */
async function compareKits(writer: CacheWriter, keys: CacheKeys, kits: ReadonlyMap<string, { state: KitState }>,
  kitChannels: ReadonlyMap<string, ReadonlyMap<string, number>>, report: (m: Mismatch) => void): Promise<string[]> {
  if (kits.size === 0) return [];
  const expected: Array<{ sku: string; key: string; value: string | null }> = [];
  for (const [sku, { state }] of kits) {
    for (const [code, row] of state.rows) expected.push({ sku, key: keys.warehouse(sku, code), value: String(row.available) });
    expected.push(
      { sku, key: keys.total(sku), value: String(state.totals.total) },
      { sku, key: keys.available(sku), value: String(state.totals.available) },
      { sku, key: keys.status(sku), value: state.totals.status },
      { sku, key: keys.lowStock(sku), value: state.totals.lowStock },
      { sku, key: keys.sums(sku), value: state.totals.sums },
      { sku, key: keys.preorderUntil(sku), value: state.totals.preorderUntil },
      { sku, key: keys.unavailable(sku), value: String(state.totals.unavailable) },
      { sku, key: keys.kit(sku), value: state.mark },
    );
  }
  const skus = [...kits.keys()];
  const [values, hashes, channelHashes] = await Promise.all([writer.reader.mget(expected.map((e) => e.key)), writer.reader.rawRowsHashes(skus),
    writer.reader.rawChannelsHashes(skus)]);
  const drifted = keysThatDiffer(expected, values, report);
  skus.forEach((sku, i) => compareChannels(sku, keys, channelsText(kitChannels.get(sku) ?? new Map()), channelHashes[i]!, drifted, report));
  skus.forEach((sku, i) => {
    const cached = hashes[i]!;
    const want = kits.get(sku)!.state.rows;
    for (const code of new Set([...want.keys(), ...Object.keys(cached)])) {
      const entry = want.has(code) ? encodeRow(want.get(code)!) : null;
      if ((cached[code] ?? null) !== entry) {
        drifted.add(sku);
        report({ sku, key: `${keys.rows(sku)} ${code}`, postgres: entry, redis: cached[code] ?? null });
      }
    }
  });
  return [...drifted];
}

/** Reports a channels hash that differs from the one expected (as channelsText), adding its sku to drifted. */
function compareChannels(sku: string, keys: CacheKeys, want: string, cached: Readonly<Record<string, string>>, drifted: Set<string>,
  report: (m: Mismatch) => void): void {
  const have = channelsText(cached);
  if (have === want) return;
  drifted.add(sku);
  report({ sku, key: keys.channels(sku), postgres: want === '' ? null : want, redis: have === '' ? null : have });
}

/** Reports each plain key whose value differs from the one expected; returns the skus they belong to. */
function keysThatDiffer(expected: ReadonlyArray<{ sku: string; key: string; value: string | null }>, values: ReadonlyArray<string | null>,
  report: (m: Mismatch) => void): Set<string> {
  const drifted = new Set<string>();
  expected.forEach((e, i) => {
    if (values[i] !== e.value) {
      drifted.add(e.sku);
      report({ sku: e.sku, key: e.key, postgres: e.value, redis: values[i] ?? null });
    }
  });
  return drifted;
}
