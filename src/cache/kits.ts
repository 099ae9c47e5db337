// Kits written by the paths that repair the cache (rebuild, verify --fix,
// resync, incremental sync, cachedStock's write-back): always recomputed from
// their components' rows as the cache holds them (row.ts, the kit rule;
// writer.ts, how), never written from figures read elsewhere, so a kit can
// never be older than the component rows beside it. Their definitions come
// from PostgreSQL; one the cache refuses as older than the one it last used
// (the stream applied a later set_kit) is read again, as PostgreSQL has it
// now, and the kit recomputed with that. The channels hashes are written with
// the channels PostgreSQL has now (channels.ts).
import type pg from 'pg';
import { loadChannels, loadKitDefinitions } from './loader.ts';
import type { KitDefinition, RowState } from './row.ts';
import type { CacheWriter } from './writer.ts';

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * Writes `rows` (version-guarded, as apply does) and then recomputes `kits`
 * from the components' rows, rewriting every key of each (force: a repair).
 * db is read for definitions newer than the ones given: it must not be a
 * snapshot older than the stream. Returns the kits still refused.
 */
export async function writeWithKits(db: Queryable, writer: CacheWriter, rows: readonly RowState[], kits: readonly KitDefinition[]): Promise<string[]> {
  if (rows.length === 0 && kits.length === 0) return [];
  writer.useChannels(await loadChannels(db));
  const { kitsRefused } = await writer.apply(rows, [], undefined, undefined, { kits, forceKits: true });
  if (kitsRefused.length === 0) return [];
  return writer.recomputeKits(await loadKitDefinitions(db, { kits: kitsRefused }), { force: true });
}
