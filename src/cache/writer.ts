// Writes stock row states and stream events to Redis through the apply
// script (see scripts.ts): one round trip per batch, atomic, idempotent.
import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { formatLsn, parseLsn, type Lsn } from '../listener/lsn.ts';
import type { CacheKeys } from './keys.ts';
import { APPLY_SCRIPT, COMPLETE_REBUILD_SCRIPT } from './scripts.ts';

/** One stock row as the cache keeps it. */
export interface RowState {
  sku: string;
  warehouse: string;
  /** Decimal text: int8 from Postgres. */
  version: string;
  onHand: number;
  reserved: number;
  available: number;
  lowStockThreshold: number;
}

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

/** A row as read back from Redis. */
export interface CachedRow {
  version: string;
  onHand: number;
  reserved: number;
  available: number;
  lowStockThreshold: number;
  /** The plain warehouse key, which a person or another program may have changed. */
  warehouseKey: number | undefined;
}

export interface ApplyResult {
  applied: number;
  stale: number;
  appended: number;
  duplicates: number;
  /** The cache's source marker is gone: Redis lost its data (FLUSHALL, restart without persistence). */
  lost: boolean;
  /** The rows written (not refused as stale), in the order given. */
  appliedRows: RowState[];
}

const SHA = createHash('sha1').update(APPLY_SCRIPT).digest('hex');

export class CacheWriter {
  readonly keys: CacheKeys;
  private readonly redis: Redis;
  private readonly stream: { name: string; maxLength: number };

  constructor(redis: Redis, keys: CacheKeys, stream: { name: string; maxLength: number }) {
    this.redis = redis;
    this.keys = keys;
    this.stream = stream;
  }

  async apply(rows: readonly RowState[], events: readonly StreamEvent[], position?: Lsn): Promise<ApplyResult> {
    const args: Array<string | number> = [this.keys.prefix, this.stream.name, this.stream.maxLength, position === undefined ? '' : formatLsn(position), rows.length];
    for (const r of rows) args.push(r.sku, r.warehouse, r.version, r.onHand, r.reserved, r.available, r.lowStockThreshold);
    args.push(events.length);
    for (const e of events) args.push(e.streamId, e.type, e.id, e.subject, e.body);
    let reply: unknown;
    try {
      reply = await this.redis.evalsha(SHA, 0, ...args);
    } catch (error) {
      if (!String((error as Error).message).startsWith('NOSCRIPT')) throw error;
      reply = await this.redis.eval(APPLY_SCRIPT, 0, ...args);
    }
    const [applied, stale, appended, duplicates, lost, appliedIndexes] = reply as [number, number, number, number, number, number[]];
    return {
      applied, stale, appended, duplicates, lost: lost === 1,
      appliedRows: (appliedIndexes ?? []).map((index) => rows[index - 1]!),
    };
  }

  /** What Redis holds for some rows (rows-hash entry and warehouse key), in order; undefined where nothing is cached. */
  async readRows(rows: ReadonlyArray<{ sku: string; warehouse: string }>): Promise<Array<CachedRow | undefined>> {
    if (rows.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const r of rows) {
      pipeline.hget(this.keys.rows(r.sku), r.warehouse);
      pipeline.get(this.keys.warehouse(r.sku, r.warehouse));
    }
    const replies = (await pipeline.exec()) ?? [];
    return rows.map((_, i) => {
      const [hashError, entry] = replies[2 * i] ?? [];
      const [keyError, key] = replies[2 * i + 1] ?? [];
      if (hashError || keyError) throw hashError ?? keyError;
      if (typeof entry !== 'string') return undefined;
      const [version, onHand, reserved, available, lowStockThreshold] = entry.split(':');
      return {
        version: version!, onHand: Number(onHand), reserved: Number(reserved), available: Number(available),
        lowStockThreshold: Number(lowStockThreshold), warehouseKey: typeof key === 'string' ? Number(key) : undefined,
      };
    });
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
    await this.redis.set(this.keys.rebuilding, token);
    return token;
  }

  /** Marks the cache complete, if the rebuild's token survived (Redis kept what was written); atomically. */
  async completeRebuild(token: string, source: string, position: Lsn): Promise<boolean> {
    const done = await this.redis.eval(COMPLETE_REBUILD_SCRIPT, 3, this.keys.rebuilding, this.keys.source, this.keys.position,
      token, source, formatLsn(position));
    return done === 1;
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
