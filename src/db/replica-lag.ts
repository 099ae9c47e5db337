// How far a streaming replica is behind its primary, sampled once a second
// (never per request), and the one rule for whether reads may go to it.
//
// Lag is measured as the primary's WAL the replica has not replayed yet:
// bytes = the primary's flushed WAL position − the replica's replay position.
// Seconds are not now() − pg_last_xact_replay_timestamp() on the replica, which
// grows without bound while the primary is idle although nothing is missing;
// instead each sample records when the primary's WAL position was first seen,
// and the lag is the age of the oldest position the replica has not replayed
// yet (0 once it has replayed everything the primary had flushed). Its
// resolution is the sampling interval.
import { Gauge, type Registry } from 'prom-client';
import type pg from 'pg';
import type { Logger } from '../log.ts';

/** streaming: reads go to the replica; lagging: further behind than the maximum; down: unreachable, or not a standby. */
export type ReplicaStatus = 'streaming' | 'lagging' | 'down';

export interface ReplicaState {
  status: ReplicaStatus;
  /** Where GraphQL queries go now. */
  queriesOn: 'replica' | 'primary';
  lagSeconds: number | null;
  lagBytes: number | null;
  maxLagSeconds: number;
  /** WAL replay paused on the replica (pg_wal_replay_pause()). */
  replayPaused: boolean | null;
  /** Commit time of the last transaction the replica replayed. */
  lastReplayedCommitAt: string | null;
  sampledAt: string | null;
  /** Why it is down: the replica or the primary did not answer, or the replica is not a standby (promoted, or never one). */
  problem?: 'replica_unreachable' | 'primary_unreachable' | 'not_standby';
  error?: string;
}

export function createReplicaMetrics(registry: Registry) {
  const registers = [registry];
  return {
    lagSeconds: new Gauge({ name: 'stockroom_replica_lag_seconds', help: 'Age of the oldest primary WAL the read replica has not replayed (0 when caught up; NaN while it is down)', registers }),
    lagBytes: new Gauge({ name: 'stockroom_replica_lag_bytes', help: 'Primary WAL (flushed) the read replica has not replayed yet (NaN while it is down)', registers }),
    up: new Gauge({ name: 'stockroom_replica_up', help: '1 while the read replica answers as a standby', registers }),
    serving: new Gauge({ name: 'stockroom_replica_serving_queries', help: '1 while GraphQL queries go to the read replica, 0 while they fall back to the primary', registers }),
  };
}

interface Seen { at: number; lsn: bigint }

export class ReplicaMonitor {
  private readonly primary: Pick<pg.Pool, 'query'>;
  private readonly replica: Pick<pg.Pool, 'query'>;
  private readonly maxLagSeconds: number;
  private readonly intervalMs: number;
  private readonly metrics: ReturnType<typeof createReplicaMetrics>;
  private readonly log: Logger;
  /** Primary WAL positions the replica had not replayed when last sampled, oldest first, with when each was first seen. */
  private pending: Seen[] = [];
  private current: ReplicaState;
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<ReplicaState> | undefined;
  private stopped = false;

  constructor(deps: { primary: Pick<pg.Pool, 'query'>; replica: Pick<pg.Pool, 'query'>; maxLagSeconds: number; intervalMs?: number; registry: Registry; log: Logger }) {
    this.primary = deps.primary;
    this.replica = deps.replica;
    this.maxLagSeconds = deps.maxLagSeconds;
    this.intervalMs = deps.intervalMs ?? 1000;
    this.metrics = createReplicaMetrics(deps.registry);
    this.log = deps.log;
    this.current = this.publish({ status: 'down', lagSeconds: null, lagBytes: null, replayPaused: null, lastReplayedCommitAt: null, sampledAt: null, problem: 'replica_unreachable', error: 'not sampled yet' });
  }

  /** Samples once now, then every interval. */
  async start(): Promise<ReplicaState> {
    const first = await this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
    return first;
  }

  /** No more samples; one in flight is dropped (its pools are about to end). */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  get state(): ReplicaState {
    return this.current;
  }

  /** The fallback rule: queries read from the replica only while it streams within the maximum lag. */
  get readable(): boolean {
    return this.current.status === 'streaming';
  }

  /** A request could not reach the replica: down until a sample finds it again. */
  reportUnreachable(error: Error): void {
    if (this.current.status === 'down') return;
    this.log.warn({ err: error.message }, 'read replica unreachable: queries go to the primary');
    this.current = this.publish({ ...this.current, status: 'down', lagSeconds: null, lagBytes: null, problem: 'replica_unreachable', error: error.message });
  }

  /** One sample (concurrent callers share it). */
  sample(): Promise<ReplicaState> {
    this.sampling ??= this.measure().finally(() => {
      this.sampling = undefined;
    });
    return this.sampling;
  }

  private async measure(): Promise<ReplicaState> {
    const before = this.current.status;
    const sampledAt = new Date().toISOString();
    let problem: ReplicaState['problem'] = 'replica_unreachable';
    try {
      // The replica first: a commit between the two reads shows as lag, never hides it.
      const { rows: [standby] } = await this.replica.query<{ standby: boolean; replayed: string | null; paused: boolean | null; replayed_at: Date | null }>(`
        select pg_is_in_recovery() as standby,
               pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::text as replayed,
               case when pg_is_in_recovery() then pg_is_wal_replay_paused() end as paused,
               pg_last_xact_replay_timestamp() as replayed_at`);
      if (!standby!.standby || standby!.replayed === null) {
        problem = 'not_standby';
        throw new Error('the read replica is not a standby (pg_is_in_recovery() is false): a primary, or a promoted replica');
      }
      problem = 'primary_unreachable';
      const { rows: [primary] } = await this.primary.query<{ flushed: string }>(`select pg_wal_lsn_diff(pg_current_wal_flush_lsn(), '0/0')::text as flushed`);
      const replayed = BigInt(standby!.replayed);
      const flushed = BigInt(primary!.flushed);
      const now = Date.now();
      if (flushed > (this.pending.at(-1)?.lsn ?? replayed)) this.pending.push({ at: now, lsn: flushed });
      this.pending = this.pending.filter((seen) => seen.lsn > replayed);
      const lagBytes = flushed > replayed ? Number(flushed - replayed) : 0;
      const lagSeconds = this.pending.length > 0 ? (now - this.pending[0]!.at) / 1000 : 0;
      this.current = this.publish({
        status: lagSeconds > this.maxLagSeconds ? 'lagging' : 'streaming',
        lagSeconds, lagBytes, replayPaused: standby!.paused, lastReplayedCommitAt: standby!.replayed_at?.toISOString() ?? null, sampledAt,
      });
    } catch (error) {
      if (this.stopped) return this.current;
      this.pending = [];
      this.current = this.publish({ status: 'down', lagSeconds: null, lagBytes: null, replayPaused: null, lastReplayedCommitAt: null, sampledAt, problem, error: (error as Error).message });
    }
    if (this.current.status !== before) {
      this.log[this.current.status === 'streaming' ? 'info' : 'warn']({ replica: this.current }, `read replica ${this.current.status}: queries go to the ${this.current.queriesOn}`);
    }
    return this.current;
  }

  private publish(state: Omit<ReplicaState, 'queriesOn' | 'maxLagSeconds'>): ReplicaState {
    const full: ReplicaState = { ...state, queriesOn: state.status === 'streaming' ? 'replica' : 'primary', maxLagSeconds: this.maxLagSeconds };
    this.metrics.lagSeconds.set(state.lagSeconds ?? Number.NaN);
    this.metrics.lagBytes.set(state.lagBytes ?? Number.NaN);
    this.metrics.up.set(state.status === 'down' ? 0 : 1);
    this.metrics.serving.set(full.queriesOn === 'replica' ? 1 : 0);
    return full;
  }
}
