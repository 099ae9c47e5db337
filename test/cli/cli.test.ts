import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { jwtVerify } from 'jose';
import pg from 'pg';
import { readMigrations } from '../../src/db/migrate.ts';
import { freePort } from '../../src/harness/processes.ts';
import { createDatabase, openTestDatabase } from '../helpers/database.ts';
import { testServers } from '../helpers/environment.ts';
import { CLI, cliEnv, isOneLineError, removeCliDataDirs, runCli, startOwnPostgres } from './run-cli.ts';

test.after.always(removeCliDataDirs);

test('--help lists the commands with examples', async (t) => {
  const result = await runCli(['--help'], cliEnv({}));
  t.is(result.code, 0);
  for (const command of ['start', 'migrate', 'seed', 'sql']) t.regex(result.stdout, new RegExp(`\\b${command}\\b`));
  const seedHelp = await runCli(['seed', '--help'], cliEnv({}));
  t.regex(seedHelp.stdout, /Examples:\n {2}stockroom seed --products 10000 --warehouses 20/);
});

test('migrate --json on a blank database, then again', async (t) => {
  const database = await createDatabase('cli_migrate', 'template0');
  t.teardown(() => database.drop());
  const env = cliEnv({ DATABASE_URL: database.url });
  const first = await runCli(['migrate', '--json'], env);
  t.is(first.code, 0, first.stderr);
  t.deepEqual(JSON.parse(first.stdout), { applied: ['000001_inventory_schema.sql', '000002_jobs.sql', '000003_lean_reserve.sql', '000004_public_catalog.sql', '000005_task_runs.sql', '000006_kits_backorders_edits.sql', '000007_inbound.sql', '000008_transit.sql', '000009_quantity_states.sql', '000010_channels.sql'], functionsApplied: true });
  const second = await runCli(['migrate', '--json'], env);
  t.deepEqual(JSON.parse(second.stdout), { applied: [], functionsApplied: false });
});

test('seed creates products × warehouses with their receipts, and adds only what is missing when re-run', async (t) => {
  const db = await openTestDatabase('cli_seed');
  t.teardown(() => db.close());
  const env = cliEnv({ DATABASE_URL: db.url });
  const result = await runCli(['seed', '--products', '30', '--warehouses', '3', '--units', '7', '--json'], env);
  t.is(result.code, 0, result.stderr);
  t.like(JSON.parse(result.stdout), { products: 30, warehouses: 3, stockRows: 90 });
  t.regex(result.stderr, /seeded in [\d.]+ s: 30 new products, 3 new warehouses, 90 new stock rows/);
  const { rows } = await db.query(`select count(*)::int as rows, sum(on_hand)::int as units,
    (select count(*)::int from inventory.movements where kind = 'RECEIVE') as receipts from inventory.stock_levels`);
  t.deepEqual(rows[0], { rows: 90, units: 630, receipts: 90 });
  const again = await runCli(['seed', '--products', '40', '--warehouses', '3', '--units', '7', '--json'], env);
  t.like(JSON.parse(again.stdout), { products: 10, warehouses: 0, stockRows: 30 });
});

test('a misspelled command is one usage line with the suggestion, exit 2', async (t) => {
  const result = await runCli(['stok', 'SKU-1'], cliEnv({}));
  t.is(result.code, 2);
  t.true(isOneLineError(result.stderr), result.stderr);
  t.regex(result.stderr, /unknown command 'stok' \(Did you mean stock\?\)/);
});

test('seed refuses a bad count with a usage error', async (t) => {
  const result = await runCli(['seed', '--products', 'lots'], cliEnv({}));
  t.not(result.code, 0);
  t.regex(result.stderr, /option '--products <n>' argument 'lots' is invalid\. expected a whole number of at least 1/);
});

test('a malformed DATABASE_URL is one line naming the variable', async (t) => {
  const result = await runCli(['migrate'], cliEnv({ DATABASE_URL: 'localhost:5432/stock' }));
  t.is(result.code, 1);
  t.true(isOneLineError(result.stderr), result.stderr);
  t.regex(result.stderr, /^stockroom: DATABASE_URL must be a URL like postgres:\/\/user:password@host:5432\/database/);
});

test('an unreachable database is one line saying what to do', async (t) => {
  const port = await freePort();
  const result = await runCli(['migrate'], cliEnv({ DATABASE_URL: `postgres://stockroom:secret@127.0.0.1:${port}/stock` }));
  t.is(result.code, 1);
  t.true(isOneLineError(result.stderr), result.stderr);
  t.regex(result.stderr, new RegExp(`cannot connect to PostgreSQL at postgres://stockroom:\\*\\*\\*@127.0.0.1:${port}/stock \\(ECONNREFUSED\\): start it, or fix DATABASE_URL`));
});

test('start refuses a server without logical WAL, in one line', async (t) => {
  const server = await startOwnPostgres(t, 'replica', { wal_level: 'replica' });
  const result = await runCli(['start'], cliEnv({ DATABASE_URL: server.url(), REDIS_URL: testServers().redisUrl, LOG_LEVEL: 'silent' }));
  t.is(result.code, 1);
  t.true(isOneLineError(result.stderr), result.stderr);
  t.regex(result.stderr, /runs with wal_level=replica; Stockroom needs wal_level=logical: run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL/);
});

test('start migrates, reports where things are, and stops cleanly on SIGTERM', async (t) => {
  const database = await createDatabase('cli_start', 'template0');
  t.teardown(() => database.drop());
  const child = spawn(process.execPath, [CLI, 'start'], {
    env: cliEnv({ DATABASE_URL: database.url, REDIS_URL: testServers().redisUrl, LOG_LEVEL: 'silent' }),
  });
  let stdout = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      stdout += d;
      if (stdout.includes('Press Ctrl-C to stop.')) resolve();
    });
    child.on('exit', () => reject(new Error(`start exited early: ${stdout}`)));
  });
  t.regex(stdout, /PostgreSQL {2}postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/t_cli_start_/, 'a URL from the environment is shown without its password');
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  const { rows } = await client.query('select count(*)::int as n from stockroom_meta.migrations');
  await client.end();
  t.is(rows[0].n, readMigrations().length, 'migrated before reporting ready');
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.is(await exited, 0);
});

test('sql runs psql on the database', async (t) => {
  const db = await openTestDatabase('cli_sql');
  t.teardown(() => db.close());
  const result = await runCli(['sql', '--', '-At', '-c', 'select count(*) from inventory.products'], cliEnv({ DATABASE_URL: db.url }));
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout.trim(), '0');
  // An error of the SQL API: its SQLSTATE shown, and none of the helpers' CONTEXT lines.
  const refused = await runCli(['sql', '--', '-c', `select inventory.reserve('o-1', '[{"sku": "NOPE", "warehouse": "WH1", "qty": 1}]')`], cliEnv({ DATABASE_URL: db.url }));
  t.is(refused.code, 1);
  t.regex(refused.stderr, /^ERROR: {2}IV004: unknown sku 'NOPE'/m);
  t.notRegex(refused.stderr, /CONTEXT:/);
});

test('logs are JSON lines when stderr is no terminal, and readable lines with LOG_FORMAT=pretty', async (t) => {
  for (const [format, check] of [['auto', /^\{"level":30,/m], ['pretty', /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: /m]] as const) {
    const database = await createDatabase(`cli_log_${format}`, 'template0'); // blank: migrate logs what it applies
    t.teardown(() => database.drop());
    const result = await runCli(['migrate'], cliEnv({ DATABASE_URL: database.url, LOG_LEVEL: 'info', LOG_FORMAT: format }));
    t.is(result.code, 0, result.stderr);
    t.regex(result.stderr, check, `${format}: ${result.stderr.slice(0, 300)}`);
    if (format === 'pretty') t.notRegex(result.stderr, /^\{/m, 'no JSON line');
  }
});

test('./stockroom runs the CLI on the project\'s Node from anywhere (the launcher the README names)', async (t) => {
  const launcher = fileURLToPath(new URL('../../stockroom', import.meta.url));
  const result = spawnSync(launcher, ['--help'], { cwd: os.tmpdir(), env: { PATH: '/usr/bin:/bin', HOME: process.env.HOME }, encoding: 'utf8' });
  t.is(result.status, 0, result.stderr);
  t.regex(result.stdout, /^Usage: stockroom \[options\] \[command\]/);
  t.is(result.stderr, '', 'no warning');
});

test('with nothing running and no DATABASE_URL, read-only commands say so in one line and start no server', async (t) => {
  const env = cliEnv({});
  for (const args of [['jobs', '--json'], ['slot'], ['stock', 'A'], ['cache', 'verify']]) {
    const result = await runCli(args, env);
    t.is(result.code, 1, args.join(' '));
    t.true(isOneLineError(result.stderr), result.stderr);
    t.regex(result.stderr, /^stockroom: Stockroom is not running \(no embedded PostgreSQL on .*\): start it with `npm start`/, args.join(' '));
    t.false(existsSync(path.join(env.STOCKROOM_DATA_DIR!, 'postgres', 'cluster')), `${args.join(' ')} made no cluster`);
  }
});

test('token prints a token the API accepts for the role, as a header when asked; a role it does not know is a usage error', async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'stockroom-token-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = cliEnv({ STOCKROOM_DATA_DIR: dataDir, JWT_SECRET: '' });
  const plain = await runCli(['token', '--role', 'reader', '--sub', 'ops', '--expires', '15m'], env);
  t.is(plain.code, 0, plain.stderr);
  const secret = readFileSync(path.join(dataDir, 'jwt-secret'), 'utf8').trim();
  t.regex(secret, /^[0-9a-f]{64}$/, 'a development secret was made in the data directory');
  t.is(statSync(path.join(dataDir, 'jwt-secret')).mode & 0o777, 0o600, 'readable by its owner only');
  const { payload } = await jwtVerify(plain.stdout.trim(), new TextEncoder().encode(secret));
  t.like(payload, { role: 'stockroom_reader', sub: 'ops' });
  t.is(payload.exp! - payload.iat!, 900);
  const header = await runCli(['token', '--header'], env);
  t.regex(header.stdout, /^Authorization: Bearer [\w-]+\.[\w-]+\.[\w-]+\n$/);
  t.is(readFileSync(path.join(dataDir, 'jwt-secret'), 'utf8').trim(), secret, 'the same secret the next time');
  const json = await runCli(['token', '--role', 'stockroom_admin', '--json'], env);
  t.like(JSON.parse(json.stdout), { role: 'stockroom_admin', sub: null, secret: path.join(dataDir, 'jwt-secret') });
  const bad = await runCli(['token', '--role', 'postgres'], env);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /^stockroom: --role postgres is none of public, reader, writer, admin\n$/);
  const production = await runCli(['token'], cliEnv({ STOCKROOM_DATA_DIR: dataDir, JWT_SECRET: '', NODE_ENV: 'production' }));
  t.is(production.code, 2);
  t.regex(production.stderr, /JWT_SECRET is not set/);
});
