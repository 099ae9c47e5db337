// The publication and the slot the consumer reads: checked, created and
// (when Postgres has invalidated it) replaced here.
import pg from 'pg';
import { ServiceUnavailableError } from '../errors.ts';
import { parseLsn, type Lsn } from '../cache/lsn.ts';
import { inPartitionSql, type Partition } from '../partition.ts';

/**
 * The tables whose changes reach the cache (kits and their components: which
 * kits to recompute, with what definition; channels and their warehouses:
 * what each sku's channels hash sums).
 */
export const PUBLISHED_TABLES = ['inventory.products', 'inventory.warehouses', 'inventory.stock_levels', 'inventory.movements',
  'inventory.kits', 'inventory.kit_components', 'inventory.channels', 'inventory.channel_warehouses'];

/**
 * The columns of each that the consumer reads (transaction.ts): a column
 * list spares the walsender formatting, and the consumer parsing, the others
 * (last_movement_at on every stock row change, names and times of products).
 * Replica-identity columns are always in (PostgreSQL requires it).
 */
export const PUBLISHED_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  'inventory.products': ['id', 'sku'],
  'inventory.warehouses': ['id', 'code'],
  'inventory.stock_levels': ['product_id', 'warehouse_id', 'on_hand', 'reserved', 'safety_stock', 'low_stock_threshold', 'version',
    'backorder_policy', 'backorder_limit', 'backordered', 'preorder_until', 'unavailable'],
  'inventory.movements': ['id', 'product_id', 'warehouse_id', 'kind', 'on_hand_delta', 'reserved_delta', 'on_hand_after', 'reserved_after',
    'backordered_delta', 'backordered_after', 'state', 'state_delta', 'transit_delta', 'reason', 'reservation_id', 'reference', 'actor', 'occurred_at'],
  'inventory.kits': ['product_id', 'low_stock_threshold', 'version'],
  'inventory.kit_components': ['kit_id', 'component_id', 'qty'],
  'inventory.channels': ['id', 'code'],
  'inventory.channel_warehouses': ['channel_id', 'warehouse_id'],
};

/**
 * What one consumer streams: the publication of the tables above, or, for a
 * partition, two publications with row filters on the product (its stock
 * rows in one; its ledger rows, inserts only, in the other: a row filter on
 * an updatable table may only name replica-identity columns, and the
 * ledger's is its id). Products, warehouses, kits, kit components, channels
 * and channel warehouses go to every partition unfiltered: a kit and its components may be in different
 * partitions, and each consumer recomputes the kits of the components it
 * streams, so each needs every kit's definition and every sku (they change
 * rarely).
 */
export interface Publications { publication: string; ledgerPublication?: string | undefined; partition?: Partition | undefined }

/** The publications a consumer names to pgoutput. */
export function publicationNames(p: Publications): string[] {
  return p.ledgerPublication ? [p.publication, p.ledgerPublication] : [p.publication];
}

/** One table of a publication: its published columns, and a row filter (SQL, or undefined for every row). */
interface PublishedTable { table: string; filter?: string }

export async function ensurePublications(client: Pick<pg.Pool, 'query'>, p: Publications): Promise<void> {
  if (!p.partition || !p.ledgerPublication) return ensurePublication(client, p.publication, PUBLISHED_TABLES.map((table) => ({ table })));
  const byProduct = (column: string) => inPartitionSql(column, p.partition!);
  await ensurePublication(client, p.publication, [
    { table: 'inventory.products' }, { table: 'inventory.warehouses' },
    { table: 'inventory.stock_levels', filter: byProduct('product_id') },
    { table: 'inventory.kits' }, { table: 'inventory.kit_components' },
    { table: 'inventory.channels' }, { table: 'inventory.channel_warehouses' },
  ]);
  await ensurePublication(client, p.ledgerPublication, [{ table: 'inventory.movements', filter: byProduct('product_id') }], 'insert');
}

/** Creates the publication, or brings an existing one to these tables and columns (one made by an earlier version lists every column). */
async function ensurePublication(client: Pick<pg.Pool, 'query'>, name: string, wanted: PublishedTable[],
  publish = 'insert, update, delete, truncate'): Promise<void> {
  const entry = ({ table, filter }: PublishedTable) => `${table} (${PUBLISHED_COLUMNS[table]!.join(', ')})${filter ? ` where (${filter})` : ''}`;
  const tables = wanted.map(entry).join(', ');
  const { rows } = await client.query<{ table: string; columns: string[]; filtered: boolean }>(
    `select schemaname || '.' || tablename as table, attnames::text[] as columns, rowfilter is not null as filtered
     from pg_publication_tables where pubname = $1`, [name]);
  const shape = (list: Array<{ table: string; columns: readonly string[]; filtered: boolean }>) =>
    list.map((t) => `${t.table}(${[...t.columns].sort().join()})${t.filtered ? ' filtered' : ''}`).sort().join(' ');
  const exists = (await client.query('select 1 from pg_publication where pubname = $1', [name])).rowCount === 1;
  const ident = pg.escapeIdentifier(name);
  try {
    if (!exists) {
      await client.query(`create publication ${ident} for table ${tables} with (publish = '${publish}')`);
    } else if (shape(rows) !== shape(wanted.map((w) => ({ table: w.table, columns: PUBLISHED_COLUMNS[w.table]!, filtered: w.filter !== undefined })))) {
      await client.query(`alter publication ${ident} set table ${tables}`);
    }
  } catch (cause) {
    if ((cause as { code?: string }).code === '42710') return; // created concurrently by another consumer
    throw new ServiceUnavailableError(`cannot create publication ${name}: ${(cause as Error).message}; run stockroom as the owner of schema inventory, or create it: CREATE PUBLICATION ${ident} FOR TABLE ${tables}`, { cause });
  }
}

export interface SlotState {
  name: string;
  activePid: number | null;
  confirmedFlushLsn: Lsn | undefined;
  /** reserved | extended | unreserved | lost */
  walStatus: string | null;
  /** Postgres gave up on it (WAL removed, or invalidated): it can stream no more. */
  invalid: boolean;
  lagBytes: number | null;
  retainedBytes: number | null;
}

export async function inspectSlot(client: Pick<pg.Pool, 'query'>, name: string): Promise<SlotState | undefined> {
  const { rows } = await client.query<{
    active_pid: number | null; confirmed_flush_lsn: string | null; wal_status: string | null;
    invalidation_reason: string | null; lag_bytes: string | null; retained_bytes: string | null; plugin: string | null;
  }>(`
    select active_pid, confirmed_flush_lsn::text, wal_status, plugin,
           ${(await serverVersion(client)) >= 170000 ? 'invalidation_reason' : 'null::text as invalidation_reason'},
           (pg_current_wal_lsn() - confirmed_flush_lsn)::text as lag_bytes,
           (pg_current_wal_lsn() - restart_lsn)::text as retained_bytes
    from pg_replication_slots where slot_name = $1 and slot_type = 'logical'`, [name]);
  const row = rows[0];
  if (!row) return undefined;
  if (row.plugin !== 'pgoutput') {
    throw new ServiceUnavailableError(`replication slot ${name} uses plugin ${row.plugin}, not pgoutput: drop it (select pg_drop_replication_slot('${name}')) or set STOCKROOM_SLOT to another name`);
  }
  return {
    name,
    activePid: row.active_pid,
    confirmedFlushLsn: row.confirmed_flush_lsn ? parseLsn(row.confirmed_flush_lsn) : undefined,
    walStatus: row.wal_status,
    invalid: row.wal_status === 'lost' || row.invalidation_reason !== null || row.confirmed_flush_lsn === null,
    lagBytes: row.lag_bytes === null ? null : Number(row.lag_bytes),
    retainedBytes: row.retained_bytes === null ? null : Number(row.retained_bytes),
  };
}

async function serverVersion(client: Pick<pg.Pool, 'query'>): Promise<number> {
  const { rows } = await client.query<{ v: string }>(`select current_setting('server_version_num') as v`);
  return Number(rows[0]!.v);
}

export async function dropSlot(client: Pick<pg.Pool, 'query'>, name: string): Promise<void> {
  await client.query('select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1', [name]);
}

/** Identifies the database a cache mirrors, so a cache of another database is never trusted. */
export async function sourceIdentity(client: Pick<pg.Pool, 'query'>, slot: string): Promise<string> {
  const { rows } = await client.query<{ id: string; db: string }>(
    'select system_identifier::text as id, current_database() as db from pg_control_system()');
  return `${rows[0]!.id}/${rows[0]!.db}/${slot}`;
}

export interface CreatedSlot {
  consistentPoint: Lsn;
  /** Usable with SET TRANSACTION SNAPSHOT until close(). */
  snapshotName: string;
  close(): Promise<void>;
}

/**
 * Creates the slot over a replication connection and exports its snapshot:
 * a transaction that reads with that snapshot sees exactly the data the slot
 * starts after, so a rebuild from it has no gap and no overlap with the stream.
 */
export async function createSlotWithSnapshot(databaseUrl: string, name: string): Promise<CreatedSlot> {
  const replication = new pg.Client({ connectionString: databaseUrl, replication: 'database', application_name: 'stockroom slot setup' } as pg.ClientConfig);
  replication.on('error', () => {});
  await replication.connect();
  try {
    const { rows } = await replication.query<{ consistent_point: string; snapshot_name: string }>(
      `CREATE_REPLICATION_SLOT ${pg.escapeIdentifier(name)} LOGICAL pgoutput (SNAPSHOT 'export')`);
    return {
      consistentPoint: parseLsn(rows[0]!.consistent_point),
      snapshotName: rows[0]!.snapshot_name,
      close: () => replication.end(),
    };
  } catch (error) {
    await replication.end().catch(() => {});
    throw error;
  }
}
