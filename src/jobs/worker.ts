// The worker role: graphile-worker running Stockroom's tasks and crontab on a
// pool made here. Signals are ours (noHandleSignals): graphile-worker would
// otherwise re-raise the signal and exit before the other roles stopped.
import { EventEmitter } from 'node:events';
import { parseCrontab, run, type Runner, type TaskList } from 'graphile-worker';
import pg from 'pg';
import type { Registry } from 'prom-client';
import { cacheKeysFor, createRedis } from '../cache/redis.ts';
import { CacheWriter } from '../cache/writer.ts';
import type { Config } from '../config.ts';
import type { Lifecycle } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { CRONTAB } from './crontab.ts';
import { END_PREORDERS, endPreordersTask } from './end_preorders.ts';
import { EXPIRE_SWEEP, expireSweepTask, scheduleSweep } from './expire_sweep.ts';
import { INCREMENTAL_SYNC, incrementalSyncTask } from './incremental_sync.ts';
import { workerLogger } from './logger.ts';
import { createJobMetrics } from './metrics.ts';
import { UNLOCK_DEAD_WORKERS, unlockDeadWorkersTask } from './unlock_dead_workers.ts';
import { VERIFY_COUNTERS, verifyCountersTask } from './verify_counters.ts';
import { recordTaskRun } from './task-runs.ts';
import { HEARTBEAT_MS, beat, forget, unlockDeadWorkers } from './worker-heartbeats.ts';


export interface WorkerDeps {
  databaseUrl: string;
  writer: CacheWriter;
  log: Logger;
  registry: Registry;
  lifecycle: Lifecycle;
  concurrency?: number;
  /** verify_counters repairs what it finds. */
  verifyFix?: boolean;
  /** How often the worker looks for jobs that became due (new jobs due now arrive by NOTIFY). */
  pollIntervalMs?: number;
  /** How often this pool records a heartbeat (HEARTBEAT_MS); a pool silent for 6 of them is dead. */
  heartbeatMs?: number;
}

export function taskList(deps: Pick<WorkerDeps, 'writer' | 'verifyFix' | 'heartbeatMs'>, metrics: ReturnType<typeof createJobMetrics>): TaskList {
  return {
    [EXPIRE_SWEEP]: expireSweepTask(metrics),
    [UNLOCK_DEAD_WORKERS]: unlockDeadWorkersTask(metrics, deps.heartbeatMs),
    [INCREMENTAL_SYNC]: incrementalSyncTask(deps.writer, metrics),
    [VERIFY_COUNTERS]: verifyCountersTask(deps.verifyFix ?? false, metrics),
    [END_PREORDERS]: endPreordersTask(),
  };
}

export async function startWorker(deps: WorkerDeps): Promise<Runner> {
  const { databaseUrl, log, registry, lifecycle } = deps;
  const concurrency = deps.concurrency ?? 4;
  const pool = new pg.Pool({ connectionString: databaseUrl, max: concurrency + 3, application_name: 'stockroom worker' });
  pool.on('error', (error) => log.warn({ err: error.message }, 'worker pool client error'));
  pool.on('connect', () => {});
  lifecycle.onStop('worker pool', () => pool.end());
  const metrics = createJobMetrics(registry);

  // Jobs a dead worker held would otherwise wait 4 hours for graphile-worker's lock timeout.
  const heartbeatMs = deps.heartbeatMs ?? HEARTBEAT_MS;
  const unlocked = await unlockDeadWorkers(pool, heartbeatMs);
  if (unlocked.length) log.warn({ pools: unlocked }, 'unlocked the jobs of dead worker pools');
  metrics.deadWorkersUnlocked.inc(unlocked.length);

  const events = new EventEmitter();
  let poolId: string | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let firstBeat: Promise<void> | undefined;
  events.on('pool:create', ({ workerPool }: { workerPool: { id: string } }) => {
    poolId = workerPool.id;
    firstBeat = beat(pool, poolId).catch((error: unknown) => log.warn({ err: error }, 'worker heartbeat failed'));
    heartbeat = setInterval(() => {
      void beat(pool, poolId!).catch((error: unknown) => log.warn({ err: error }, 'worker heartbeat failed'));
    }, heartbeatMs);
    heartbeat.unref();
  });

  // Each job's end is its task's last run, for operators (stockroom jobs).
  const started = new Map<string, Date>();
  events.on('job:start', ({ job }: { job: { id: string } }) => started.set(job.id, new Date()));
  events.on('job:complete', ({ job, error }: { job: { id: string; task_identifier: string }; error: unknown }) => {
    const startedAt = started.get(job.id) ?? new Date();
    started.delete(job.id);
    void recordTaskRun(pool, {
      task: job.task_identifier, startedAt, finishedAt: new Date(), succeeded: !error, error: error ? String((error as Error).message ?? error) : null,
    }).catch((failure: unknown) => log.debug({ err: failure }, 'recording the task run failed'));
  });

  const runner = await run({
    pgPool: pool,
    concurrency,
    pollInterval: deps.pollIntervalMs ?? 1_000,
    taskList: taskList(deps, metrics),
    parsedCronItems: parseCrontab(CRONTAB),
    noHandleSignals: true,
    logger: workerLogger(log),
    events,
    // Await job completion: un-awaited, a database drop right after a job finishes is an unhandled rejection.
    preset: { worker: { completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
  });
  // Running means visible to operators (stockroom jobs lists the pool) ...
  await firstBeat;
  // ... and the expiry sweeper's chain started now, not at the next minute's crontab.
  await scheduleSweep(runner.addJob, undefined, 'preserve_run_at');
  lifecycle.onStop('worker', async () => {
    clearInterval(heartbeat);
    await runner.stop().catch((error: unknown) => log.warn({ err: error }, 'worker stop'));
    if (poolId) await forget(pool, poolId).catch(() => {});
  });
  log.info({ concurrency }, 'worker running');
  return runner;
}

/** The worker role as `stockroom start` runs it: its own Redis client for the incremental sync. */
export async function startWorkerRole(
  deps: { config: Config; databaseUrl: string; redisUrl: string; log: Logger; registry: Registry; lifecycle: Lifecycle },
): Promise<Runner> {
  const { config, redisUrl, log, lifecycle } = deps;
  const redis = createRedis(redisUrl, log, 'stockroom-worker');
  lifecycle.onStop('worker redis', async () => {
    await redis.quit().catch(() => redis.disconnect());
  });
  const writer = new CacheWriter(redis, cacheKeysFor(redis, config.cachePrefix, config.stream), { name: config.stream, maxLength: config.streamMaxLength });
  return startWorker({ ...deps, writer, concurrency: config.workerConcurrency, verifyFix: config.verifyFix, heartbeatMs: config.workerHeartbeatMs });
}
