// Compares the cache with PostgreSQL key by key (every key of a sku,
// plus the rows hash behind them), product by product; optionally repairs
// the skus that differ by rewriting their rows (version-guarded, so safe
// beside a running consumer).
import pg from 'pg';
import type { CacheKeys } from './keys.ts';
import { countRows, loadProductPage } from './loader.ts';
import type { Redis } from './redis.ts';
import { encodeRow, skuTotals, type RowState } from './row.ts';
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
  const client = new pg.Client({ connectionString: options.databaseUrl, application_name: 'stockroom cache verify' });
  client.on('error', () => {});
  await client.connect();
  try {
    // One snapshot: the comparison is against one consistent state of Postgres.
    await client.query('begin isolation level repeatable read read only');
    const total = await countRows(client, options.sku);
    options.onProgress?.(0, total);
    let after = '';
    for (;;) {
      const page = await loadProductPage(client, after, 250, options.sku);
      if (page.last === undefined) break;
      after = page.last;
      const drifted = await compareSkus(options.writer, keys, page.skus, (m) => {
        if (result.mismatches.length < keep) result.mismatches.push(m);
      });
      const rows = [...page.skus.values()].flat();
      result.skus += page.skus.size;
      result.rows += rows.length;
      result.driftedSkus += drifted.length;
      if (options.fix && drifted.length) {
        await options.writer.apply(drifted.flatMap((sku) => page.skus.get(sku)!), []);
        result.fixedSkus += drifted.length;
      }
      options.onProgress?.(result.rows, total);
    }
    await client.query('commit');
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
async function compareSkus(writer: CacheWriter, keys: CacheKeys, bySku: ReadonlyMap<string, readonly RowState[]>, report: (m: Mismatch) => void): Promise<string[]> {
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
    );
  }
  if (expected.length === 0) return [];
  const skus = [...bySku.keys()];
  // Through the reader: in a Redis Cluster it reads slot by slot.
  const [values, hashes] = await Promise.all([writer.reader.mget(expected.map((e) => e.key)), writer.reader.rawRowsHashes(skus)]);
  const drifted = new Set<string>();
  expected.forEach((e, i) => {
    if (values[i] !== e.value) {
      drifted.add(e.sku);
      report({ sku: e.sku, key: e.key, postgres: e.value, redis: values[i] ?? null });
    }
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
