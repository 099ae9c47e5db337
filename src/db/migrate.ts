// Migration runner. migrations/NNNNNN_name.sql apply in order, each in its own
// transaction that records it first, under an advisory lock so two runners at
// once are safe (the second waits, then finds nothing to do). A migration is
// never edited once applied: its checksum is kept and checked. Then the
// functions in sql/functions/ and sql/grants.sql are re-applied (CREATE OR
// REPLACE) in one transaction, but only when their text changed, so a start
// does not invalidate every session's cached plans for nothing.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Logger as WorkerLogger, runMigrations as runWorkerMigrations } from 'graphile-worker';
import pg from 'pg';
import { MigrationError } from '../errors.ts';
import type { Logger } from '../log.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
export const MIGRATIONS_DIR = path.join(root, 'migrations');
export const FUNCTIONS_DIR = path.join(root, 'sql', 'functions');
export const GRANTS_FILE = path.join(root, 'sql', 'grants.sql');

const silentWorkerLogger = new WorkerLogger(() => () => {});

/** Any constant: it only has to be the same for every Stockroom migrator. */
const ADVISORY_LOCK_KEY = 7_466_001_202_411;

export interface Migration { id: number; name: string; sql: string; checksum: string }

/**
 * Earlier texts of a migration that databases may have recorded, and that
 * count as this one. The only way a released migration changes: when what it
 * did must not be done on new databases and undoing it is not needed on old
 * ones. 000002 registered task identifiers in graphile-worker's private
 * tables; graphile-worker registers them itself (add_job), and nothing of
 * Stockroom touches its private tables any more.
 */
const EARLIER_CHECKSUMS: Record<string, readonly string[]> = {
  '000002_jobs.sql': ['ffa2ce069b1e03ab2637d80c56482ac215b1252df68f3a21df4148cb6fc5155d'],
};
export interface MigrateResult { applied: string[]; functionsApplied: boolean }

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const migrations = readdirSync(dir)
    .filter((file) => file.endsWith('.sql'))
    .map((file) => {
      const match = /^(\d{6})_([a-z0-9_]+)\.sql$/.exec(file);
      if (!match) throw new MigrationError(`migration file ${file} must be named NNNNNN_name.sql (six digits, lower-case name)`);
      const sql = readFileSync(path.join(dir, file), 'utf8');
      return { id: Number(match[1]), name: file, sql, checksum: sha256(sql) };
    })
    .sort((a, b) => a.id - b.id);
  migrations.forEach((m, i) => {
    if (m.id !== i + 1) throw new MigrationError(`migrations must be numbered 1, 2, 3, … without gaps or repeats; ${m.name} is number ${i + 1}`);
  });
  return migrations;
}

/** All function files in name order (helpers are named _*, so they come first), then the grants. */
export function readFunctionsScript(dir = FUNCTIONS_DIR, grantsFile = GRANTS_FILE): string {
  const files = readdirSync(dir).filter((f) => f.endsWith('.sql')).sort();
  return [...files.map((f) => `-- ${f}\n${readFileSync(path.join(dir, f), 'utf8')}`), readFileSync(grantsFile, 'utf8')].join('\n');
}

function describe(error: unknown, sql: string): string {
  const e = error as { message?: string; position?: string; where?: string };
  let where = '';
  if (e.position) {
    // Report the line within the file that failed (the functions script joins many files, each headed "-- name.sql").
    const before = sql.slice(0, Number(e.position)).split('\n');
    const header = before.findLastIndex((line) => /^-- [\w.]+\.sql$/.test(line));
    where = header >= 0 ? ` (${before[header]!.slice(3)}, line ${before.length - header - 1})` : ` (line ${before.length})`;
  }
  return `${e.message ?? String(error)}${where}`;
}

export interface MigrationSources { migrationsDir?: string; functionsDir?: string; grantsFile?: string }

export async function migrate(databaseUrl: string, log: Logger, sources: MigrationSources = {}): Promise<MigrateResult> {
  const migrations = readMigrations(sources.migrationsDir);
  const functionsScript = readFunctionsScript(sources.functionsDir, sources.grantsFile);
  const functionsChecksum = sha256(functionsScript);
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'stockroom migrate' });
  client.on('error', (error) => log.error({ err: error }, 'migration connection error'));
  await client.connect();
  const applied: string[] = [];
  try {
    await client.query('select pg_advisory_lock($1)', [ADVISORY_LOCK_KEY]);
    // graphile-worker's schema first: Stockroom's migrations and functions refer to it.
    try {
      await runWorkerMigrations({ connectionString: databaseUrl, logger: silentWorkerLogger });
    } catch (error) {
      throw new MigrationError(`graphile-worker's migrations failed: ${(error as Error).message}`, { cause: error });
    }
    await client.query(`
      create schema if not exists stockroom_meta;
      create table if not exists stockroom_meta.migrations (
        id integer primary key, name text not null, checksum text not null, applied_at timestamptz not null default now());
      create table if not exists stockroom_meta.state (key text primary key, value text not null);`);

    const { rows: done } = await client.query<{ id: number; name: string; checksum: string }>(
      'select id, name, checksum from stockroom_meta.migrations order by id');
    for (const row of done) {
      const known = migrations.find((m) => m.id === row.id);
      if (!known) {
        throw new MigrationError(`the database has migration ${row.name}, which this version of Stockroom does not know: run a newer Stockroom`);
      }
      if (known.checksum !== row.checksum && !EARLIER_CHECKSUMS[known.name]?.includes(row.checksum)) {
        throw new MigrationError(`${known.name} was edited after it was applied; migrations are append-only: restore it and add a new migration instead`);
      }
    }

    for (const migration of migrations.filter((m) => !done.some((d) => d.id === m.id))) {
      log.info({ migration: migration.name }, 'applying migration');
      try {
        await client.query('begin');
        await client.query('insert into stockroom_meta.migrations (id, name, checksum) values ($1, $2, $3)',
          [migration.id, migration.name, migration.checksum]);
        await client.query(migration.sql);
        await client.query('commit');
      } catch (error) {
        await client.query('rollback').catch(() => {});
        throw new MigrationError(`migration ${migration.name} failed and was rolled back: ${describe(error, migration.sql)}`, { cause: error });
      }
      applied.push(migration.name);
    }

    const { rows: state } = await client.query<{ value: string }>(
      "select value from stockroom_meta.state where key = 'functions_checksum'");
    const functionsApplied = applied.length > 0 || state[0]?.value !== functionsChecksum;
    if (functionsApplied) {
      try {
        await client.query('begin');
        await client.query(functionsScript);
        await client.query(
          `insert into stockroom_meta.state (key, value) values ('functions_checksum', $1)
           on conflict (key) do update set value = excluded.value`, [functionsChecksum]);
        await client.query('commit');
      } catch (error) {
        await client.query('rollback').catch(() => {});
        throw new MigrationError(`applying sql/functions failed and was rolled back: ${describe(error, functionsScript)}`, { cause: error });
      }
      log.info('functions applied');
    }
    return { applied, functionsApplied };
  } finally {
    await client.query('select pg_advisory_unlock_all()').catch(() => {});
    await client.end().catch(() => {});
  }
}
