// `stockroom bench <name> [args...]`: runs bench/<name>.ts with this same Node,
// the arguments after the name passed through, and exits with its status.
// Each benchmark starts its own throwaway PostgreSQL and Redis.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';

export const BENCH_DIR = fileURLToPath(new URL('../../bench/', import.meta.url));

/** The benchmarks there are: bench/<name>.ts files (bench/lib/ holds their shared code). */
export function listBenchmarks(dir = BENCH_DIR): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts'))
    .map((entry) => entry.name.slice(0, -'.ts'.length))
    .sort();
}

/** Runs a benchmark script with this Node; resolves to its exit status (128 + signal number when killed). */
export function runBenchmark(file: string, args: string[], options: { stdio?: 'inherit' | 'ignore' } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { stdio: options.stdio ?? 'inherit' });
    // Ctrl-C reaches the benchmark too (same process group): it stops its servers, then we exit with its status.
    const ignore = () => {};
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', ignore);
    process.on('SIGTERM', forward);
    const done = () => {
      process.off('SIGINT', ignore);
      process.off('SIGTERM', forward);
    };
    child.once('error', (error) => {
      done();
      reject(error);
    });
    child.once('exit', (code, signal) => {
      done();
      const signalNumber = signal ? ((os.constants.signals as Record<string, number>)[signal] ?? 1) : 0;
      resolve(code ?? 128 + signalNumber);
    });
  });
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('run a benchmark from bench/ on throwaway PostgreSQL and Redis; arguments after the name go to it')
    .argument('<name>', 'the benchmark (see below)')
    .argument('[args...]', 'arguments for the benchmark, e.g. --seconds 10 --json')
    .allowUnknownOption()
    .addHelpText('after', () => {
      const names = listBenchmarks();
      return [
        '',
        `Benchmarks: ${names.length ? names.join(', ') : `none (no ${BENCH_DIR})`}.`,
        'Each prints its figures beside a baseline measured in the same run; its',
        'options are in the comment at the top of bench/<name>.ts.',
        '',
        'Examples:',
        '  stockroom bench reserve',
        '  stockroom bench reserve --seconds 10 --rounds 5',
        '  stockroom bench cdc --rates 500,2000 --json',
        '  stockroom bench expiry --reservations 10000',
        '  stockroom bench api --clients 16',
      ].join('\n');
    })
    .action(async (name: string, args: string[]) => {
      const names = listBenchmarks();
      if (!names.includes(name)) {
        throw new UsageError(names.length
          ? `unknown benchmark '${name}': choose one of ${names.join(', ')} (stockroom bench --help)`
          : `no benchmarks here: ${BENCH_DIR} is missing (run stockroom bench from a checkout of the project)`);
      }
      process.exitCode = await runBenchmark(path.join(BENCH_DIR, `${name}.ts`), args);
    });
}
