// The README runs as written. Every `sh` and `sql` block, in order, as a
// newcomer would type it in the project: a fresh `npm start` (embedded
// servers, a new data directory), then each command through bash (`npx stockroom` as `./stockroom`, the same program without npm),
// the SQL walkthrough through `stockroom sql`, the curl requests against
// the API that start serves. Each must exit 0 and, where the README says what
// it shows, show it. A command the test cannot run here (Docker, a terminal
// screen, a benchmark of minutes) is listed below with the reason; a listed
// command that is no longer in the README fails the test too, so the list
// cannot outlive what it excuses.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { waitFor } from './helpers/cache.ts';
import pg from 'pg';
import { invariantViolations, transitViolations } from './helpers/invariants.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** Commands not run as they stand, by their text (without the trailing # comment). */
const NOT_RUN: Record<string, string> = {
  'npm install && npm start': 'the test runs `npm start` itself, on the dependencies `npm ci` installed',
  'npm test': 'the suite this test is part of',
  'npx stockroom jobs --watch': 'a terminal screen; test/cli/operator.test.ts drives it',
  'npx stockroom bench reserve --seconds 10': 'minutes long; benchmarks are run by hand (bench/)',
  'JWT_SECRET=$(openssl rand -hex 32) docker compose up --build': 'needs Docker',
  'curl localhost:5678/ready': 'part of the Docker block (the compose stack)',
  'docker compose exec app node bin/stockroom.js seed --products 1000 --warehouses 5': 'needs Docker',
  'docker compose exec app node bin/stockroom.js slot': 'needs Docker',
  'docker compose exec postgres psql -U stockroom': 'needs Docker',
  'npm run bench:reserve': 'minutes long; benchmarks are run by hand',
  'npm run bench:cdc': 'minutes long; benchmarks are run by hand',
  'npm run bench:expiry': 'minutes long; benchmarks are run by hand',
  'npm run bench:api': 'minutes long; benchmarks are run by hand',
  'npm run bench:replica': 'minutes long; benchmarks are run by hand',
  'npm run bench:reserve -- --seconds 10 --json': 'minutes long; benchmarks are run by hand',
  "npm run bench:reserve -- --only 'hot row' --attribute": 'minutes long; benchmarks are run by hand',
};

/** Commands that serve until stopped: each must come up (its banner) and stop cleanly on SIGTERM. */
const SERVES = /^npx stockroom start\b/;

/** What some commands must show, beyond exiting 0. */
const SHOWS: Array<[RegExp, RegExp]> = [
  [/^npx stockroom migrate --json$/, /"applied"|"pending"|\[/],
  [/GET catalog:stock:SKU-1:available$/, /^\d+\s*$/],
  [/HGET catalog:stock:KETTLE:channels web$/, /^3\s*$/],
  [/HGETALL catalog:stock:KETTLE:channels$/, /^web\s+3\s*$/m],
  [/XREAD COUNT 10 STREAMS stock-events 0$/, /warehouse\.stock\.updated/],
  [/^npx stockroom slot$/, /\bok\b/],
  [/^npx stockroom slot --json/, /"status"/],
  [/^npx stockroom stock SKU-1$/, /WH1/],
  [/^curl .*productBySku/, /"sku":"SKU-1"/],
  [/^curl .*reserve\(/, /"status":"HELD"/],
];

interface Block { language: string; heading: string; text: string }

function blocks(): Block[] {
  const found: Block[] = [];
  for (const match of README.matchAll(/^```(\w*)\n([\s\S]*?)^```/gm)) {
    const language = match[1]!;
    if (language !== 'sh' && language !== 'sql') continue;
    const headings = [...README.slice(0, match.index).matchAll(/^#+ (.*)$/gm)];
    found.push({ language, heading: headings.at(-1)?.[1] ?? '(top)', text: match[2]! });
  }
  return found;
}

/** A shell block's commands: lines joined across `\` and across an open single quote; comments dropped. */
function commands(text: string): string[] {
  const result: string[] = [];
  let current = '';
  for (const line of text.split('\n')) {
    if (current === '' && (line.trim() === '' || line.trim().startsWith('#'))) continue;
    current += (current ? '\n' : '') + line;
    const quotes = (current.match(/'/g) ?? []).length;
    if (quotes % 2 === 0 && !current.endsWith('\\')) {
      result.push(current);
      current = '';
    }
  }
  if (current) result.push(current);
  return result;
}

/** The command without its trailing comment (a # after two spaces, outside quotes, as the README writes them). */
function withoutComment(command: string): string {
  return command.replace(/\s{2,}#[^'"\n]*$/, '').trim();
}

interface Run { code: number | null; stdout: string; stderr: string }

function bash(command: string, env: NodeJS.ProcessEnv, timeoutMs = 120_000): Run {
  const run = spawnSync('bash', ['-c', command], { cwd: ROOT, env, encoding: 'utf8', timeout: timeoutMs, input: '' });
  return { code: run.status, stdout: run.stdout ?? '', stderr: (run.stderr ?? '') + (run.error ? String(run.error) : '') };
}

interface Serving { child: ChildProcess; output: () => string; exited: Promise<number | null> }

async function serve(t: ExecutionContext, command: string, env: NodeJS.ProcessEnv): Promise<Serving> {
  const child = spawn('bash', ['-c', `exec ${command}`], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await waitFor(() => out.includes('Press Ctrl-C to stop.') || child.exitCode !== null, 90_000, 50);
  return { child, output: () => out, exited };
}

async function stop(serving: Serving): Promise<number | null> {
  serving.child.kill('SIGTERM');
  const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 15_000));
  const code = await Promise.race([serving.exited, timeout]);
  return code === 'timeout' ? null : code;
}

test('the README runs as written: every shell, SQL and curl block in order against a fresh npm start', async (t) => {
  t.timeout(300_000);
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'stockroom-readme-'));
  chmodSync(dataDir, 0o755); // PostgreSQL runs as its own user when we are root
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  // A user's environment in the project: no DATABASE_URL or REDIS_URL, a free HTTP port.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, STOCKROOM_DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'warn' };

  const all = blocks();
  const seen = new Set<string>();
  let main: Serving | undefined;
  let databaseUrl = '';
  let port = '';
  let ran = 0;
  try {
    for (const block of all) {
      if (block.language === 'sql') {
        // As a DBA would paste it into psql: `npx stockroom sql`, stopping at the first error.
        const file = path.join(dataDir, 'walkthrough.sql');
        writeFileSync(file, block.text);
        const run = bash(`./stockroom sql -- -X -q -v ON_ERROR_STOP=1 -f ${file}`, env);
        t.is(run.code, 0, `the SQL of "${block.heading}" failed:\n${run.stderr}`);
        t.notRegex(run.stderr, /ERROR/, `the SQL of "${block.heading}"`);
        if (/SQL API/.test(block.heading)) t.regex(run.stdout, /SKU-1\s*\|\s*WH1\s*\|\s*5/, 'what order-77 holds, by sku and warehouse');
        else if (/Kits/.test(block.heading)) t.regex(run.stdout, /CAMERA-KIT\s*\|\s*\|\s*3\s*\|\s*3\s*\|\s*1\s*\|\s*in_stock/, 'the kit sells min(5 / 1, 7 / 2) = 3');
        else if (/Backorders/.test(block.heading)) t.regex(run.stdout, /GAME\s*\|\s*WH1\s*\|\s*2\s*\|\s*1\s*\|\s*0\s*\|/, 'the preorder is first in its queue');
        else if (/Sales channels/.test(block.heading)) {
          t.regex(run.stdout, /KETTLE\s*\|\s*US1\s*\|\s*6\s*$/m, 'the US customer is served from US1 first');
          t.regex(run.stdout, /KETTLE\s*\|\s*NL1\s*\|\s*1\s*$/m, 'then from NL1, never from the outlet');
          t.regex(run.stdout, /KETTLE\s*\|\s*\|\s*\|\s*10\s*\|\s*3\s*$/m, 'the web can still sell 3 of its 10');
        }
        else if (/Transfers in transit/.test(block.heading)) {
          t.regex(run.stdout, /LAMP\s*\|\s*WH1\s*\|\s*WH2\s*\|\s*1\s*\|\s*3\s*\|/, 'one shipment of LAMP WH1 -> WH2 with 3 in transit');
          t.regex(run.stdout, /\|\s*CLOSED\s*\|/, 'the write-off closes the shipment');
        }
        else if (/Inbound/.test(block.heading)) {
          t.regex(run.stdout, /PUZZLE\s*\|\s*WH1\s*\|\s*2\s*\|\s*1\s*\|\s*0\s*\|\s*2099-01-15/, 'the backorder is expected with the inbound that fills it');
          t.regex(run.stdout, /PUZZLE\s*\|\s*\|\s*10\s*\|\s*0\s*\|\s*5\s*\|\s*15\s*$/m, 'after the short receipt: 10 at WH1, 5 due at WH2');
        }
        else if (/Quantity states/.test(block.heading)) {
          t.regex(run.stdout, /TOASTER\s*\|\s*WH1\s*\|\s*9\s*\|\s*9\s*\|\s*0\s*$/m, 'after the moves and the scrapping: 9 on hand, all available');
        }
        else t.fail(`no check for the SQL of "${block.heading}"`);
        ran++;
        continue;
      }
      for (const command of commands(block.text)) {
        const bare = withoutComment(command);
        const began = Date.now();
        const done = () => {
          ran += 1;
          t.log(`ran in ${((Date.now() - began) / 1000).toFixed(1)} s: ${bare.split('\n')[0]}`);
        };
        seen.add(bare);
        if (bare === 'npm install && npm start') {
          // The start the rest of the README runs against, as `npm start`.
          main = await serve(t, 'npm start', env);
          const banner = main.output();
          t.true(banner.includes('Press Ctrl-C to stop.'), `npm start did not come up:\n${banner}`);
          databaseUrl = /PostgreSQL {2}(postgres:\/\/\S+)/.exec(banner)![1]!;
          port = /HTTP {8}http:\/\/127\.0\.0\.1:(\d+)/.exec(banner)![1]!;
          // The README says to use "the Redis URL npm start printed".
          env.REDIS_URL = /Redis {7}(redis:\/\/\S+)/.exec(banner)![1]!;
          done();
          continue;
        }
        if (bare in NOT_RUN) {
          t.log(`not run: ${bare} (${NOT_RUN[bare]})`);
          continue;
        }
        if (!main) return t.fail(`"${bare}" comes before the README starts Stockroom`);
        // `npx stockroom` is `./stockroom` run through npm, whose own start-up costs about 2 s of CPU a
        // call (test/cli/stop.test.ts runs npx itself): the walkthrough calls the launcher directly.
        const runnable = command.replaceAll('localhost:5678', `localhost:${port}`).replaceAll('npx stockroom ', './stockroom ');
        if (SERVES.test(bare)) {
          // Another Stockroom beside the first, on the same servers: it comes up and stops cleanly.
          const other = await serve(t, withoutComment(runnable), env);
          t.true(other.output().includes('Press Ctrl-C to stop.'), `${bare} did not come up:\n${other.output()}`);
          t.is(await stop(other), 0, `${bare} stops with exit 0 on SIGTERM:\n${other.output()}`);
          done();
          continue;
        }
        const assignment = /^([A-Z_]+)=(\$\(.*\))$/.exec(bare);
        if (assignment) {
          const run = bash(`${assignment[1]}=${assignment[2]} && printf %s "$${assignment[1]}"`, env);
          t.is(run.code, 0, `${bare}\n${run.stderr}`);
          t.true(run.stdout.length > 0, `${bare} set ${assignment[1]}`);
          env[assignment[1]!] = run.stdout;
          done();
          continue;
        }
        const shows = SHOWS.find(([pattern]) => pattern.test(bare))?.[1];
        // What the change stream writes arrives a moment after the commit: a reader retries briefly.
        let run = bash(runnable, env);
        for (const deadline = Date.now() + 10_000; shows && !shows.test(run.stdout) && Date.now() < deadline;) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          run = bash(runnable, env);
        }
        t.is(run.code, 0, `${bare} exited ${run.code}:\n${run.stdout}\n${run.stderr}`);
        if (shows) t.regex(run.stdout, shows, bare);
        if (/^curl /.test(bare)) t.notRegex(run.stdout, /"errors"/, `${bare}\n${run.stdout}`);
        done();
      }
    }

    t.deepEqual(Object.keys(NOT_RUN).filter((command) => !seen.has(command)), [], 'every excused command is still in the README');
    t.true(ran >= 20, `the README's commands ran (${ran})`);
    // What the walkthrough did adds up: 40 received, order-77's 5 confirmed, counted 37
    // (expected 35), 5 moved to WH2, 3 of order-81 confirmed; the GraphQL reserve then holds 5 more.
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query(
        `select w.code, s.on_hand from inventory.stock_levels s join inventory.products p on p.id = s.product_id
         join inventory.warehouses w on w.id = s.warehouse_id where p.sku = 'SKU-1' order by w.code`);
      t.deepEqual(rows, [{ code: 'WH1', on_hand: 29 }, { code: 'WH2', on_hand: 5 }]);
      t.deepEqual(await invariantViolations(db), []);
      t.deepEqual(await transitViolations(db), []);
    } finally {
      await db.end();
    }
  } finally {
    if (main) t.is(await stop(main), 0, `npm start stops with exit 0 on SIGTERM:\n${main.output()}`);
  }
});
