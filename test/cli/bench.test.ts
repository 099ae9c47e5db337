// `stockroom bench`: names come from bench/, a wrong one is one usage line, and
// a benchmark runs with this Node, its arguments and exit status passed through
// (shown with a stand-in script: no real benchmark runs here).
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { BENCH_DIR, listBenchmarks, runBenchmark } from '../../src/cli/bench.ts';
import { cliEnv, isOneLineError, removeCliDataDirs, runCli } from './run-cli.ts';

test.after.always(removeCliDataDirs);

const expected = readdirSync(BENCH_DIR).filter((f) => f.endsWith('.ts')).map((f) => f.replace(/\.ts$/, '')).sort();

test('the benchmarks are the bench/*.ts files, not bench/lib', (t) => {
  t.deepEqual(listBenchmarks(), expected);
  for (const name of ['reserve', 'cdc', 'expiry']) t.true(listBenchmarks().includes(name), name);
  t.false(listBenchmarks().includes('lib'));
  t.deepEqual(listBenchmarks(path.join(os.tmpdir(), 'no-such-stockroom-bench-dir')), []);
});

test('an unknown benchmark is one usage line naming the real ones, exit 2', async (t) => {
  const result = await runCli(['bench', 'nope', '--seconds', '1'], cliEnv({}));
  t.is(result.code, 2);
  t.true(isOneLineError(result.stderr), result.stderr);
  t.is(result.stderr.trim(), `stockroom: unknown benchmark 'nope': choose one of ${expected.join(', ')} (stockroom bench --help)`);
  t.is(result.stdout, '');
});

test('a path is not a benchmark name', async (t) => {
  const result = await runCli(['bench', '../test/config.test'], cliEnv({}));
  t.is(result.code, 2);
  t.true(isOneLineError(result.stderr), result.stderr);
  t.regex(result.stderr, /unknown benchmark '\.\.\/test\/config\.test'/);
});

test('--help lists the benchmarks with examples', async (t) => {
  const result = await runCli(['bench', '--help'], cliEnv({}));
  t.is(result.code, 0, result.stderr);
  t.regex(result.stdout, /Usage: stockroom bench \[options\] <name> \[args\.\.\.\]/);
  t.true(result.stdout.includes(`Benchmarks: ${expected.join(', ')}.`), result.stdout);
  t.regex(result.stdout, /Examples:\n {2}stockroom bench reserve\n {2}stockroom bench reserve --seconds 10 --rounds 5/);
  const top = await runCli(['--help'], cliEnv({}));
  t.regex(top.stdout, /\n {2}bench <name> \[args\.\.\.\] +run a benchmark/);
});

test('a benchmark runs with this Node; arguments and exit status pass through', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stockroom-bench-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'out.json');
  const script = path.join(dir, 'fake.mts');
  writeFileSync(script, [
    "import { writeFileSync } from 'node:fs';",
    'const [out, ...rest]: string[] = process.argv.slice(2);',
    'writeFileSync(out!, JSON.stringify({ node: process.execPath, args: rest }));',
    'process.exit(3);',
  ].join('\n'));
  const code = await runBenchmark(script, [out, '--seconds', '10', '--json'], { stdio: 'ignore' });
  t.is(code, 3);
  t.deepEqual(JSON.parse(readFileSync(out, 'utf8')), { node: process.execPath, args: ['--seconds', '10', '--json'] });
});
