// The README's walkthrough runs as written: its SQL block, in order, through
// psql on a fresh database (ON_ERROR_STOP: any error fails the test), then the
// GraphQL requests of its curl block against the API, the reserve with a
// token from `stockroom token`. So the README cannot drift from what works.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { findExecutable } from '../src/harness/processes.ts';
import { JWT_SECRET, startTestApi } from './helpers/api.ts';
import { openTestDatabase } from './helpers/database.ts';
import { invariantViolations } from './helpers/invariants.ts';
import { stockOf } from './helpers/inventory.ts';
import { cliEnv, runCli } from './cli/run-cli.ts';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The first fenced block of a language after a heading. */
function blockAfter(heading: string, language: string): string {
  const from = README.indexOf(heading);
  if (from < 0) throw new Error(`README has no heading ${heading}`);
  const match = new RegExp('```' + language + '\\n([\\s\\S]*?)```').exec(README.slice(from));
  if (!match) throw new Error(`README has no ${language} block after ${heading}`);
  return match[1]!;
}

test('the README walkthrough: its SQL runs in order without an error, and its GraphQL requests answer', async (t) => {
  const psql = findExecutable('psql');
  if (!psql) return t.fail('psql is needed to run the README\'s SQL');
  const db = await openTestDatabase('readme');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stockroom-readme-'));
  t.teardown(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const sql = blockAfter('## The SQL API', 'sql');
  const file = path.join(dir, 'walkthrough.sql');
  writeFileSync(file, sql);
  // As `stockroom sql` runs psql: errors with their SQLSTATE, no helpers' CONTEXT.
  const run = spawnSync(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-v', 'SHOW_CONTEXT=never', '-f', file, db.url], { encoding: 'utf8' });
  t.is(run.status, 0, `the README's SQL failed:\n${run.stderr}`);
  t.notRegex(run.stderr, /ERROR/);
  t.regex(run.stdout, /SKU-1\s*\|\s*WH1\s*\|\s*5/, 'what order-77 holds, by sku and warehouse');
  // 40 received, order-77's 5 confirmed, counted 37 (expected 35), 5 moved to WH2.
  t.like(await stockOf(db, 'SKU-1', 'WH1'), { on_hand: 32 });
  t.like(await stockOf(db, 'SKU-1', 'WH2'), { on_hand: 5 });
  t.deepEqual(await invariantViolations(db), []);

  const api = await startTestApi(db.url, { label: 'readme' });
  t.teardown(() => api.stop());
  const curl = blockAfter('### Who may do what', 'sh');
  const payloads = [...curl.matchAll(/-d '([\s\S]*?)'(?:\n|$)/g)].map((m) => JSON.parse(m[1]!) as { query: string; variables?: Record<string, unknown> });
  t.is(payloads.length, 2, 'a query without a token and a reserve with one');
  const token = await runCli(['token', '--role', 'writer', '--sub', 'checkout'], cliEnv({ JWT_SECRET }));
  t.is(token.code, 0, token.stderr);
  const [query, reserve] = payloads;
  const read = await api.graphql<{ productBySku: { sku: string } }>(query!.query, query!.variables);
  t.is(read.errors, undefined, JSON.stringify(read.errors));
  t.is(read.data?.productBySku.sku, 'SKU-1');
  const reserved = await api.graphql<{ reserve: { status: string; lines: { nodes: unknown[] } } }>(reserve!.query, reserve!.variables, { token: token.stdout.trim() });
  t.is(reserved.errors, undefined, JSON.stringify(reserved.errors));
  t.is(reserved.data?.reserve.status, 'HELD', 'a new reservation, not an earlier one returned for a reused idempotency key');
  t.deepEqual(await invariantViolations(db), []);
});
