// Writes stock row states and stream events to Redis through the APPLY
// script (see scripts.ts): one round trip per batch, atomic, idempotent. Also
// keeps the cache's bookkeeping (position, source, rebuild tokens, the slot's
// history) and its reads (`reader`).
//
// In a Redis Cluster one script may only touch keys of one hash slot, so a
// batch is split (applyInCluster): first one APPLY_SLOT per slot its skus
// fall in (all keys of a sku share a slot, keys.ts), all sent at once; then,
// only once every one of them succeeded, one APPLY_STREAM in the slot of the
// stream and the meta keys: events, position and chain token, atomically.
// What that keeps:
// - rows: each slot's write is atomic and version-guarded, as on one Redis;
//   a sku's keys are never half-written;
// - events: exactly once. A batch whose row scripts failed (a node down)
//   fails before its events are written; the consumer then stops, restarts
//   from the position (which only APPLY_STREAM moves, after the rows) and
//   replays: rows are refused or rewritten by version, events already in the
//   stream are skipped by id. The chain token keeps the order of the
//   pipelined batches: a batch's stream script is sent only after the one of
//   the batch ahead has answered, and applies only if that one applied;
// - lost data: a master restarted without its data has lost the state hash
//   of each of its slots (rebuild sets "whole" in every slot), so the row
//   script of that slot reports `lost` and the consumer rebuilds, as it does
//   for a single Redis that lost its source marker. A rebuild's token is
//   kept in every slot (and in meta:rebuilds), so a node that lost its data
//   during the rebuild fails it (RebuildInterruptedError).
// Rows may thus reach Redis a moment before their events reach the stream
// (different nodes); a reader of the stream sees each event once, in commit order.
//
// Kits (row.ts, KitDefinition): a batch may name kits to recompute after its
// rows (the kits of the components it changed). On one Redis that is part of
// APPLY: read from the components' rows hashes and written in the same atomic
// step. In a cluster the components live in other slots, so the kits are
// computed here from a read of their rows hashes made after the batch's row
// scripts succeeded, and written by KIT_WRITE in each kit's slot, guarded by
// the Σ of component versions read (a recompute from older reads never
// overwrites a newer one); the batch's stream script waits for them. A kit
// touches a warehouse key per warehouse code: the writer passes every code it
// has seen, and a script that meets another answers with it, so the kit is
// recomputed again with it.
//
// Sales channels (channels.ts): every script that writes a sku's keys also
// rewrites its channels hash, from the channels this writer was given
// (useChannels); a writer never given them leaves those hashes alone.
import { randomUUID } from 'node:crypto';
import { channelsArgument, kitChannelAvailability, type ChannelList } from './channels.ts';
import { isCluster, type Redis } from './redis.ts';
import { formatLsn, parseLsn, type Lsn } from './lsn.ts';
import type { CacheKeys } from './keys.ts';
import { CacheReader } from './reader.ts';
import { encodeRow, kitMarkSum, kitState, type CachedRowValue, type KitDefinition, type RowState } from './row.ts';
import { APPLY, APPLY_SLOT, APPLY_STREAM, CHANNELS_WRITE, COMPLETE_REBUILD, KIT_WRITE, RELEASE_LEASE, RENEW_LEASE, REPLACE_AHEAD, runScript, SLOT_REBUILD } from './scripts.ts';
import { groupBySlot, SLOT_COUNT } from './slots.ts';

/** One entry for the events stream. */
export interface StreamEvent {
  /** Redis stream entry id, increasing in commit order. */
  streamId: string;
  type: string;
  /** CloudEvents id (derived from the movement id). */
  id: string;
  subject: string;
  /** The CloudEvent, serialized. */
  body: string;
}

export interface ApplyResult {
  applied: number;
  stale: number;
  appended: number;
  duplicates: number;
  /** The cache's source marker is gone: Redis lost its data (FLUSHALL, restart without persistence). */
  lost: boolean;
  /**
   * The batch this one follows (chain.after) was not applied whole, so this one's events and position
   * were not written; on one Redis nothing of it was, in a cluster its rows may have been (version-guarded:
   * the replay rewrites or refuses them).
   */
  skipped: boolean;
  /** The rows written (not refused as stale), in the order given. */
  appliedRows: RowState[];
  /**
   * Kits not written: Redis holds them computed with a newer definition (the
   * caller's is stale: a repair reloads it), or, in a cluster and unless
   * forced, from newer component rows (a concurrent recompute got there first).
   */
  kitsRefused: string[];
}

/** What apply does with kits besides the rows (see the top of this file). */
export interface ApplyOptions {
  /** Move each touched sku's sums by the batch's changes instead of reading its whole rows hash (the stream). */
  shiftSums?: boolean;
  /** Kits to recompute from their components' rows once the rows are written. */
  kits?: readonly KitDefinition[];
  /** Rewrite every key of those kits even when unchanged, whatever component versions they were computed from (repairs). */
  forceKits?: boolean;
}

/** Why the slot was lost: dropped (pg_drop_replication_slot, or gone for any reason), or invalidated by PostgreSQL. */
export type SlotLossReason = 'dropped' | 'invalidated';

/** The last loss of the slot (meta:slot_loss), as the consumer records it and `stockroom slot` shows it. */
export interface SlotLossRecord {
  slot: string;
  reason: SlotLossReason;
  /** When the consumer found the slot gone or invalidated (ISO time). */
  detectedAt: string;
  /** The cache's position when the loss was found: the gap is what committed after it. */
  lostAfter: string | null;
  /** recovering: a new slot is being made and the gap backfilled (nothing streams meanwhile); done: streaming resumed. */
  state: 'recovering' | 'done';
  /** Ledger movements with occurred_at at or after this were checked for missing events; null when nothing tells where the gap began. */
  windowFrom: string | null;
  /** How windowFrom was chosen, in words. */
  windowBasis: string;
  /** Consistent point of the new slot: movements committed before it were backfilled, later ones stream. */
  resumedAt: string | null;
  /** Movements whose events were published from the ledger, and how many events that made. */
  backfilledMovements: number;
  backfilledEvents: number;
  finishedAt: string | null;
}

/** When and why the slot the cache streams from was created (meta:slot_created). */
export interface SlotCreatedRecord {
  slot: string;
  /** Database time taken just before the slot was created. */
  at: string;
  consistentPoint: string;
  reason: 'first start' | SlotLossReason;
}

/** One entry of the events stream, as the slot-loss backfill reads it back. */
export interface StreamTailEntry {
  streamId: string;
  /** CloudEvents id: "<movement id>:<suffix>". */
  eventId: string;
  /** The CloudEvent, serialized. */
  body: string;
}

export class CacheWriter {
  readonly keys: CacheKeys;
  private readonly redis: Redis;
  private readonly stream: { name: string; maxLength: number };
  /** Cluster: the stream script of the last batch, which the next batch's waits for (see applyInCluster). */
  private streamScriptAhead: Promise<unknown> = Promise.resolve();
  /** Cluster: the kit recompute of the last batch, which the next batch's follows. */
  private kitsAhead: Promise<unknown> = Promise.resolve();
  /** Every warehouse code seen: a kit's recompute is given the kit's warehouse key for each. */
  private readonly warehouses = new Set<string>();
  /** Per kit, its kitKeys and warehouse keys for every code seen (made again when a code is added). */
  private readonly kitKeyCache = new Map<string, { codes: number; keys: string[] }>();
  /** The sales channels each sku's channels hash is written with; undefined: not known, the hashes are left alone. */
  private channels: ChannelList | undefined;

  readonly reader: CacheReader;

  constructor(redis: Redis, keys: CacheKeys, stream: { name: string; maxLength: number }) {
    if (keys.cluster !== isCluster(redis)) {
      throw new Error(keys.cluster ? 'the cluster key layout needs a Redis Cluster client' : 'a Redis Cluster needs the cluster key layout (cacheKeysFor)');
    }
    this.redis = redis;
    this.keys = keys;
    this.stream = stream;
    this.reader = new CacheReader(redis, keys);
  }

  /**
   * The channels (and their warehouses) the writes from now on compute each
   * sku's channels hash with: the consumer's as of the batch it cuts, the
   * database's for the other writers (loader.ts, loadChannels).
   */
  useChannels(channels: ChannelList): void {
    this.channels = channels;
  }

  /**
   * Rewrites the channels hashes of these stocked skus from their rows hashes
   * with the channels in use (after a channel's warehouses changed); kits are
   * recomputed instead (recomputeKits). Returns how many it wrote.
   */
  async writeChannels(skus: readonly string[]): Promise<number> {
    const argument = channelsArgument(this.channels);
    if (argument === '' || skus.length === 0) return 0;
    const keysOf = (sku: string) => [this.keys.rows(sku), this.keys.channels(sku)];
    const groups = this.keys.cluster
      ? groupBySlot(skus, (sku) => this.keys.rows(sku)).map((group) => group.items)
      : Array.from({ length: Math.ceil(skus.length / 500) }, (_, i) => skus.slice(i * 500, i * 500 + 500));
    let written = 0;
    for (let i = 0; i < groups.length; i += 16) {
      const replies = await Promise.all(groups.slice(i, i + 16).map((group) => runScript(this.redis, CHANNELS_WRITE, group.flatMap(keysOf), [argument])));
      for (const reply of replies) written += reply as number;
    }
    return written;
  }

  /** The channels argument every channels hash of the consumer's skus was last rewritten with (keys.ts, channelsWritten). */
  async readChannelsWritten(): Promise<string | undefined> {
    return (await this.redis.get(this.keys.channelsWritten)) ?? undefined;
  }

  /** Records that every channels hash of the consumer's skus is written with these channels. */
  async markChannelsWritten(channels: ChannelList): Promise<void> {
    await this.redis.set(this.keys.channelsWritten, channelsArgument(channels));
  }

  /**
   * chain: for batches sent before the one ahead has answered (the consumer's
   * pipeline): `after` is the token of the batch this one follows ('' for the
   * first), `token` this batch's. A batch whose predecessor was not applied
   * whole applies nothing and comes back `skipped`.
   * options.shiftSums: move each touched sku's sums by the batch's changes
   * instead of reading its whole rows hash (scripts.ts, shiftSku): for the
   * stream, whose batches are changes of a cache already whole. Every other
   * writer (rebuild, repairs) recomputes from the rows hash.
   */
  async apply(rows: readonly RowState[], events: readonly StreamEvent[], position?: Lsn, chain?: { after: string; token: string },
    options?: ApplyOptions): Promise<ApplyResult> {
    for (const r of rows) this.warehouses.add(r.warehouse);
    const channels = this.channels;
    if (this.keys.cluster) return this.applyInCluster(rows, events, position, chain, options, channels);
    const kits = options?.kits ?? [];
    const codes = kits.length > 0 ? [...this.warehouses] : [];
    const skus = [...new Set(rows.map((r) => r.sku))];
    const skuIndex = new Map(skus.map((sku, i) => [sku, i + 1]));
    const keys = [this.keys.source, this.stream.name, this.keys.position, this.keys.applyChain, ...skus.flatMap((sku) => this.keys.skuKeys(sku)),
      ...rows.map((r) => this.keys.warehouse(r.sku, r.warehouse)),
      ...kits.flatMap((kit) => [...this.keys.kitKeys(kit.sku), ...kit.components.map((c) => this.keys.rows(c.sku)), ...this.kitWarehouseKeys(kit.sku, codes)])];
    const args: Array<string | number> = [this.stream.maxLength, position === undefined ? '' : formatLsn(position), skus.length, rows.length,
      chain?.after ?? '', chain?.token ?? '', options?.shiftSums ? '1' : ''];
    for (const r of rows) args.push(skuIndex.get(r.sku)!, r.warehouse, r.version, encodeRow(r));
    args.push(kits.length, options?.forceKits ? '1' : '', codes.length, ...codes);
    for (const kit of kits) args.push(kit.version, kit.lowStockThreshold, kit.components.length, ...kit.components.map((c) => c.qty));
    args.push(events.length);
    for (const e of events) args.push(e.streamId, e.type, e.id, e.subject, e.body);
    args.push(channelsArgument(channels));
    const reply = await runScript(this.redis, APPLY, keys, args);
    const [applied, stale, appended, duplicates, lost, appliedIndexes, skipped, kitResults] =
      reply as [number, number, number, number, number, number[], number, Array<number | string[]>];
    const result: ApplyResult = {
      applied, stale, appended, duplicates, lost: lost === 1, skipped: skipped === 1,
      appliedRows: (appliedIndexes ?? []).map((index) => rows[index - 1]!), kitsRefused: [],
    };
    await this.kitOutcomes(kits, kitResults ?? [], result, (again) => this.apply([], [], undefined, undefined, { ...options, kits: again }));
    return result;
  }

  /** A kit's warehouse key for each code (codes: every code seen, in the order seen, so a longer list only adds). */
  private kitWarehouseKeys(sku: string, codes: readonly string[]): string[] {
    let cached = this.kitKeyCache.get(sku);
    if (!cached || cached.codes !== codes.length) {
      cached = { codes: codes.length, keys: codes.map((code) => this.keys.warehouse(sku, code)) };
      if (this.kitKeyCache.size > 100_000) this.kitKeyCache.clear();
      this.kitKeyCache.set(sku, cached);
    }
    return cached.keys;
  }

  /**
   * Recomputes kits from their components' rows as the cache holds them
   * (rebuild, repairs); returns the skus of those refused (see ApplyResult).
   */
  async recomputeKits(kits: readonly KitDefinition[], options: { force?: boolean } = {}): Promise<string[]> {
    if (kits.length === 0) return [];
    return (await this.apply([], [], undefined, undefined, { kits, forceKits: options.force })).kitsRefused;
  }

  /** Reads what the kit scripts answered: refused kits are reported, kits that met new warehouse codes are recomputed with them. */
  private async kitOutcomes(kits: readonly KitDefinition[], results: ReadonlyArray<number | string[]>, result: ApplyResult,
    again: (kits: KitDefinition[]) => Promise<ApplyResult>): Promise<void> {
    const retry: KitDefinition[] = [];
    results.forEach((outcome, i) => {
      if (outcome === 0) result.kitsRefused.push(kits[i]!.sku);
      else if (Array.isArray(outcome)) {
        for (const code of outcome) this.warehouses.add(code);
        retry.push(kits[i]!);
      }
    });
    if (retry.length > 0) result.kitsRefused.push(...(await again(retry)).kitsRefused);
  }

  /** Cluster: kits computed here from their components' rows (read now, slot by slot), each written by KIT_WRITE in its slot. */
  private async recomputeKitsInCluster(kits: readonly KitDefinition[], force: boolean, channels: ChannelList | undefined): Promise<string[]> {
    if (kits.length === 0) return [];
    const components = [...new Set(kits.flatMap((kit) => kit.components.map((c) => c.sku)))];
    const hashes = new Map((await this.reader.rowsHashes(components)).map((rows, i) => [components[i]!, rows]));
    const results = await Promise.all(kits.map(async (kit) => {
      const components = kit.components.map((c) => ({ qty: c.qty, rows: hashes.get(c.sku) }));
      const state = kitState(kit, components);
      for (const code of state.rows.keys()) this.warehouses.add(code);
      const codes = [...this.warehouses];
      const keys = [...this.keys.kitKeys(kit.sku), ...codes.map((code) => this.keys.warehouse(kit.sku, code))];
      const args: Array<string | number> = [kit.version, force ? '1' : '', kit.lowStockThreshold, state.totals.total, state.totals.available,
        kitMarkSum(state.mark)!, codes.length, ...codes, state.rows.size];
      for (const [code, row] of state.rows) args.push(code, encodeRow(row));
      if (channels) args.push(...kitChannelAvailability(components, channels).values());
      args.push(channelsArgument(channels));
      return (await runScript(this.redis, KIT_WRITE, keys, args)) as number | string[];
    }));
    const result = { kitsRefused: [] } as unknown as ApplyResult;
    await this.kitOutcomes(kits, results, result, async (again) => ({ kitsRefused: await this.recomputeKitsInCluster(again, force, channels) }) as ApplyResult);
    return result.kitsRefused;
  }

  /** apply in a Redis Cluster: per-slot row scripts, then the stream script (see the top of this file). */
  private async applyInCluster(rows: readonly RowState[], events: readonly StreamEvent[], position: Lsn | undefined, chain: { after: string; token: string } | undefined,
    options: ApplyOptions | undefined, channels: ChannelList | undefined): Promise<ApplyResult> {
    const rowsWritten = Promise.all(groupBySlot(rows, (r) => this.keys.rows(r.sku)).map(async (group) => {
      const skus = [...new Set(group.items.map((r) => r.sku))];
      const skuIndex = new Map(skus.map((sku, i) => [sku, i + 1]));
      const keys = [this.keys.slotState(group.slot), ...skus.flatMap((sku) => this.keys.skuKeys(sku)),
        ...group.items.map((r) => this.keys.warehouse(r.sku, r.warehouse))];
      const args: Array<string | number> = [skus.length, group.items.length, options?.shiftSums ? '1' : ''];
      for (const r of group.items) args.push(skuIndex.get(r.sku)!, r.warehouse, r.version, encodeRow(r));
      args.push(channelsArgument(channels));
      const [applied, stale, lost, written] = (await runScript(this.redis, APPLY_SLOT, keys, args)) as [number, number, number, number[]];
      return { applied, stale, lost: lost === 1, rows: (written ?? []).map((i) => group.indexes[i - 1]!) };
    }));
    // The kits after this batch's rows and after the kits of the batch ahead (a later read never written first).
    const kits = options?.kits ?? [];
    let kitsRefused: string[] = [];
    const kitsAhead = this.kitsAhead;
    const writing = (async () => {
      const slots = await rowsWritten;
      await kitsAhead.catch(() => {});
      kitsRefused = await this.recomputeKitsInCluster(kits, options?.forceKits ?? false, channels);
      return slots;
    })();
    this.kitsAhead = writing;
    writing.catch(() => {}); // awaited below
    const result: ApplyResult = { applied: 0, stale: 0, appended: 0, duplicates: 0, lost: false, skipped: false, appliedRows: [], kitsRefused: [] };
    const streamed = chain !== undefined || events.length > 0 || position !== undefined;
    if (streamed) {
      // Sent after this batch's rows, and after the stream script of the batch ahead has answered:
      // the meta slot then sees the batches in order, and the chain stops one behind a failure.
      const ahead = this.streamScriptAhead;
      const step = (async () => {
        await writing;
        await ahead.catch(() => {});
        const args: Array<string | number> = [this.stream.maxLength, position === undefined ? '' : formatLsn(position), chain?.after ?? '', chain?.token ?? '', events.length];
        for (const e of events) args.push(e.streamId, e.type, e.id, e.subject, e.body);
        return (await runScript(this.redis, APPLY_STREAM, [this.keys.source, this.stream.name, this.keys.position, this.keys.applyChain], args)) as [number, number, number, number];
      })();
      this.streamScriptAhead = step;
      step.catch(() => {}); // awaited below
      const [appended, duplicates, lost, skipped] = await step;
      Object.assign(result, { appended, duplicates, lost: lost === 1, skipped: skipped === 1 });
    }
    const slots = await writing;
    const written: number[] = [];
    for (const slot of slots) {
      result.applied += slot.applied;
      result.stale += slot.stale;
      result.lost ||= slot.lost;
      written.push(...slot.rows);
    }
    result.appliedRows = written.sort((a, b) => a - b).map((i) => rows[i]!);
    result.kitsRefused = kitsRefused;
    return result;
  }

  /**
   * Rewrites one sku's rows-hash entries that are ahead of PostgreSQL (which
   * the version guard of apply would keep), each only if Redis still holds
   * exactly the entry seen; returns how many were rewritten.
   */
  async replaceAhead(sku: string, rows: ReadonlyArray<{ state: RowState; seen: CachedRowValue }>): Promise<number> {
    if (rows.length === 0) return 0;
    const keys = [...this.keys.skuKeys(sku), ...rows.map((r) => this.keys.warehouse(sku, r.state.warehouse))];
    const args = [...rows.flatMap((r) => [r.state.warehouse, encodeRow(r.seen), encodeRow(r.state)]), channelsArgument(this.channels)];
    return (await runScript(this.redis, REPLACE_AHEAD, keys, args)) as number;
  }

  /** Records how far the cache is applied, without other changes (an idle acknowledgement). */
  async setPosition(position: Lsn): Promise<void> {
    await this.redis.set(this.keys.position, formatLsn(position));
  }

  async readPosition(): Promise<Lsn | undefined> {
    const text = await this.redis.get(this.keys.position);
    return text ? parseLsn(text) : undefined;
  }

  async readStreamOffset(): Promise<bigint> {
    return BigInt((await this.redis.get(this.keys.streamOffset)) ?? '0');
  }

  /**
   * Called when this cache starts mirroring a source from `startLsn` (a new
   * slot, or a cache taken over from another database): stream ids are commit
   * LSNs plus an offset, and the offset must lift them above whatever the
   * stream already holds, or the apply script would take new events for
   * replays. Returns the offset to use.
   */
  async claimStream(startLsn: Lsn): Promise<bigint> {
    let offset = await this.readStreamOffset();
    let top: bigint | undefined;
    try {
      const info = (await this.redis.call('XINFO', 'STREAM', this.stream.name)) as unknown[];
      const at = info.indexOf('last-generated-id');
      top = BigInt(String(info[at + 1]).split('-')[0]!);
    } catch {
      top = undefined; // no stream yet
    }
    if (top !== undefined && top >= startLsn + offset) {
      offset = top - startLsn + 1n;
      await this.redis.set(this.keys.streamOffset, offset.toString());
    }
    return offset;
  }

  async readSource(): Promise<string | undefined> {
    return (await this.redis.get(this.keys.source)) ?? undefined;
  }

  /** Marks the cache complete for a source, as of a position. */
  async markSource(source: string, position: Lsn): Promise<void> {
    await this.redis.multi().set(this.keys.source, source).set(this.keys.position, formatLsn(position)).exec();
  }

  /** Starts a rebuild: returns a token that a loss of Redis's data during the rebuild takes with it. */
  async beginRebuild(): Promise<string> {
    const token = randomUUID();
    const now = new Date().toISOString();
    await this.redis.hset(this.keys.rebuilds, token, now);
    if (this.keys.cluster) await this.eachSlot((slot) => runScript(this.redis, SLOT_REBUILD, [this.keys.slotState(slot)], ['begin', token, now]));
    return token;
  }

  /** Cluster: runs `step` for every hash slot, a few thousand at a time; the replies in slot order. */
  private async eachSlot<T>(step: (slot: number) => Promise<T>): Promise<T[]> {
    const replies: T[] = [];
    for (let from = 0; from < SLOT_COUNT; from += 4096) {
      replies.push(...await Promise.all(Array.from({ length: 4096 }, (_, i) => step(from + i))));
    }
    return replies;
  }

  /**
   * Ends a rebuild: true if its token survived (Redis kept what was written).
   * With a source and position, also marks the cache complete for them, in
   * the same step.
   */
  async completeRebuild(token: string, complete?: { source: string; position: Lsn }): Promise<boolean> {
    if (this.keys.cluster) {
      // Every slot must still hold the token: a node that lost its data meanwhile lost it for its slots.
      const now = new Date().toISOString();
      const kept = await this.eachSlot((slot) => runScript(this.redis, SLOT_REBUILD, [this.keys.slotState(slot)], ['end', token, now]));
      if (kept.some((k) => k !== 1)) {
        await this.redis.hdel(this.keys.rebuilds, token);
        return false;
      }
    }
    if (!complete) return (await this.redis.hdel(this.keys.rebuilds, token)) === 1;
    const done = await runScript(this.redis, COMPLETE_REBUILD, [this.keys.rebuilds, this.keys.source, this.keys.position],
      [token, complete.source, formatLsn(complete.position)]);
    return done === 1;
  }

  async readSlotLoss(): Promise<SlotLossRecord | undefined> {
    return parseJson<SlotLossRecord>(await this.redis.get(this.keys.slotLoss));
  }

  async writeSlotLoss(record: SlotLossRecord): Promise<void> {
    await this.redis.set(this.keys.slotLoss, JSON.stringify(record));
  }

  async readSlotCreated(): Promise<SlotCreatedRecord | undefined> {
    return parseJson<SlotCreatedRecord>(await this.redis.get(this.keys.slotCreated));
  }

  async writeSlotCreated(record: SlotCreatedRecord): Promise<void> {
    await this.redis.set(this.keys.slotCreated, JSON.stringify(record));
  }

  /** Takes the slot-recovery lease for `ms` unless another consumer holds it. */
  async acquireRecoveryLease(token: string, ms: number): Promise<boolean> {
    return (await this.redis.set(this.keys.slotRecovery, token, 'PX', ms, 'NX')) === 'OK';
  }

  /** Pushes the lease's expiry back; false when the token no longer holds it. */
  async renewRecoveryLease(token: string, ms: number): Promise<boolean> {
    return (await runScript(this.redis, RENEW_LEASE, [this.keys.slotRecovery], [token, ms])) === 1;
  }

  async releaseRecoveryLease(token: string): Promise<void> {
    await runScript(this.redis, RELEASE_LEASE, [this.keys.slotRecovery], [token]);
  }

  /**
   * The newest and the oldest entry of the events stream, and whether entries
   * were ever removed from it (MAXLEN trimming, XDEL): then the oldest retained
   * entry is not the first ever appended.
   */
  async streamEnds(): Promise<{ newest: StreamTailEntry | undefined; oldest: StreamTailEntry | undefined; trimmed: boolean }> {
    const [newest] = await this.readStream('+', '-', 1, true);
    const [oldest] = await this.readStream('-', '+', 1, false);
    let trimmed = true; // unknown (no stream, or a Redis without max-deleted-entry-id): assume the worst
    try {
      const info = (await this.redis.call('XINFO', 'STREAM', this.stream.name)) as unknown[];
      const at = info.indexOf('max-deleted-entry-id');
      if (at >= 0) trimmed = String(info[at + 1]) !== '0-0';
    } catch {
      // no stream yet
    }
    return { newest, oldest, trimmed };
  }

  /** The events stream from its newest entry backwards, a page at a time; stop iterating to stop reading. */
  async *streamTail(pageSize = 2_000): AsyncGenerator<StreamTailEntry> {
    let end = '+';
    for (;;) {
      const page = await this.readStream(end, '-', pageSize, true);
      for (const entry of page) yield entry;
      if (page.length < pageSize) return;
      end = `(${page.at(-1)!.streamId}`;
    }
  }

  private async readStream(from: string, to: string, count: number, reverse: boolean): Promise<StreamTailEntry[]> {
    const entries = reverse
      ? await this.redis.xrevrange(this.stream.name, from, to, 'COUNT', count)
      : await this.redis.xrange(this.stream.name, from, to, 'COUNT', count);
    return entries.map(([streamId, fields]) => {
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
      return { streamId, eventId: f.id ?? '', body: f.event ?? '{}' };
    });
  }

  /**
   * The cache still holds its data: the source marker, and in a cluster the
   * `whole` marker of one slot per master (a master restarted without its
   * data lost it for all its slots), so a loss is seen while nothing is written.
   */
  async hasSource(): Promise<boolean> {
    if ((await this.redis.exists(this.keys.source)) !== 1) return false;
    if (!isCluster(this.redis)) return true;
    // CLUSTER SLOTS: ranges [first, last, [host, port, id] of the master, replicas…].
    const firstSlotOf = new Map<string, number>();
    for (const [first, , master] of await this.redis.cluster('SLOTS')) {
      const node = `${master?.[0]}:${master?.[1]}`;
      if (!firstSlotOf.has(node)) firstSlotOf.set(node, first);
    }
    const whole = await Promise.all([...firstSlotOf.values()].map((slot) => this.redis.hexists(this.keys.slotState(slot), 'whole')));
    return whole.every((w) => w === 1);
  }

  /** Deletes every key under the prefix (not the events stream); returns how many. In a cluster, on every master. */
  async clear(): Promise<number> {
    const pattern = `${this.keys.prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    let deleted = 0;
    for (const node of isCluster(this.redis) ? this.redis.nodes('master') : [this.redis]) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        const doomed = keys.filter((k) => k !== this.stream.name);
        // In a cluster a multi-key UNLINK must stay in one slot: one per key, through the cluster client.
        if (doomed.length) {
          deleted += isCluster(this.redis)
            ? (await Promise.all(doomed.map((k) => this.redis.unlink(k)))).reduce((a, b) => a + b, 0)
            : await this.redis.unlink(...doomed);
        }
      } while (cursor !== '0');
    }
    return deleted;
  }
}

function parseJson<T>(text: string | null): T | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined; // a hand-edited record is no record
  }
}
