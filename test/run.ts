// `npm test`: starts a throwaway PostgreSQL (wal_level=logical) and
// redis-server on free ports, builds a migrated template database, runs ava
// against them, and stops everything however the run ends. Prints ava's TAP
// as it goes and closes with "N passed, N failed" for CI.
// Arguments go to ava: `npm test -- test/sql/reserve.test.ts --match '*idempotency*'`.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { migrate } from '../src/db/migrate.ts';
import { createDatabaseIfMissing, startEmbeddedPostgres } from '../src/harness/postgres.ts';
import { startPrivateRedis } from '../src/harness/redis.ts';
import { createLogger } from '../src/log.ts';
import { TEMPLATE_DATABASE, testEnvironment } from './helpers/environment.ts';

const log = createLogger(process.env.LOG_LEVEL ?? 'warn', 'stockroom-test');
const root = mkdtempSync(path.join(os.tmpdir(), 'stockroom-test-'));
chmodSync(root, 0o755); // Postgres runs as its own user when we are root
const postgres = await startEmbeddedPostgres({
  dir: path.join(root, 'postgres'), persistent: false, log,
  // Tests need correctness, not durability: no fsync makes database-per-test cheap.
  settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
});
const redis = await startPrivateRedis({ dir: path.join(root, 'redis'), persistent: false, log }).catch(async (error) => {
  await postgres.stop();
  throw error;
});
const stopServices = async () => {
  await redis.stop();
  await postgres.stop();
  rmSync(root, { recursive: true, force: true });
};

let ava: ReturnType<typeof spawn> | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    ava?.kill(signal);
    void stopServices().then(() => process.exit(130));
  });
}

let exitCode = 1;
const counts = { passed: 0, failed: 0, skipped: 0 };
try {
  await createDatabaseIfMissing(postgres.url('postgres'), TEMPLATE_DATABASE);
  await migrate(postgres.url(TEMPLATE_DATABASE), log);

  const avaCli = fileURLToPath(new URL('../node_modules/ava/entrypoints/cli.mjs', import.meta.url));
  ava = spawn(process.execPath, [avaCli, '--tap', ...process.argv.slice(2)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...testEnvironment({ adminUrl: postgres.url('postgres'), redisUrl: redis.url }) },
  });
  for await (const line of createInterface({ input: ava.stdout! })) {
    if (!/^# (.* › )?(before|after)(Each)?(\.always)? hook for /.test(line)) process.stdout.write(`${line}\n`);
    if (/^ok \d+ .*# SKIP/.test(line) || /^ok \d+ .*# TODO/.test(line)) counts.skipped++;
    else if (/^ok \d+/.test(line)) counts.passed++;
    else if (/^not ok \d+/.test(line)) counts.failed++;
  }
  exitCode = await new Promise<number>((resolve) => {
    if (ava!.exitCode !== null) resolve(ava!.exitCode);
    else ava!.once('exit', (code) => resolve(code ?? 1));
  });
} finally {
  await stopServices();
}
if (counts.passed + counts.failed === 0) exitCode ||= 1; // a run that ran nothing is not green
process.stdout.write(`${counts.passed} passed, ${counts.failed} failed${counts.skipped ? `, ${counts.skipped} skipped` : ''}\n`);
process.exit(exitCode || (counts.failed > 0 ? 1 : 0));
