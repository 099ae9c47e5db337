// The worker's recurring tasks, as graphile-worker's crontab (times are UTC).
// Its own module so that `stockroom jobs` shows the schedule without loading
// the worker.
import { END_PREORDERS } from './end_preorders.ts';
import { EXPIRE_SWEEP_CRON } from './expire_sweep.ts';
import { INCREMENTAL_SYNC } from './incremental_sync.ts';
import { UNLOCK_DEAD_WORKERS } from './unlock_dead_workers.ts';
import { VERIFY_COUNTERS } from './verify_counters.ts';

export const CRONTAB = [
  EXPIRE_SWEEP_CRON,
  `* * * * * ${UNLOCK_DEAD_WORKERS} ?max=1`,
  `*/5 * * * * ${INCREMENTAL_SYNC} ?max=1`,
  `30 3 * * * ${VERIFY_COUNTERS} ?max=1`,
  `* * * * * ${END_PREORDERS} ?max=1`,
].join('\n');
