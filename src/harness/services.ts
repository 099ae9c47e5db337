// Where Postgres and Redis come from: DATABASE_URL / REDIS_URL when set,
// otherwise the embedded servers under the data directory (started here, or
// found already running from `stockroom start`).
import path from 'node:path';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { startEmbeddedPostgres, type RunningPostgres } from './postgres.ts';
import { startPrivateRedis, type RunningRedis } from './redis.ts';

export interface Services {
  databaseUrl: string;
  /** Undefined when the caller did not ask for Redis. */
  redisUrl: string | undefined;
  /** Stops what this process started; servers found running stay up. */
  stop(): Promise<void>;
}

/**
 * need.start: start the embedded servers when they are not running (the
 * default). Without it (operator commands that only look), a command uses
 * servers already running and otherwise says that nothing runs, in one line,
 * rather than starting and stopping servers for itself on each call.
 */
export async function provideServices(config: Config, log: Logger, need: { redis: boolean; start?: boolean }): Promise<Services> {
  const reuseOnly = need.start === false;
  let postgres: RunningPostgres | undefined;
  let redis: RunningRedis | undefined;
  const stop = async () => {
    await redis?.stop();
    await postgres?.stop();
  };
  try {
    if (!config.databaseUrl) {
      postgres = await startEmbeddedPostgres({
        dir: path.join(config.dataDir, 'postgres'), persistent: true, database: 'stockroom', log, reuseOnly,
      });
    }
    if (need.redis && !config.redisUrl) {
      redis = await startPrivateRedis({ dir: path.join(config.dataDir, 'redis'), persistent: true, log, reuseOnly });
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    databaseUrl: config.databaseUrl ?? postgres!.url(),
    redisUrl: need.redis ? (config.redisUrl ?? redis!.url) : undefined,
    stop,
  };
}
