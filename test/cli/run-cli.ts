// Runs the real `stockroom` command as a subprocess, as an operator would.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/harness/postgres.ts';
import { createLogger } from '../../src/log.ts';

export const CLI = fileURLToPath(new URL('../../bin/stockroom.js', import.meta.url));

export interface CliResult { code: number | null; stdout: string; stderr: string }

const dataDirs: string[] = [];

/** Environment for the CLI: only what the test gives, plus a private data dir (never the project's .data). */
export function cliEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'stockroom-cli-'));
  dataDirs.push(dataDir);
  return { PATH: process.env.PATH, HOME: process.env.HOME, STOCKROOM_DATA_DIR: dataDir, ...extra };
}

/** Removes the data dirs cliEnv made (call from test.after.always). */
export function removeCliDataDirs(): void {
  for (const dir of dataDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export function runCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, cwd: os.tmpdir() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`stockroom ${args.join(' ')} timed out; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** An error for people: one line, prefixed, no stack trace. */
export function isOneLineError(stderr: string): boolean {
  const lines = stderr.trim().split('\n');
  return lines.length === 1 && lines[0]!.startsWith('stockroom: ') && !/\n\s+at /.test(stderr);
}

/** A PostgreSQL of the test's own (settings the shared one must not have), stopped and removed when the test ends. */
export async function startOwnPostgres(t: ExecutionContext, label: string, settings: Record<string, string>): Promise<RunningPostgres> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `stockroom-${label}-`));
  chmodSync(dir, 0o755); // Postgres runs as its own user when we are root
  const server = await startEmbeddedPostgres({
    dir: path.join(dir, 'pg'), persistent: false, log: createLogger('silent'),
    settings: { fsync: 'off', shared_buffers: '32MB', ...settings },
  });
  t.teardown(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return server;
}
