// Throwaway servers for a benchmark run, with production durability
// (fsync and synchronous commit on): figures mean what they would in service.
import { mkdtempSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { migrate } from '../../src/db/migrate.ts';
import { createDatabaseIfMissing, startEmbeddedPostgres, type RunningPostgres } from '../../src/harness/postgres.ts';
import { startPrivateRedis, type RunningRedis } from '../../src/harness/redis.ts';
import { createLogger, type Logger } from '../../src/log.ts';

export interface BenchServices {
  databaseUrl: string;
  /** The postmaster's pid (its backends are its children). */
  postgresPid: number;
  redisPid: number | undefined;
  redisUrl: string | undefined;
  log: Logger;
  stop(): Promise<void>;
}

export async function startBenchServices(options: { redis: boolean; settings?: Record<string, string> }): Promise<BenchServices> {
  const log = createLogger(process.env.LOG_LEVEL ?? 'warn', 'stockroom-bench');
  const root = mkdtempSync(path.join(os.tmpdir(), 'stockroom-bench-'));
  chmodSync(root, 0o755);
  let postgres: RunningPostgres | undefined;
  let redis: RunningRedis | undefined;
  const stop = async () => {
    await redis?.stop();
    await postgres?.stop();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stop().then(() => process.exit(130)));
  try {
    postgres = await startEmbeddedPostgres({
      dir: path.join(root, 'postgres'), persistent: true, database: 'bench', log,
      settings: { shared_buffers: '1GB', ...options.settings },
    });
    if (options.redis) redis = await startPrivateRedis({ dir: path.join(root, 'redis'), persistent: false, log });
    await migrate(postgres.url(), log);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    databaseUrl: postgres.url(), postgresPid: postgres.pid, redisPid: redis?.pid, redisUrl: redis?.url, log,
    stop: async () => {
      await stop();
      const { rmSync } = await import('node:fs');
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export { createDatabaseIfMissing };
