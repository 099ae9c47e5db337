// Writes stock row states and stream events to Redis through the APPLY
// script (see scripts.ts): one round trip per batch, atomic, idempotent. Also
// keeps the cache's bookkeeping (position, source, rebuild tokens, the slot's
// history) and its reads (`reader`).
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { formatLsn, parseLsn, type Lsn } from './lsn.ts';
import type { CacheKeys } from './keys.ts';
import { CacheReader } from './reader.ts';
import { encodeRow, type CachedRowValue, type RowState } from './row.ts';
import { APPLY, COMPLETE_REBUILD, RELEASE_LEASE, RENEW_LEASE, REPLACE_AHEAD, runScript } from './scripts.ts';

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
  /** Nothing was applied: the batch this one follows (chain.after) was not applied whole. */
  skipped: boolean;
  /** The rows written (not refused as stale), in the order given. */
  appliedRows: RowState[];
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

  readonly reader: CacheReader;

  constructor(redis: Redis, keys: CacheKeys, stream: { name: string; maxLength: number }) {
    this.redis = redis;
    this.keys = keys;
    this.stream = stream;
    this.reader = new CacheReader(redis, keys);
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
    options?: { shiftSums?: boolean }): Promise<ApplyResult> {
    const skus = [...new Set(rows.map((r) => r.sku))];
    const skuIndex = new Map(skus.map((sku, i) => [sku, i + 1]));
    const keys = [this.keys.source, this.stream.name, this.keys.position, this.keys.applyChain, ...skus.flatMap((sku) => this.keys.skuKeys(sku)),
      ...rows.map((r) => this.keys.warehouse(r.sku, r.warehouse))];
    const args: Array<string | number> = [this.stream.maxLength, position === undefined ? '' : formatLsn(position), skus.length, rows.length,
      chain?.after ?? '', chain?.token ?? '', options?.shiftSums ? '1' : ''];
    for (const r of rows) args.push(skuIndex.get(r.sku)!, r.warehouse, r.version, encodeRow(r));
    args.push(events.length);
    for (const e of events) args.push(e.streamId, e.type, e.id, e.subject, e.body);
    const reply = await runScript(this.redis, APPLY, keys, args);
    const [applied, stale, appended, duplicates, lost, appliedIndexes, skipped] = reply as [number, number, number, number, number, number[], number];
    return {
      applied, stale, appended, duplicates, lost: lost === 1, skipped: skipped === 1,
      appliedRows: (appliedIndexes ?? []).map((index) => rows[index - 1]!),
    };
  }

  /**
   * Rewrites one sku's rows-hash entries that are ahead of PostgreSQL (which
   * the version guard of apply would keep), each only if Redis still holds
   * exactly the entry seen; returns how many were rewritten.
   */
  async replaceAhead(sku: string, rows: ReadonlyArray<{ state: RowState; seen: CachedRowValue }>): Promise<number> {
    if (rows.length === 0) return 0;
    const keys = [...this.keys.skuKeys(sku), ...rows.map((r) => this.keys.warehouse(sku, r.state.warehouse))];
    const args = rows.flatMap((r) => [r.state.warehouse, encodeRow(r.seen), encodeRow(r.state)]);
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
    await this.redis.hset(this.keys.rebuilds, token, new Date().toISOString());
    return token;
  }

  /**
   * Ends a rebuild: true if its token survived (Redis kept what was written).
   * With a source and position, also marks the cache complete for them, in
   * the same step.
   */
  async completeRebuild(token: string, complete?: { source: string; position: Lsn }): Promise<boolean> {
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

  async hasSource(): Promise<boolean> {
    return (await this.redis.exists(this.keys.source)) === 1;
  }

  /** Deletes every key under the prefix (not the events stream); returns how many. */
  async clear(): Promise<number> {
    const pattern = `${this.keys.prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    let cursor = '0';
    let deleted = 0;
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      const doomed = keys.filter((k) => k !== this.stream.name);
      if (doomed.length) deleted += await this.redis.unlink(...doomed);
    } while (cursor !== '0');
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
