// Prometheus metrics of the change stream. Names follow the old system's
// where they fit (stock_sync_latency_seconds, stock_events_processed_total,
// inventory_adjustment_total: counted here, so every adjustment counts, whoever made it).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export function createListenerMetrics(registry: Registry) {
  const registers = [registry];
  return {
    changesApplied: new Counter({ name: 'stockroom_cache_changes_applied_total', help: 'Stock row states written to Redis', registers }),
    staleWrites: new Counter({ name: 'stockroom_cache_stale_writes_total', help: 'Stock row states refused because Redis already had a newer version (replays, reordering)', registers }),
    transactionsApplied: new Counter({ name: 'stockroom_replication_transactions_applied_total', help: 'Committed transactions applied to Redis and acknowledged', registers }),
    syncLatency: new Histogram({
      name: 'stock_sync_latency_seconds', help: 'Commit in PostgreSQL to the change being in Redis',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers,
    }),
    eventsProcessed: new Counter({ name: 'stock_events_processed_total', help: 'CloudEvents appended to the stream', labelNames: ['type'], registers }),
    adjustments: new Counter({ name: 'inventory_adjustment_total', help: 'Receipts, corrections and counts (movements RECEIVE, ADJUST, COUNT) seen in the stream', registers }),
    eventsDuplicate: new Counter({ name: 'stockroom_events_duplicates_total', help: 'Events of replayed transactions the stream already had', registers }),
    slotLagBytes: new Gauge({ name: 'stockroom_slot_lag_bytes', help: 'WAL written but not yet confirmed by the consumer (pg_current_wal_lsn - confirmed_flush_lsn)', registers }),
    slotRetainedBytes: new Gauge({ name: 'stockroom_slot_retained_wal_bytes', help: 'WAL the slot keeps on disk (pg_current_wal_lsn - restart_lsn)', registers }),
    rebuilds: new Counter({ name: 'stockroom_cache_rebuilds_total', help: 'Full rebuilds of the cache from PostgreSQL', labelNames: ['reason'], registers }),
    slotLosses: new Counter({ name: 'stockroom_slot_losses_total', help: 'Replication slots found dropped or invalidated while Redis mirrored this database (not first starts)', labelNames: ['reason'], registers }),
    backfilledEvents: new Counter({ name: 'stockroom_backfilled_events_total', help: 'Events of a lost slot\'s gap published from the ledger (also counted in stock_events_processed_total)', labelNames: ['type'], registers }),
    reconnects: new Counter({ name: 'stockroom_replication_reconnects_total', help: 'Replication sessions that ended and were started again', labelNames: ['reason'], registers }),
    standby: new Gauge({ name: 'stockroom_listener_standby', help: '1 while this listener stands by because another consumer streams from the slot', registers }),
    resyncs: new Counter({ name: 'stockroom_cache_resyncs_total', help: 'NOTIFY stockroom_resync requests', labelNames: ['outcome'], registers }),
  };
}

export type ListenerMetrics = ReturnType<typeof createListenerMetrics>;
