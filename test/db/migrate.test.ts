import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import pg from 'pg';
import { FUNCTIONS_DIR, GRANTS_FILE, MIGRATIONS_DIR, migrate, readMigrations } from '../../src/db/migrate.ts';
import { MigrationError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import { createDatabase } from '../helpers/database.ts';

const log = createLogger('silent');
const MIGRATION_COUNT = readMigrations().length;

async function withBlankDatabase(label: string, body: (url: string, query: (sql: string) => Promise<pg.QueryResult>) => Promise<void>) {
  const database = await createDatabase(label, 'template0');
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    await body(database.url, (sql) => client.query(sql));
  } finally {
    await client.end();
    await database.drop();
  }
}

const tempDirs: string[] = [];
test.after.always(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function copyOfMigrations(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stockroom-migrations-'));
  tempDirs.push(dir);
  cpSync(MIGRATIONS_DIR, dir, { recursive: true });
  return dir;
}

test('a fresh database gets every migration, the functions and the grants', async (t) => {
  await withBlankDatabase('fresh', async (url, query) => {
    const result = await migrate(url, log);
    t.deepEqual(result.applied, ['000001_inventory_schema.sql', '000002_jobs.sql', '000003_lean_reserve.sql', '000004_public_catalog.sql', '000005_task_runs.sql', '000006_kits_backorders_edits.sql', '000007_inbound.sql', '000008_transit.sql', '000009_quantity_states.sql', '000010_channels.sql']);
    t.true(result.functionsApplied);
    const { rows } = await query(`select count(*)::int as n from pg_proc where pronamespace = 'inventory'::regnamespace and proname = 'reserve'`);
    t.is(rows[0].n, 1);
    const { rows: grants } = await query(`select has_function_privilege('stockroom_writer', 'inventory.reserve(text, jsonb, interval, text)', 'execute') as ok`);
    t.true(grants[0].ok);
  });
});

test('an up-to-date database is left alone, functions included', async (t) => {
  await withBlankDatabase('rerun', async (url, query) => {
    await migrate(url, log);
    const { rows: before } = await query(`select xmin::text from pg_proc where oid = 'inventory.reserve(text, jsonb, interval, text)'::regprocedure`);
    const again = await migrate(url, log);
    t.deepEqual(again, { applied: [], functionsApplied: false });
    const { rows: after } = await query(`select xmin::text from pg_proc where oid = 'inventory.reserve(text, jsonb, interval, text)'::regprocedure`);
    t.is(after[0].xmin, before[0].xmin, 'reserve() was not re-created');
  });
});

test('two migrators at once: both succeed, the schema is applied once', async (t) => {
  await withBlankDatabase('concurrent', async (url, query) => {
    const results = await Promise.all([migrate(url, log), migrate(url, log), migrate(url, log)]);
    t.is(results.flatMap((r) => r.applied).length, MIGRATION_COUNT, 'each migration applied by exactly one of them');
    const { rows } = await query('select count(*)::int as n from stockroom_meta.migrations');
    t.is(rows[0].n, MIGRATION_COUNT);
  });
});

test('a failing migration is rolled back whole and named in the error', async (t) => {
  const dir = copyOfMigrations();
  const broken = `${String(MIGRATION_COUNT + 1).padStart(6, '0')}_broken.sql`;
  writeFileSync(path.join(dir, broken), 'create table inventory.half_done (id int);\nselect 1/0;\n');
  await withBlankDatabase('failing', async (url, query) => {
    const error = await t.throwsAsync(migrate(url, log, { migrationsDir: dir }), { instanceOf: MigrationError });
    t.regex(error!.message, new RegExp(`${broken.replace('.', '\\.')} failed and was rolled back: division by zero`));
    const { rows } = await query(`select to_regclass('inventory.half_done') is null as gone, (select count(*)::int from stockroom_meta.migrations) as recorded`);
    t.deepEqual(rows[0], { gone: true, recorded: MIGRATION_COUNT }, 'the good migrations stay, nothing of the broken one');
  });
});

test('an edited migration is refused', async (t) => {
  const dir = copyOfMigrations();
  await withBlankDatabase('edited', async (url) => {
    await migrate(url, log, { migrationsDir: dir });
    writeFileSync(path.join(dir, '000001_inventory_schema.sql'), '-- edited\n', { flag: 'a' });
    const error = await t.throwsAsync(migrate(url, log, { migrationsDir: dir }), { instanceOf: MigrationError });
    t.regex(error!.message, /000001_inventory_schema\.sql was edited after it was applied/);
  });
});

test('a database that recorded the earlier text of 000002 (before it stopped writing graphile-worker\'s private tables) migrates on', async (t) => {
  await withBlankDatabase('earlier_000002', async (url, query) => {
    await migrate(url, log);
    await query(`update stockroom_meta.migrations set checksum = 'ffa2ce069b1e03ab2637d80c56482ac215b1252df68f3a21df4148cb6fc5155d' where id = 2`);
    const result = await migrate(url, log);
    t.deepEqual(result.applied, []);
    await query(`update stockroom_meta.migrations set checksum = 'something else' where id = 2`);
    const error = await t.throwsAsync(migrate(url, log), { instanceOf: MigrationError });
    t.regex(error!.message, /000002_jobs\.sql was edited after it was applied/, 'any other text is still refused');
  });
});

test('a database migrated by a newer Stockroom is refused', async (t) => {
  await withBlankDatabase('newer', async (url, query) => {
    await migrate(url, log);
    await query(`insert into stockroom_meta.migrations (id, name, checksum) values (999, '000999_future.sql', 'x')`);
    const error = await t.throwsAsync(migrate(url, log), { instanceOf: MigrationError });
    t.regex(error!.message, /000999_future\.sql, which this version of Stockroom does not know/);
  });
});

test('a broken function file names the file and rolls back the functions', async (t) => {
  const functionsDir = mkdtempSync(path.join(os.tmpdir(), 'stockroom-functions-'));
  tempDirs.push(functionsDir);
  cpSync(FUNCTIONS_DIR, functionsDir, { recursive: true });
  writeFileSync(path.join(functionsDir, 'zz_broken.sql'), 'create or replace function inventory.zz() returns int language plpgsql as $$ begin retur 1; end $$;\n');
  await withBlankDatabase('broken_function', async (url, query) => {
    const error = await t.throwsAsync(migrate(url, log, { functionsDir, grantsFile: GRANTS_FILE }), { instanceOf: MigrationError });
    t.regex(error!.message, /applying sql\/functions failed and was rolled back: .*\(zz_broken\.sql, line 1\)/);
    const { rows } = await query(`select to_regprocedure('inventory.reserve(text, jsonb, interval, text)') is null as absent`);
    t.true(rows[0].absent, 'no function of the failed run was kept');
  });
});
