// One streaming session on the slot: from START_REPLICATION until the
// connection ends, fails, or is stopped. A new session (and a new
// LogicalReplicationService) is made for every connection, so a session
// always resumes from the slot's confirmed position, never from what an
// earlier one had merely received.
//
// Acknowledgement discipline (read pg-logical-replication's source before
// changing any of this):
// - auto-acknowledge is off and its timer disabled (timeoutSeconds 0): the
//   library would otherwise acknowledge what it *received*;
// - flow control is on: the library awaits our handler per message and pauses
//   the socket while its queue is non-empty;
// - a position is acknowledged only after Redis holds everything before it;
//   the library sends lsn+1, so we pass lsn-1 (Postgres skips a transaction on
//   restart when its commit record starts before the confirmed position, and a
//   commit can start exactly where the previous one ended);
// - a failed Redis write stops the session before the library can hand us
//   (and we acknowledge) a later transaction.
import { randomUUID } from 'node:crypto';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import type { CacheWriter, StreamEvent } from '../cache/writer.ts';
import type { RowState } from '../cache/row.ts';
import type { Logger } from '../log.ts';
import type { Catalog } from './catalog.ts';
import { formatLsn, parseLsn, type Lsn } from '../cache/lsn.ts';
import type { ListenerMetrics } from './metrics.ts';
import { ReplicatedTransaction } from './transaction.ts';

export interface SessionOptions {
  databaseUrl: string;
  slot: string;
  /** The publications pgoutput streams (replication-setup.ts, publicationNames). */
  publications: string[];
  writer: CacheWriter;
  catalog: Catalog;
  metrics: ListenerMetrics;
  log: Logger;
  /** Where the cache stands now: what idle keepalives fall back to. */
  appliedLsn: Lsn;
  /** Added to commit LSNs in stream entry ids (see CacheWriter.claimStream). */
  streamIdOffset: bigint;
  /** Called when an apply finds the cache's source marker gone (Redis lost its data). */
  onCacheLost: () => void;
  /** Told the rows each apply wrote (not after acknowledging: it must not hold up the stream). */
  onApplied?: (rows: RowState[]) => void;
  /** After a batch that changed a channel or its warehouses is applied, before its position is acknowledged: rewrite every channels hash. */
  onChannelsChanged?: () => Promise<void>;
  /** Changes collected before a flush is forced, within a transaction or across several. */
  maxBatchChanges?: number;
  /** How often to ask an idle server for its position, so the slot keeps advancing. */
  idlePingMs?: number;
}

interface Batch {
  rows: RowState[];
  events: StreamEvent[];
  /** Kits (product ids) to recompute after the rows, with their definitions as of the batch's last transaction. */
  kits: Set<string>;
  /** A channel or its warehouses changed in the batch: every channels hash is rewritten after it (SessionOptions.onChannelsChanged). */
  channelsChanged: boolean;
  /** End LSN of the last whole transaction in the batch, when it has one. */
  endLsn: Lsn | undefined;
  commitTimes: bigint[];
  transactions: number;
}

/**
 * Batches in flight: each is sent to Redis as soon as it is complete, behind
 * those still applying (one connection keeps them in order, and the chain of
 * APPLY stops a batch whose predecessor failed), while the next is decoded.
 * Their results are taken, and positions acknowledged, in order.
 */
const MAX_FLUSHES_IN_FLIGHT = 4;

const emptyBatch = (): Batch => ({ rows: [], events: [], kits: new Set(), channelsChanged: false, endLsn: undefined, commitTimes: [], transactions: 0 });

export class ReplicationSession {
  private readonly options: SessionOptions;
  private readonly log: Logger;
  private readonly service: LogicalReplicationService;
  private readonly maxBatchChanges: number;
  private transaction: ReplicatedTransaction | undefined;
  private batch = emptyBatch();
  private flushing: Promise<void> = Promise.resolve();
  private flushesInFlight = 0;
  private flushScheduled = false;
  /** A small batch waits for the flush in flight (see scheduleFlush). */
  private flushAfterCurrent = false;
  private failure: Error | undefined;
  private stopping = false;
  private settle: { resolve: () => void; reject: (error: Error) => void } | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  /** Messages whose handler is running (0 or 1: flow control hands them over one at a time). */
  private handling = 0;
  /** Tokens of this session's batches, for the chain that orders them in Redis (see MAX_FLUSHES_IN_FLIGHT). */
  private readonly sessionToken = randomUUID();
  private batchesSent = 0;
  /** Everything before this is in Redis (and acknowledged, or about to be). */
  appliedLsn: Lsn;
  /** When the replication stream started, if it did. */
  startedAt: Date | undefined;
  lastAppliedAt: Date | undefined;

  constructor(options: SessionOptions) {
    this.options = options;
    this.log = options.log;
    this.appliedLsn = options.appliedLsn;
    this.maxBatchChanges = options.maxBatchChanges ?? 2_000;
    this.service = new LogicalReplicationService(
      { connectionString: options.databaseUrl, application_name: 'stockroom listener', keepAlive: true },
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
    );
  }

  get connected(): boolean {
    return this.startedAt !== undefined && this.failure === undefined && !this.stopping;
  }

  /** Streams until the session ends: resolves when stopped, rejects when it failed. */
  run(): Promise<void> {
    const ended = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    this.service.on('start', () => {
      this.startedAt = new Date();
      this.log.info({ slot: this.options.slot, from: formatLsn(this.appliedLsn) }, 'replication stream started');
      this.pingTimer = setInterval(() => this.pingWhenIdle(), this.options.idlePingMs ?? 1_000);
      this.pingTimer.unref();
    });
    this.service.on('data', (lsn: string, message: Pgoutput.Message) => this.onData(lsn, message));
    this.service.on('heartbeat', (lsn: string, _time: number, shouldRespond: boolean) => this.onHeartbeat(lsn, shouldRespond));
    this.service.on('error', (error: Error) => this.fail(error));
    const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: this.options.publications });
    this.service.subscribe(plugin, this.options.slot).then(
      () => this.end(),
      (error: Error) => this.fail(error),
    );
    return ended;
  }

  /** Graceful stop: apply and acknowledge every whole transaction received, then disconnect. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.transaction = undefined; // a partial transaction is replayed next time
    await this.flush().catch(() => {});
    await this.flushing;
    // The last acknowledgement asks for a reply, and the connection closes once the reply comes
    // (or after a second): the server has then read it, and the slot's position is ours.
    const replied = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1_000);
      timer.unref();
      this.service.once('heartbeat', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    if (this.appliedLsn > 0n && await this.service.acknowledge(formatLsn(this.appliedLsn - 1n), true)) await replied;
    await this.service.destroy();
    this.end();
  }

  private async onData(lsn: string, message: Pgoutput.Message): Promise<void> {
    if (this.failure || this.stopping) return;
    this.handling++;
    try {
      switch (message.tag) {
        case 'begin':
          this.transaction = new ReplicatedTransaction(message, this.options.streamIdOffset);
          break;
        case 'commit': {
          const transaction = this.transaction;
          this.transaction = undefined;
          if (!transaction) throw new Error(`commit at ${lsn} without a begin`);
          this.addToBatch(transaction, parseLsn(message.commitEndLsn ?? lsn));
          if (this.batchSize() >= this.maxBatchChanges) await this.flushWithBackpressure();
          else this.scheduleFlush();
          break;
        }
        case 'insert':
        case 'update':
        case 'delete':
        case 'truncate':
          if (!this.transaction) throw new Error(`${message.tag} at ${lsn} outside a transaction`);
          this.transaction.accept(message, this.options.catalog);
          // A very large transaction is applied in chunks (each idempotent); its position only at commit.
          if (this.transaction.changes >= this.maxBatchChanges) {
            this.addToBatch(this.transaction, undefined);
            await this.flushWithBackpressure();
          }
          break;
        default:
          break; // relation, type and origin messages need nothing from us
      }
    } catch (error) {
      this.fail(error as Error);
    } finally {
      this.handling--;
    }
  }

  private addToBatch(transaction: ReplicatedTransaction, endLsn: Lsn | undefined): void {
    const { rows, events, kits, channelsChanged } = transaction.drain();
    this.batch.channelsChanged ||= channelsChanged;
    this.batch.rows.push(...rows);
    this.batch.events.push(...events);
    for (const kit of kits) this.batch.kits.add(kit);
    if (endLsn !== undefined) {
      this.batch.endLsn = endLsn;
      this.batch.commitTimes.push(transaction.commitTimeMicros);
      this.batch.transactions++;
    }
  }

  private batchSize(): number {
    return this.batch.rows.length + this.batch.events.length / 2;
  }

  /**
   * Starts a flush of a full batch; decoding goes on while Redis applies it,
   * but with MAX_FLUSHES_IN_FLIGHT queued the library is made to wait (and so
   * pauses the socket): memory stays bounded however far behind we are.
   */
  private async flushWithBackpressure(): Promise<void> {
    const flushed = this.flush();
    if (this.flushesInFlight >= MAX_FLUSHES_IN_FLIGHT) await flushed;
  }

  /**
   * Flush once the library's queue has drained (setImmediate runs after its
   * microtask loop); but while a batch is applying, let this one grow and
   * send it when that one is done (or when it is full): under load, fewer
   * and larger batches (each script call has its own cost in Redis and
   * here); when idle, nothing waits.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (this.flushesInFlight > 0) {
        this.flushAfterCurrent = true;
        return;
      }
      void this.flush().catch(() => {});
    });
  }

  /** A flush (or an idle acknowledgement) ended: send the batch that waited for it. */
  private flushEnded(): void {
    this.flushesInFlight--;
    if (this.flushAfterCurrent && this.flushesInFlight === 0) {
      this.flushAfterCurrent = false;
      void this.flush().catch(() => {});
    }
  }

  /** Applies the current batch after the flushes before it, then acknowledges its position. */
  private flush(): Promise<void> {
    const batch = this.batch;
    if (batch.rows.length === 0 && batch.events.length === 0 && batch.kits.size === 0 && !batch.channelsChanged && batch.endLsn === undefined) return this.flushing;
    this.batch = emptyBatch();
    this.flushesInFlight++;
    const { writer, metrics } = this.options;
    const chain = { after: this.batchesSent === 0 ? '' : `${this.sessionToken}:${this.batchesSent}`, token: `${this.sessionToken}:${this.batchesSent + 1}` };
    this.batchesSent++;
    // Definitions taken now, as the batch is cut: as of its last transaction (later ones are not decoded yet).
    const { catalog } = this.options;
    const kits = [...batch.kits].flatMap((id) => catalog.kits.definition(id, (productId) => catalog.sku(productId)) ?? []);
    writer.useChannels(catalog.channelList());
    const applying = this.failure ? undefined : writer.apply(batch.rows, batch.events, batch.endLsn, chain, { shiftSums: true, kits });
    applying?.catch(() => {}); // its failure is taken below, in order
    this.flushing = this.flushing.then(async () => {
      if (this.failure || !applying) return;
      const result = await applying;
      if (result.skipped) throw new Error('a batch sent ahead of this one was not applied whole; the events and position of this one were not written (in a cluster its rows may have been: they are version-guarded, and the replay rewrites them)');
      const now = Date.now();
      for (const micros of batch.commitTimes) metrics.syncLatency.observe(Math.max(0, now - Number(micros / 1000n)) / 1000);
      metrics.changesApplied.inc(result.applied);
      metrics.staleWrites.inc(result.stale);
      metrics.transactionsApplied.inc(batch.transactions);
      for (const event of batch.events) {
        metrics.eventsProcessed.inc({ type: event.type });
        if (event.type === 'warehouse.stock.adjusted') metrics.adjustments.inc();
      }
      if (result.duplicates) metrics.eventsDuplicate.inc(result.duplicates);
      if (result.lost) this.options.onCacheLost();
      if (result.appliedRows.length) this.options.onApplied?.(result.appliedRows);
      // Before the position is acknowledged: a consumer that stops first replays the change, and rewrites them then.
      if (batch.channelsChanged) await this.options.onChannelsChanged?.();
      if (batch.endLsn !== undefined) {
        this.appliedLsn = batch.endLsn;
        this.lastAppliedAt = new Date(now);
        await this.acknowledge(batch.endLsn);
      }
    }).catch((error: Error) => this.fail(error)).finally(() => this.flushEnded());
    return this.flushing;
  }

  /**
   * Nothing received is still unhandled. With flow control the library queues
   * what it receives and hands it to onData one message at a time, going from
   * one message to the next without yielding to the event loop; so, seen from
   * a later turn of the loop, no handler running means an empty queue.
   */
  private idle(): boolean {
    return this.handling === 0 && !this.transaction && this.flushesInFlight === 0 && this.batch.rows.length === 0 && this.batch.endLsn === undefined;
  }

  /**
   * A keepalive carries the server's send position. When everything received
   * is applied, nothing before it is pending, so the position can be recorded
   * in Redis and acknowledged: the slot then retains no WAL, and a fast
   * shutdown of Postgres (which waits for that acknowledgement) does not hang.
   */
  private onHeartbeat(lsn: string, shouldRespond: boolean): void {
    // A keepalive comes straight from the socket, possibly right behind data still queued:
    // decide on a later turn of the event loop, when the queue has had its turn (see idle()).
    setImmediate(() => this.afterHeartbeat(lsn, shouldRespond));
  }

  private afterHeartbeat(lsn: string, shouldRespond: boolean): void {
    if (this.failure || this.stopping) return;
    const serverLsn = parseLsn(lsn);
    if (this.idle() && serverLsn > this.appliedLsn) {
      this.flushesInFlight++;
      this.flushing = this.flushing.then(async () => {
        if (this.failure || !this.idleAfter(serverLsn)) return;
        await this.options.writer.setPosition(serverLsn); // Redis never trails the slot
        this.appliedLsn = serverLsn;
        await this.acknowledge(serverLsn);
      }).catch((error: Error) => this.fail(error)).finally(() => this.flushEnded());
    } else if (shouldRespond) {
      void this.acknowledge(this.appliedLsn);
    }
  }

  /** Still idle once our turn in the flush chain comes (only this heartbeat's own flush in flight)? */
  private idleAfter(serverLsn: Lsn): boolean {
    return serverLsn > this.appliedLsn && this.handling === 0 && !this.transaction && this.batch.rows.length === 0 && this.batch.endLsn === undefined;
  }

  /** Asks an idle server for a keepalive (reply requested), which onHeartbeat then acknowledges. */
  private pingWhenIdle(): void {
    if (this.connected && this.idle() && this.appliedLsn > 0n) {
      void this.service.acknowledge(formatLsn(this.appliedLsn - 1n), true);
    }
  }

  private async acknowledge(lsn: Lsn): Promise<void> {
    if (lsn > 0n) await this.service.acknowledge(formatLsn(lsn - 1n));
  }

  private fail(error: Error): void {
    if (this.failure || this.stopping) return;
    this.failure = error;
    // stop() sets the library's stop flag synchronously: its queue loop hands
    // us nothing more, so nothing after the failed write is acknowledged.
    void this.service.destroy();
    clearInterval(this.pingTimer);
    this.settle?.reject(error);
  }

  private end(): void {
    clearInterval(this.pingTimer);
    if (!this.failure) this.settle?.resolve();
  }
}
