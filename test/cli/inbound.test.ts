// `stockroom inbound`: the open inbound lines as a table or JSON; filters; an
// unknown sku as one line.
import test from 'ava';
import { openTestDatabase } from '../helpers/database.ts';
import { queryOne, setupCatalog } from '../helpers/inventory.ts';
import { cliEnv, isOneLineError, removeCliDataDirs, runCli } from './run-cli.ts';

test.after.always(removeCliDataDirs);

test('inbound lists what is on its way, soonest first, with what is outstanding and overdue', async (t) => {
  const db = await openTestDatabase('cli_inbound');
  t.teardown(() => db.close());
  await setupCatalog(db, { A: { WH1: 1, WH2: 0 }, B: { WH1: 0 } });
  const po = await queryOne<{ id: string }>(db, `select id from inventory.create_inbound('PO-9', '[
    {"sku": "A", "warehouse": "WH1", "qty": 10, "expected_at": "2099-03-01T00:00:00Z"},
    {"sku": "A", "warehouse": "WH2", "qty": 4, "expected_at": "2000-01-01T00:00:00Z"},
    {"sku": "B", "warehouse": "WH1", "qty": 2, "expected_at": "2099-02-01T00:00:00Z"}]')`);
  await db.query(`select inventory.receive_inbound($1, '[{"sku": "A", "warehouse": "WH1", "qty": 3}]')`, [po.id]);
  await db.query(`select inventory.receive_inbound($1, '[{"sku": "B", "qty": 2}]')`, [po.id]);
  const env = cliEnv({ DATABASE_URL: db.url });

  const table = await runCli(['inbound'], env);
  t.is(table.code, 0, table.stderr);
  const lines = table.stdout.trim().split('\n'); // a heading, a rule, the rows, a summary
  t.regex(lines[2]!, /2000-01-01.*PO-9\s+PURCHASE\s+A\s+WH2\s+4\s+0\s+4\s+OPEN\s+OVERDUE/);
  t.regex(lines[3]!, /2099-03-01.*PO-9\s+PURCHASE\s+A\s+WH1\s+10\s+3\s+7\s+PARTIAL/);
  t.is(lines.at(-1), '2 line(s), 11 unit(s) outstanding, 1 overdue');

  const json = await runCli(['inbound', '--sku', 'A', '--warehouse', 'WH1', '--json'], env);
  t.is(json.code, 0, json.stderr);
  t.like(JSON.parse(json.stdout), { lines: [{ inboundId: po.id, reference: 'PO-9', sku: 'A', warehouse: 'WH1', expected: 10, received: 3, outstanding: 7, status: 'PARTIAL', overdue: false, shipmentStatus: 'PARTIAL' }] });
  t.is(JSON.parse(json.stdout).lines.length, 1);
  const all = await runCli(['inbound', '--all', '--json'], env);
  t.deepEqual(JSON.parse(all.stdout).lines.map((l: { sku: string; status: string }) => `${l.sku}:${l.status}`), ['A:OPEN', 'B:RECEIVED', 'A:PARTIAL']);

  const unknown = await runCli(['inbound', '--sku', 'NOPE'], env);
  t.is(unknown.code, 1);
  t.true(isOneLineError(unknown.stderr), unknown.stderr);
  t.regex(unknown.stderr, /^stockroom: unknown sku 'NOPE'/);
});
