// Prometheus metrics of the jobs. Names follow the old system's where they fit.
import { Counter, type Registry } from 'prom-client';

export function createJobMetrics(registry: Registry) {
  const registers = [registry];
  return {
    ttlExpired: new Counter({ name: 'inventory_ttl_expired_total', help: 'Reservations expired by the expiry sweeper', registers }),
    sweepErrors: new Counter({ name: 'stockroom_expiry_sweep_errors_total', help: 'Expiry sweeps that failed (the next sweep retries)', registers }),
    syncRowsChecked: new Counter({ name: 'stockroom_sync_rows_checked_total', help: 'Stock rows the incremental sync compared with Redis', registers }),
    syncDrift: new Counter({ name: 'stockroom_sync_drift_total', help: 'Stock rows the incremental sync found wrong in Redis and repaired', registers }),
    counterDrift: new Counter({ name: 'stockroom_reserved_drift_total', help: 'Stock rows verify_counters found with reserved differing from their HELD lines', registers }),
    deadWorkersUnlocked: new Counter({ name: 'stockroom_dead_workers_unlocked_total', help: 'Worker pools found dead whose jobs were unlocked for others', registers }),
  };
}

export type JobMetrics = ReturnType<typeof createJobMetrics>;
