// The cache consumer: keeps a replication session running on the slot, for
// as long as the process lives. Before each session it makes sure the
// publication and slot exist and that Redis really holds what the slot says
// was acknowledged, rebuilding the cache from Postgres when it does not:
//   - no slot and no cache of this database (first start): create the slot,
//     exporting a snapshot, and build the cache in that snapshot: no gap, no
//     duplicate against the stream;
//   - a lost slot: Redis mirrors this database (source marker and position)
//     but the slot was dropped, or Postgres invalidated it (WAL it needed was
//     removed): recreate it the same way, rebuild in its snapshot, and publish
//     from the ledger the events of the movements committed in the gap (see
//     backfill.ts), recording the loss (meta:slot_loss) for `stockroom slot`;
//   - Redis mirrors another database, lost its data, or trails the slot:
//     rebuild in a fresh snapshot, the version guard absorbing the overlap.
// Then, unless the channels hashes were last written with the channels the
// catalog has (meta:channels), it rewrites them all (a channel change whose
// rewrite a stop cut short; see rewriteChannels).
// Between sessions it waits with jittered exponential backoff: after Postgres
// restarts, a dropped connection, or while another process holds the slot
// (it waits for it, never steals it).
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { rebuildCache, RebuildInterruptedError } from '../cache/rebuild.ts';
import type { CacheWriter, SlotCreatedRecord, SlotLossReason, SlotLossRecord } from '../cache/writer.ts';
import type { RowState } from '../cache/row.ts';
import { channelsArgument } from '../cache/channels.ts';
import { earlierLayoutOf, sourceMarker } from '../cache/keys.ts';
import { stockChannel } from '../db/channels.ts';
import type { Logger } from '../log.ts';
import { backfillGap, DEFAULT_BACKFILL_MARGIN_MS, gapWindow, publishedMovements } from './backfill.ts';
import { Catalog } from './catalog.ts';
import { formatLsn, type Lsn } from '../cache/lsn.ts';
import type { ListenerMetrics } from './metrics.ts';
import type { Partition } from '../partition.ts';
import {
  createSlotWithSnapshot, dropSlot, ensurePublications, inspectSlot, publicationNames, sourceIdentity, type CreatedSlot, type SlotState,
} from './replication-setup.ts';
import { ReplicationSession } from './session.ts';

export interface ConsumerOptions {
  databaseUrl: string;
  /** Pool for the consumer's own queries (slot state, catalog). */
  pool: pg.Pool;
  writer: CacheWriter;
  slot: string;
  publication: string;
  /** A partition's consumer: its share of the skus, and the publication of its ledger rows (replication-setup.ts). */
  partition?: Partition;
  ledgerPublication?: string;
  metrics: ListenerMetrics;
  log: Logger;
  /** Backoff between sessions: base and cap in ms. */
  backoff?: { baseMs: number; capMs: number };
  /** How often slot lag is sampled and Redis checked for lost data while idle. */
  watchIntervalMs?: number;
  /**
   * A standby (another consumer streams from the slot) checks this often
   * whether the slot is free, and takes it over when it is. Default 1 s: a
   * consumer killed -9 is replaced within about that (its walsender ends as
   * soon as the connection closes).
   */
  standbyPollMs?: number;
  /**
   * After a slot loss: the longest a transaction writing movements is assumed
   * to stay open, which widens the window of movements checked for missing
   * events (see backfill.ts). Default 10 minutes.
   */
  backfillMarginMs?: number;
}

/** How long a recovery from a slot loss holds its lease without renewing it (renewed every third of it). */
const RECOVERY_LEASE_MS = 15_000;

/** Another consumer is recovering from the slot's loss: wait for it, as for a slot in use. */
class SlotRecoveryElsewhereError extends Error {
  readonly code = 'STOCKROOM_SLOT_RECOVERY_ELSEWHERE';
}

export interface ConsumerHealth {
  streaming: boolean;
  /** Another consumer streams from the slot: this one waits to take over. */
  standby: boolean;
  appliedLsn: string | undefined;
  lastAppliedAt: string | undefined;
  slotLagBytes: number | null;
  rebuilding: boolean;
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => {
    clearTimeout(timer);
    resolve();
  }, { once: true });
});

export class CacheConsumer {
  private readonly options: ConsumerOptions;
  private readonly log: Logger;
  private readonly catalog = new Catalog();
  private readonly stopping = new AbortController();
  private session: ReplicationSession | undefined;
  private loop: Promise<void> | undefined;
  private watcher: NodeJS.Timeout | undefined;
  private rebuilding: Promise<void> | undefined;
  /** The source marker of a cache of this database and slot (keys.ts, sourceMarker); identity without the layout. */
  private source = '';
  private identity = '';
  private streamIdOffset = 0n;
  private lagBytes: number | null = null;
  private standby = false;
  /** The slot loss (by detection time) this process has counted in stockroom_slot_losses_total. */
  private countedLoss: string | undefined;

  constructor(options: ConsumerOptions) {
    this.options = options;
    this.log = options.log.child({ component: 'listener' });
  }

  /**
   * Starts the consumer; returns once the first preparation (and any rebuild)
   * is done, or, when another consumer is recovering from a slot loss, once
   * this one is waiting for it to finish.
   */
  async start(): Promise<void> {
    let appliedLsn: Lsn | undefined;
    try {
      appliedLsn = await this.prepare();
    } catch (error) {
      if (!(error instanceof SlotRecoveryElsewhereError)) throw error;
      this.log.info({ err: error.message }, 'waiting for another consumer to recover from the slot loss');
    }
    this.loop = this.run(appliedLsn);
    this.watcher = setInterval(() => void this.watch(), this.options.watchIntervalMs ?? 2_000);
    this.watcher.unref();
  }

  /** Applies and acknowledges what was received, then disconnects. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopping.signal.aborted) return this.loop;
    this.stopping.abort();
    clearInterval(this.watcher);
    await this.session?.stop();
    // A preparation under way (a rebuild, a lock wait) is not interrupted, but not waited for
    // past a bound either: it starts no session once it sees the stop, and whatever it wrote is
    // guarded and marked complete only when whole.
    await Promise.race([Promise.all([this.loop, this.rebuilding]), new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
  }

  health(): ConsumerHealth {
    return {
      streaming: this.session?.connected ?? false,
      standby: this.standby,
      appliedLsn: this.session ? formatLsn(this.session.appliedLsn) : undefined,
      lastAppliedAt: this.session?.lastAppliedAt?.toISOString(),
      slotLagBytes: this.lagBytes,
      rebuilding: this.rebuilding !== undefined,
    };
  }

  private async run(firstLsn: Lsn | undefined): Promise<void> {
    let appliedLsn: Lsn | undefined = firstLsn;
    let attempt = 0;
    while (!this.stopping.signal.aborted) {
      try {
        appliedLsn ??= await this.prepare();
        if (this.stopping.signal.aborted) return; // stopped while preparing: start nothing new
        await this.checkChannels();
        this.setStandby(false);
        const session = new ReplicationSession({
          databaseUrl: this.options.databaseUrl, slot: this.options.slot, publications: publicationNames(this.options),
          writer: this.options.writer, catalog: this.catalog, metrics: this.options.metrics, log: this.log,
          appliedLsn, streamIdOffset: this.streamIdOffset, onCacheLost: () => this.rebuildInBackground('redis lost its data'),
          onApplied: (rows) => this.announce(rows),
          onChannelsChanged: () => this.rewriteChannels(),
        });
        this.session = session;
        const startedAt = Date.now();
        await session.run();
        if (Date.now() - startedAt > 30_000) attempt = 0;
        if (this.stopping.signal.aborted) return;
        this.options.metrics.reconnects.inc({ reason: 'ended' });
        this.log.warn('replication stream ended; reconnecting');
      } catch (error) {
        if (this.stopping.signal.aborted) return;
        const { reason, message } = describe(error);
        if (reason === 'slot_in_use') {
          // Not a failure: another consumer streams from the slot. Stand by, cheaply (no
          // preparation, no backoff growing to seconds), and take over as soon as it is free.
          if (!this.standby) this.log.info({ slot: this.options.slot }, 'standing by: another consumer streams from the slot; taking over when it stops');
          this.setStandby(true);
          await this.waitForFreeSlot();
          appliedLsn = undefined;
          attempt = 0;
          continue;
        }
        this.options.metrics.reconnects.inc({ reason });
        (reason === 'slot_recovery_elsewhere' ? this.log.info.bind(this.log) : this.log.warn.bind(this.log))({ reason, err: message }, 'replication stream unavailable; retrying');
      }
      appliedLsn = undefined; // the next session prepares again: the slot may be gone, Redis may have lost data
      const { baseMs, capMs } = this.options.backoff ?? { baseMs: 250, capMs: 15_000 };
      const delay = Math.random() * Math.min(capMs, baseMs * 2 ** attempt); // full jitter
      attempt = Math.min(attempt + 1, 16);
      await sleep(delay, this.stopping.signal);
    }
  }

  private setStandby(standby: boolean): void {
    if (this.standby && !standby) this.log.info({ slot: this.options.slot }, 'the slot is free: taking over from the consumer that streamed from it');
    this.standby = standby;
    this.options.metrics.standby.set(standby ? 1 : 0);
  }

  /** Returns once the slot is not held by anyone (or is gone, or cannot be looked at: the caller's next session finds out why). */
  private async waitForFreeSlot(): Promise<void> {
    const pollMs = this.options.standbyPollMs ?? 1_000;
    while (!this.stopping.signal.aborted) {
      await sleep(pollMs * (0.75 + Math.random() * 0.25), this.stopping.signal); // jitter: standbys do not poll in step
      const state = await inspectSlot(this.options.pool, this.options.slot).catch(() => undefined);
      if (state?.activePid == null) return;
    }
  }

  /**
   * Publication, slot and cache made consistent; returns the position the
   * cache stands at (the session streams from the slot's own position).
   */
  private async prepare(): Promise<Lsn> {
    const { pool, slot, writer, databaseUrl, metrics, partition } = this.options;
    await ensurePublications(pool, this.options);
    this.identity = await sourceIdentity(pool, slot);
    this.source = sourceMarker(this.identity);
    let state = await inspectSlot(pool, slot);
    if (await this.slotLost(state)) {
      const recovered = await this.recoverLostSlot();
      if (recovered !== undefined) return recovered;
      state = await inspectSlot(pool, slot); // another consumer recovered it meanwhile
    }
    if (state?.invalid) {
      this.log.warn({ slot, walStatus: state.walStatus }, 'replication slot was invalidated by PostgreSQL and Redis holds no cache of this database; recreating it and building the cache');
      await this.dropWhenFree(state);
      state = undefined;
    }

    if (!state) {
      const createdAt = await databaseTime(pool);
      const created = await createSlotWithSnapshot(databaseUrl, slot).catch(async (error: { code?: string }) => {
        if (error.code === '42710') return undefined; // another consumer created it just now: use theirs
        throw error;
      });
      if (created) {
        try {
          // The catalog is read after the slot exists: a product committed before it is here,
          // one committed after it comes through the stream.
          await this.catalog.load(pool);
          this.log.info({ slot, at: formatLsn(created.consistentPoint) }, 'created replication slot (first start); building the cache from its snapshot');
          if ((await writer.readSource()) !== this.source) await writer.clear();
          this.streamIdOffset = await writer.claimStream(created.consistentPoint);
          metrics.rebuilds.inc({ reason: 'new slot' });
          const result = await rebuildCache({
            databaseUrl, writer, snapshotName: created.snapshotName, partition,
            complete: { source: this.source, position: () => created.consistentPoint },
          });
          await writer.writeSlotCreated(slotCreated(slot, createdAt, created, 'first start'));
          this.log.info({ rows: result.rows, seconds: result.seconds.toFixed(2) }, 'cache built');
        } finally {
          await created.close();
        }
        return created.consistentPoint;
      }
      state = await inspectSlot(pool, slot);
      if (!state) throw new Error(`replication slot ${slot} vanished while starting`);
    }
    await this.catalog.load(pool);

    const confirmed = state.confirmedFlushLsn ?? 0n;
    const [source, position] = await Promise.all([writer.readSource(), writer.readPosition()]);
    if (source !== this.source || position === undefined || position < confirmed) {
      // A cache of this database in an earlier layout is rebuilt in place: every key rewritten, the stream kept.
      const earlierLayout = earlierLayoutOf(source, this.identity);
      const reason = earlierLayout ? 'redis holds an earlier cache layout'
        : source !== undefined && source !== this.source ? 'redis mirrors another database'
          : position === undefined ? 'redis has no position' : 'redis trails the slot';
      this.log.warn({ reason, slot, position: position === undefined ? null : formatLsn(position), confirmed: formatLsn(confirmed) }, 'rebuilding the cache');
      if (source !== undefined && source !== this.source && !earlierLayout) {
        await writer.clear();
        this.streamIdOffset = await writer.claimStream(confirmed);
      }
      metrics.rebuilds.inc({ reason });
      const result = await rebuildCache({ databaseUrl, writer, partition, complete: { source: this.source, position: () => confirmed } });
      this.log.info({ rows: result.rows, stale: result.stale, seconds: result.seconds.toFixed(2) }, 'cache rebuilt');
      this.streamIdOffset = await writer.readStreamOffset();
      return confirmed;
    }
    this.streamIdOffset = await writer.readStreamOffset();
    return position;
  }

  /**
   * Rewrites the channels hash of every sku this consumer owns (its
   * partition's stocked skus, and every kit) with the channels as the
   * catalog has them, and records that it did.
   */
  private async rewriteChannels(): Promise<void> {
    const { writer, partition } = this.options;
    const started = performance.now();
    // The list the rewrite used is the one recorded (another writer of this process, resync, may set the database's meanwhile).
    const channels = this.catalog.channelList();
    writer.useChannels(channels);
    const skus = this.catalog.stockedSkus(partition);
    await writer.writeChannels(skus);
    const kits = [...this.catalog.kits.ids()].flatMap((id) => this.catalog.kits.definition(id, (productId) => this.catalog.sku(productId)) ?? []);
    for (let i = 0; i < kits.length; i += 250) await writer.recomputeKits(kits.slice(i, i + 250));
    await writer.markChannelsWritten(channels);
    this.log.info({ skus: skus.length, kits: kits.length, seconds: ((performance.now() - started) / 1000).toFixed(2) }, 'channels hashes rewritten');
  }

  /** At the start of a session: rewrites every channels hash unless they were last written with the channels the catalog has. */
  private async checkChannels(): Promise<void> {
    const { writer } = this.options;
    const current = channelsArgument(this.catalog.channelList());
    const written = await writer.readChannelsWritten();
    // A cache that never had channels needs no pass to delete hashes it cannot hold.
    if (written === current || (written === undefined && current === '[]')) return;
    await this.rewriteChannels();
  }

  /**
   * A lost slot, told from a first start by what Redis holds: a cache of this
   * database, with a position, whose slot is gone or invalidated; or a
   * recovery from such a loss that was cut short (its record still says
   * recovering: the slot it made has streamed nothing yet).
   */
  private async slotLost(state: SlotState | undefined): Promise<boolean> {
    const { writer } = this.options;
    const [source, position, loss] = await Promise.all([writer.readSource(), writer.readPosition(), writer.readSlotLoss()]);
    if (source !== this.source && !earlierLayoutOf(source, this.identity)) return false;
    return loss?.state === 'recovering' || (position !== undefined && (!state || state.invalid));
  }

  /**
   * A lost slot (dropped, or invalidated by PostgreSQL) while Redis mirrors
   * this database: recreate it with an exported snapshot, rebuild the cache in
   * that snapshot, and publish the events of the gap from the ledger in the
   * same snapshot (backfill.ts) before streaming resumes. One consumer at a
   * time (a lease in Redis; the others wait as for a slot in use), and
   * resumable: the loss record says `recovering` until the end, so a consumer
   * that crashed half-way is taken over (its slot dropped: nothing streamed
   * from it) and the backfill finds in the stream what was already published.
   */
  private async recoverLostSlot(): Promise<Lsn | undefined> {
    const { pool, slot, writer, databaseUrl, metrics } = this.options;
    const marginMs = this.options.backfillMarginMs ?? DEFAULT_BACKFILL_MARGIN_MS;
    const lease = randomUUID();
    if (!(await writer.acquireRecoveryLease(lease, RECOVERY_LEASE_MS))) {
      throw new SlotRecoveryElsewhereError(`another consumer is recovering from the loss of replication slot ${slot}`);
    }
    // Looked at again under the lease: another consumer may have recovered it since.
    const state = await inspectSlot(pool, slot).catch(async (error) => {
      await writer.releaseRecoveryLease(lease).catch(() => {});
      throw error;
    });
    const [position, pending] = await Promise.all([writer.readPosition(), writer.readSlotLoss()]);
    if (!(await this.slotLost(state))) {
      await writer.releaseRecoveryLease(lease);
      return undefined;
    }
    let leaseLost = false;
    const renewing = setInterval(() => {
      writer.renewRecoveryLease(lease, RECOVERY_LEASE_MS).then((held) => {
        if (!held) leaseLost = true;
      }, () => {});
    }, RECOVERY_LEASE_MS / 3);
    renewing.unref();
    const check = () => {
      if (leaseLost) throw new Error('the slot recovery lease expired (another consumer may have taken over); starting over');
      if (this.stopping.signal.aborted) throw new Error('stopping in the middle of a slot-loss recovery; the next start resumes it');
    };
    try {
      const resuming = pending?.state === 'recovering' ? pending : undefined;
      const reason: SlotLossReason = resuming?.reason ?? (state?.invalid ? 'invalidated' : 'dropped');
      let record: SlotLossRecord;
      if (resuming) {
        record = resuming;
      } else {
        // Read before anything is backfilled: the stream's newest event dates the gap's start.
        const window = await gapWindow(writer, await writer.readSlotCreated(), marginMs);
        record = {
          slot, reason, detectedAt: new Date().toISOString(), lostAfter: position === undefined ? null : formatLsn(position),
          state: 'recovering', windowFrom: window.from?.toISOString() ?? null, windowBasis: window.basis,
          resumedAt: null, backfilledMovements: 0, backfilledEvents: 0, finishedAt: null,
        };
        await writer.writeSlotLoss(record);
      }
      if (this.countedLoss !== record.detectedAt) {
        metrics.slotLosses.inc({ reason });
        this.countedLoss = record.detectedAt;
      }
      this.log.error({ slot, reason, walStatus: state?.walStatus ?? null, lostAfter: record.lostAfter, windowFrom: record.windowFrom, resuming: resuming !== undefined },
        `replication slot was ${reason === 'dropped' ? 'dropped' : 'invalidated by PostgreSQL'}${resuming ? ' (resuming an interrupted recovery)' : ''}; recreating it, rebuilding the cache and publishing the events of the gap from the ledger`);
      // The invalid slot, or the one an interrupted recovery made (nothing streamed from it: the record said recovering).
      if (state) await this.dropWhenFree(state);
      check();
      const createdAt = await databaseTime(pool);
      let created: CreatedSlot;
      try {
        created = await createSlotWithSnapshot(databaseUrl, slot);
      } catch (error) {
        if ((error as { code?: string }).code === '42710') throw new SlotRecoveryElsewhereError(`replication slot ${slot} was created by someone else during the recovery; recovering again`);
        throw error;
      }
      try {
        await this.catalog.load(pool);
        record.resumedAt = formatLsn(created.consistentPoint);
        await writer.writeSlotLoss(record);
        // Backfilled events take ids just below the new slot's first commit (see backfill.ts).
        const base = created.consistentPoint - 1n;
        this.streamIdOffset = await writer.claimStream(base);
        metrics.rebuilds.inc({ reason: `slot ${reason}` });
        let backfill = { candidates: 0, movements: 0, events: 0 };
        let tailRead = 0;
        const rebuilt = await rebuildCache({
          databaseUrl, writer, snapshotName: created.snapshotName, partition: this.options.partition,
          complete: { source: this.source, position: () => created.consistentPoint },
          // The gap's events are published in the same snapshot, before the cache is marked whole.
          beforeComplete: async () => {
            check();
            if (record.windowFrom !== null) {
              const from = new Date(record.windowFrom);
              const published = await publishedMovements(writer, from, marginMs);
              tailRead = published.read;
              backfill = await backfillGap({
                databaseUrl, snapshotName: created.snapshotName, writer, from, published: published.ids, partition: this.options.partition,
                baseStreamLsn: base + this.streamIdOffset, beforeBatch: check,
                onBatch: async ({ movements, events }) => {
                  for (const event of events) {
                    metrics.backfilledEvents.inc({ type: event.type });
                    metrics.eventsProcessed.inc({ type: event.type });
                    if (event.type === 'warehouse.stock.adjusted') metrics.adjustments.inc();
                  }
                  // Counted as it goes, so a recovery resumed after a crash adds to what was done.
                  record.backfilledMovements += movements;
                  record.backfilledEvents += events.length;
                  await writer.writeSlotLoss(record);
                },
              });
            } else {
              this.log.error({ slot, basis: record.windowBasis }, 'cannot tell which movements of the gap lack events; none were backfilled');
            }
          },
        });
        await writer.writeSlotCreated(slotCreated(slot, createdAt, created, reason));
        record = { ...record, state: 'done', finishedAt: new Date().toISOString() };
        await writer.writeSlotLoss(record);
        this.log.warn({
          slot, reason, movements: backfill.movements, events: backfill.events, totalMovements: record.backfilledMovements,
          candidates: backfill.candidates, streamEntriesRead: tailRead, windowFrom: record.windowFrom, windowBasis: record.windowBasis,
          resumedAt: record.resumedAt, rows: rebuilt.rows, seconds: rebuilt.seconds.toFixed(2),
        }, `recovered from the ${reason} slot: cache rebuilt, ${backfill.movements} movements of the gap got their events from the ledger (${backfill.events} events)`);
        return created.consistentPoint;
      } finally {
        await created.close();
      }
    } finally {
      clearInterval(renewing);
      await writer.releaseRecoveryLease(lease).catch(() => {});
    }
  }

  /**
   * NOTIFYs each applied row's change on its sku's channel (the API's
   * stockChanged subscription listens). Here, in the consumer's own small
   * transaction, rather than in the writing transaction: NOTIFY serialises the
   * commits of the transactions that send it.
   */
  private announce(rows: RowState[]): void {
    const channels = rows.map((r) => stockChannel(r.sku));
    const payloads = rows.map((r) => JSON.stringify({
      sku: r.sku, warehouse: r.warehouse, onHand: r.onHand, reserved: r.reserved, available: r.available, version: r.version,
    }));
    this.options.pool.query('select pg_notify(c, p) from unnest($1::text[], $2::text[]) as t(c, p)', [channels, payloads])
      .catch((error: Error) => this.log.warn({ err: error.message }, 'stock change notification failed'));
  }

  /** A slot Postgres invalidated can only be dropped; wait for a session still holding it to end. */
  private async dropWhenFree(state: SlotState): Promise<void> {
    for (let tries = 0; tries < 30; tries++) {
      const current = await inspectSlot(this.options.pool, state.name);
      if (!current) return;
      if (current.activePid === null) {
        await dropSlot(this.options.pool, state.name);
        return;
      }
      await sleep(1_000, this.stopping.signal);
    }
    throw new Error(`replication slot ${state.name} is invalid but still in use by pid ${state.activePid}`);
  }

  /** Runs a guarded rebuild beside the stream (only one at a time), then marks the cache complete. */
  private rebuildInBackground(reason: string): void {
    if (this.rebuilding || this.stopping.signal.aborted) return;
    this.log.warn({ reason }, 'rebuilding the cache beside the stream');
    this.options.metrics.rebuilds.inc({ reason });
    this.rebuilding = (async () => {
      try {
        const { writer } = this.options;
        // Until the marker is set, every apply reports the loss again; a loss *during* the
        // rebuild takes the token with it, and the rebuild then starts over.
        for (let attempt = 1; !this.stopping.signal.aborted; attempt++) {
          try {
            // The session keeps the position; the marker says the cache is whole again.
            const result = await rebuildCache({
              databaseUrl: this.options.databaseUrl, writer, partition: this.options.partition,
              complete: { source: this.source, position: () => this.session?.appliedLsn ?? 0n },
            });
            this.log.info({ rows: result.rows, stale: result.stale, seconds: result.seconds.toFixed(2) }, 'cache rebuilt');
            return;
          } catch (error) {
            if (!(error instanceof RebuildInterruptedError)) throw error;
          }
          this.log.warn({ attempt }, 'redis lost its data again during the rebuild; rebuilding again');
          this.options.metrics.rebuilds.inc({ reason: 'redis lost its data during a rebuild' });
        }
      } catch (error) {
        this.log.error({ err: error }, 'cache rebuild failed; it is retried when the loss is seen again');
      } finally {
        this.rebuilding = undefined;
      }
    })();
  }

  /** Samples slot lag, and catches a Redis that lost its data while no change flowed to reveal it. */
  private async watch(): Promise<void> {
    try {
      const state = await inspectSlot(this.options.pool, this.options.slot);
      this.lagBytes = state?.lagBytes ?? null;
      if (state?.lagBytes !== null && state?.lagBytes !== undefined) this.options.metrics.slotLagBytes.set(state.lagBytes);
      if (state?.retainedBytes !== null && state?.retainedBytes !== undefined) this.options.metrics.slotRetainedBytes.set(state.retainedBytes);
      if (this.session?.connected && !(await this.options.writer.hasSource())) this.rebuildInBackground('redis lost its data');
    } catch (error) {
      this.log.debug({ err: error }, 'slot watch failed');
    }
  }
}

/** The database's clock, taken just before a slot is created: after it, the slot's snapshot owes no events. */
async function databaseTime(pool: pg.Pool): Promise<Date> {
  return (await pool.query<{ at: Date }>('select clock_timestamp() as at')).rows[0]!.at;
}

function slotCreated(slot: string, at: Date, created: CreatedSlot, reason: SlotCreatedRecord['reason']): SlotCreatedRecord {
  return { slot, at: at.toISOString(), consistentPoint: formatLsn(created.consistentPoint), reason };
}

function describe(error: unknown): { reason: string; message: string } {
  const e = error as { code?: string; message?: string };
  const message = e?.message ?? String(error);
  if (e?.code === '55006') return { reason: 'slot_in_use', message }; // held by another consumer
  if (e?.code === 'STOCKROOM_SLOT_RECOVERY_ELSEWHERE') return { reason: 'slot_recovery_elsewhere', message };
  if (e?.code === '42704') return { reason: 'slot_missing', message };
  if (e?.code === '55000') return { reason: 'slot_invalid', message };
  if (e?.code === 'ECONNREFUSED' || /terminat|ECONNRESET|closed|shutdown/i.test(message)) return { reason: 'connection', message };
  return { reason: 'error', message };
}
