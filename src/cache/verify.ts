// Compares the cache with PostgreSQL key by key (every key SPEC.md defines,
// plus the rows hash behind them), product by product; optionally repairs
// the skus that differ by rewriting their rows (version-guarded, so safe
// beside a running consumer).
import pg from 'pg';
import { stockStatus, type CacheKeys } from './keys.ts';
import type { CacheWriter, RowState } from './writer.ts';
import type { Redis } from './redis.ts';

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

interface Row { sku: string; code: string; version: string; on_hand: number; reserved: number; safety_stock: number; low_stock_threshold: number }

export async function verifyCache(options: VerifyOptions): Promise<VerifyResult> {
  const started = performance.now();
  const { redis, keys } = options;
  const keep = options.maxMismatches ?? 100;
  const result: VerifyResult = { skus: 0, rows: 0, mismatches: [], driftedSkus: 0, fixedSkus: 0, seconds: 0 };
  const client = new pg.Client({ connectionString: options.databaseUrl, application_name: 'stockroom cache verify' });
  client.on('error', () => {});
  await client.connect();
  try {
    // One snapshot: the comparison is against one consistent state of Postgres.
    await client.query('begin isolation level repeatable read read only');
    const total = Number((await client.query<{ n: string }>(
      `select count(*) as n from inventory.stock_levels s join inventory.products p on p.id = s.product_id
       where $1::text is null or p.sku = $1`, [options.sku ?? null])).rows[0]!.n);
    options.onProgress?.(0, total);
    let after = '';
    for (;;) {
      const { rows } = await client.query<Row>(`
        with batch as (
          select id, sku from inventory.products
          where sku > $1 and ($2::text is null or sku = $2) order by sku limit 250)
        select b.sku, w.code, s.version::text, s.on_hand, s.reserved, s.safety_stock, s.low_stock_threshold
        from batch b
        left join inventory.stock_levels s on s.product_id = b.id
        left join inventory.warehouses w on w.id = s.warehouse_id
        order by b.sku, w.code`, [after, options.sku ?? null]);
      if (rows.length === 0) break;
      after = rows.at(-1)!.sku;
      const bySku = new Map<string, Row[]>();
      for (const row of rows) {
        const list = bySku.get(row.sku) ?? [];
        if (row.code !== null) list.push(row);
        bySku.set(row.sku, list);
      }
      const drifted = await compareBatch(redis, keys, bySku, (m) => {
        if (result.mismatches.length < keep) result.mismatches.push(m);
      });
      result.skus += bySku.size;
      result.rows += rows.filter((r) => r.code !== null).length;
      result.driftedSkus += drifted.length;
      if (options.fix && drifted.length) {
        await options.writer.apply(drifted.flatMap((sku) => bySku.get(sku)!.map(toState)), []);
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

function toState(r: Row): RowState {
  return {
    sku: r.sku, warehouse: r.code, version: r.version, onHand: r.on_hand, reserved: r.reserved,
    available: Math.max(r.on_hand - r.reserved - r.safety_stock, 0), lowStockThreshold: r.low_stock_threshold,
  };
}

/** Compares a batch of skus; reports each mismatch and returns the skus that have any. */
async function compareBatch(redis: Redis, keys: CacheKeys, bySku: Map<string, Row[]>, report: (m: Mismatch) => void): Promise<string[]> {
  const expected: Array<{ sku: string; key: string; value: string | null }> = [];
  const hashes: Array<{ sku: string; rows: Row[] }> = [];
  for (const [sku, rows] of bySku) {
    let total = 0;
    let available = 0;
    let threshold = 0;
    for (const r of rows) {
      const state = toState(r);
      expected.push({ sku, key: keys.warehouse(sku, r.code), value: String(state.available) });
      total += r.on_hand;
      available += state.available;
      threshold += r.low_stock_threshold;
    }
    const status = stockStatus(available, threshold);
    const none = rows.length === 0; // a product without stock rows has no keys
    expected.push(
      { sku, key: keys.total(sku), value: none ? null : String(total) },
      { sku, key: keys.available(sku), value: none ? null : String(available) },
      { sku, key: keys.status(sku), value: none ? null : status },
      { sku, key: keys.lowStock(sku), value: none ? null : status === 'low_stock' ? '1' : '0' },
    );
    hashes.push({ sku, rows });
  }
  const pipeline = redis.pipeline();
  pipeline.mget(...expected.map((e) => e.key));
  for (const h of hashes) pipeline.hgetall(keys.rows(h.sku));
  const replies = (await pipeline.exec()) ?? [];
  const values = replies[0]?.[1] as Array<string | null>;
  const drifted = new Set<string>();
  expected.forEach((e, i) => {
    if (values[i] !== e.value) {
      drifted.add(e.sku);
      report({ sku: e.sku, key: e.key, postgres: e.value, redis: values[i] ?? null });
    }
  });
  hashes.forEach((h, i) => {
    const cached = (replies[i + 1]?.[1] ?? {}) as Record<string, string>;
    for (const r of h.rows) {
      const s = toState(r);
      const want = `${s.version}:${s.onHand}:${s.reserved}:${s.available}:${s.lowStockThreshold}`;
      if (cached[r.code] !== want) {
        drifted.add(h.sku);
        report({ sku: h.sku, key: `${keys.rows(h.sku)} ${r.code}`, postgres: want, redis: cached[r.code] ?? null });
      }
    }
  });
  return [...drifted];
}
