// expire_sweep, every minute: the safety net for expiry. Expires whatever is
// due (a job lost, a clock jump), and unlocks the jobs of worker pools that
// died, so nothing waits for graphile-worker's 4-hour lock timeout.
import type { Task } from 'graphile-worker';
import { expireAllDue } from './expire_reservation.ts';
import type { JobMetrics } from './metrics.ts';
import { unlockDeadWorkers } from './worker-heartbeats.ts';

export const EXPIRE_SWEEP = 'expire_sweep';

export function expireSweepTask(metrics: JobMetrics): Task {
  return async (_payload, helpers) => {
    const expired = await helpers.withPgClient((client) => expireAllDue(client));
    metrics.ttlExpired.inc(expired);
    if (expired) helpers.logger.info(`sweeper expired ${expired} reservation(s) missed by their jobs`, { expired });
    const unlocked = await helpers.withPgClient((client) => unlockDeadWorkers(client));
    metrics.deadWorkersUnlocked.inc(unlocked.length);
    if (unlocked.length) helpers.logger.warn(`unlocked the jobs of dead worker pools ${unlocked.join(', ')}`);
  };
}
