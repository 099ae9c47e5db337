// verify_counters, nightly: reserved must equal the HELD lines of each row.
// Reports drift; repairs it when STOCKROOM_VERIFY_FIX is true.
import type { Task } from 'graphile-worker';
import type { JobMetrics } from './metrics.ts';

export const VERIFY_COUNTERS = 'verify_counters';

export function verifyCountersTask(fix: boolean, metrics: JobMetrics): Task {
  return async (_payload, helpers) => {
    const { rows } = await helpers.query<{ sku: string; warehouse: string; reserved: number; expected: number }>(
      'select * from inventory.verify_counters($1)', [fix]);
    metrics.counterDrift.inc(rows.length);
    if (rows.length) {
      helpers.logger.error(`verify_counters found ${rows.length} row(s) whose reserved differs from their HELD lines${fix ? '; repaired' : ' (set STOCKROOM_VERIFY_FIX=true to repair)'}`,
        { drift: rows.slice(0, 50) });
    } else {
      helpers.logger.info('verify_counters: every reserved matches its HELD lines');
    }
  };
}
