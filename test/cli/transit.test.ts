// `stockroom transit`: open shipments of transfers in transit, as a table and as JSON, filtered.
import test from 'ava';
import { openTestDatabase } from '../helpers/database.ts';
import { queryOne, setupCatalog } from '../helpers/inventory.ts';
import { cliEnv, removeCliDataDirs, runCli } from './run-cli.ts';

test.after.always(removeCliDataDirs);

test('lists open shipments (not closed ones) as a table and as JSON, filtered by sku, source and destination', async (t) => {
  const db = await openTestDatabase('cli_transit');
  t.teardown(() => db.close());
  await setupCatalog(db, { A: { WH1: 10, WH2: 10 }, B: { WH1: 10, WH3: 0 } });
  const env = cliEnv({ DATABASE_URL: db.url });
  const empty = await runCli(['transit'], env);
  t.is(empty.code, 0, empty.stderr);
  t.regex(empty.stdout, /no shipments in transit/);

  const a = await queryOne<{ id: string }>(db, `select id from inventory.ship_transfer('A', 'WH1', 'WH2', 4, 'rebalance')`);
  await db.query(`select inventory.receive_transfer($1, 1, 'part')`, [a.id]);
  await db.query(`select inventory.ship_transfer('B', 'WH1', 'WH3', 2, 'rebalance')`);
  const done = await queryOne<{ id: string }>(db, `select id from inventory.ship_transfer('A', 'WH2', 'WH1', 1, 'back')`);
  await db.query(`select inventory.receive_transfer($1, 1, 'all')`, [done.id]);

  const table = await runCli(['transit'], env);
  t.is(table.code, 0, table.stderr);
  t.regex(table.stdout, new RegExp(`${a.id}\\s+A\\s+WH1\\s+WH2\\s+PARTIAL\\s+4\\s+1\\s+0\\s+3`));
  t.regex(table.stdout, /2 open shipment\(s\), 5 units in transit/);
  t.notRegex(table.stdout, new RegExp(done.id));

  const json = await runCli(['transit', '--to', 'WH3', '--json'], env);
  t.is(json.code, 0, json.stderr);
  t.like(JSON.parse(json.stdout), { shipments: [{ sku: 'B', from: 'WH1', to: 'WH3', status: 'IN_TRANSIT', shipped: 2, inTransit: 2 }] });
  t.is(JSON.parse((await runCli(['transit', '--sku', 'A', '--json'], env)).stdout).shipments.length, 1);
});
