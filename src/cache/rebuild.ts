// A full rebuild of the cache from PostgreSQL, in one consistent snapshot:
// either the one a new slot exported (nothing before or after it missing),
// or a fresh one, in which case the version guard makes the overlap with the
// stream harmless: a replayed change older than the snapshot is refused, a
// newer one applies. Writes are guarded too, so a rebuild can run while the
// consumer streams.
// Every rebuild, whoever runs it (the consumer, the resync listener, `stockroom
// cache rebuild`), is guarded the same way: it holds a token in Redis from
// before its first write until it ends, and a Redis that lost its data
// meanwhile (restarted without persistence, flushed) has lost the token too.
// The rebuild then throws RebuildInterruptedError instead of reporting a
// cache it did not make whole.
// Kits come after every row: each recomputed from its components' rows as
// Redis now holds them (kits.ts), with the definitions PostgreSQL has once the
// snapshot is done (a partition's rebuild: the kits in its share or holding a
// component in it, so whichever share is written last recomputes a kit whose
// components span partitions).
import pg from 'pg';
import type { Partition } from '../partition.ts';
import type { Lsn } from './lsn.ts';
import { writeWithKits } from './kits.ts';
import { countRows, loadChannels, loadKitDefinitions, loadProductPage } from './loader.ts';
import type { CacheWriter } from './writer.ts';

export interface RebuildOptions {
  databaseUrl: string;
  writer: CacheWriter;
  /** An exported snapshot to read in (from a slot just created). */
  snapshotName?: string;
  /** Only the skus of this partition (a partitioned consumer's share). */
  partition?: Partition;
  /** Products per round trip to Redis. */
  productsPerBatch?: number;
  onProgress?: (rowsDone: number, rowsTotal: number) => void;
  /** Work that belongs to the rebuild (the slot-loss backfill): run after the rows, before the rebuild ends. */
  beforeComplete?: () => Promise<void>;
  /**
   * The consumer's rebuild marks the cache complete for its source, at a
   * position (read when the rebuild ends), in the same step as it ends.
   */
  complete?: { source: string; position: () => Lsn };
}

export interface RebuildResult { rows: number; skus: number; kits: number; stale: number; seconds: number }

export class RebuildInterruptedError extends Error {
  constructor() {
    super('Redis lost its data during the rebuild (restarted without persistence, or flushed); rebuild again');
    this.name = 'RebuildInterruptedError';
  }
}

export async function rebuildCache(options: RebuildOptions): Promise<RebuildResult> {
  const token = await options.writer.beginRebuild();
  const result = await writeEveryRow(options);
  await options.beforeComplete?.();
  const complete = options.complete && { source: options.complete.source, position: options.complete.position() };
  if (!(await options.writer.completeRebuild(token, complete))) throw new RebuildInterruptedError();
  return result;
}

async function writeEveryRow(options: RebuildOptions): Promise<RebuildResult> {
  const started = performance.now();
  const perBatch = options.productsPerBatch ?? 250;
  const client = new pg.Client({ connectionString: options.databaseUrl, application_name: 'stockroom cache rebuild' });
  client.on('error', () => {});
  await client.connect();
  const result: RebuildResult = { rows: 0, skus: 0, kits: 0, stale: 0, seconds: 0 };
  try {
    await client.query('begin isolation level repeatable read read only');
    if (options.snapshotName) await client.query(`set transaction snapshot ${pg.escapeLiteral(options.snapshotName)}`);
    const total = await countRows(client, undefined, options.partition);
    // The channels as of the snapshot: the stream applies their later changes.
    options.writer.useChannels(await loadChannels(client));
    options.onProgress?.(0, total);
    let after = '';
    let writing: Promise<void> = Promise.resolve();
    for (;;) {
      const page = await loadProductPage(client, after, perBatch, undefined, options.partition);
      if (page.last === undefined) break;
      after = page.last;
      const states = [...page.skus.values()].flat();
      result.skus += [...page.skus.values()].filter((rows) => rows.length > 0).length;
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
    // Out of the snapshot: the newest definitions (the cache refuses older ones than it used).
    const kits = await loadKitDefinitions(client, options.partition ? { partition: options.partition } : {});
    for (let i = 0; i < kits.length; i += 250) await writeWithKits(client, options.writer, [], kits.slice(i, i + 250));
    result.kits = kits.length;
  } finally {
    await client.end().catch(() => {});
  }
  result.seconds = (performance.now() - started) / 1000;
  return result;
}
