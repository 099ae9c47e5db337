// graphile-worker's logger, writing through pino.
import { Logger as WorkerLogger } from 'graphile-worker';
import type { Logger } from '../log.ts';

export function workerLogger(base: Logger): WorkerLogger {
  return new WorkerLogger((scope) => {
    const child = base.child({ component: 'worker', ...(scope.taskIdentifier ? { task: scope.taskIdentifier } : {}) });
    return (level, message, meta) => {
      const { error, job, ...rest } = (meta ?? {}) as { error?: unknown; job?: { id: string; task_identifier: string; attempts: number }; [k: string]: unknown };
      const fields = {
        ...rest,
        ...(error ? { err: error } : {}),
        ...(job ? { jobId: job.id, task: job.task_identifier, attempts: job.attempts } : {}),
      };
      child[level === 'warning' ? 'warn' : level](fields, message);
    };
  });
}
