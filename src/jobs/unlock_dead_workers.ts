// unlock_dead_workers, every minute: graphile-worker keeps a job locked by a
// worker that died for 4 hours; ours record heartbeats, and the jobs of a
// pool whose heartbeat stopped are unlocked for the others.
import type { Task } from 'graphile-worker';
import type { JobMetrics } from './metrics.ts';
import { unlockDeadWorkers } from './worker-heartbeats.ts';

export const UNLOCK_DEAD_WORKERS = 'unlock_dead_workers';

export function unlockDeadWorkersTask(metrics: JobMetrics, heartbeatMs?: number): Task {
  return async (_payload, helpers) => {
    const unlocked = await helpers.withPgClient((client) => unlockDeadWorkers(client, heartbeatMs));
    metrics.deadWorkersUnlocked.inc(unlocked.length);
    if (unlocked.length) helpers.logger.warn(`unlocked the jobs of dead worker pools ${unlocked.join(', ')}`);
  };
}
