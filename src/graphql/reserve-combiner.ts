// Request combining for the reserve mutation: concurrent reserves ride in one
// inventory.reserve_many call, one transaction for many reservations. This is
// group commit in the application, on PostgreSQL's own rule: wait only when
// others are about to commit. A request that finds one of the combiner's
// connections free goes at once, alone (a lone request waits for nothing);
// requests that arrive while every connection is busy queue, and the next free
// connection takes them together, up to maxBatch. A hot sku is then taken by
// one transaction per batch instead of one per request, and the number of
// transactions competing for its row is the number of connections (hot-row
// throughput peaks at 2 to 4).
//
// Each caller gets exactly its own answer: reserve_many answers every request
// on its own (a failed one writes nothing and fails no other). When the call
// as a whole fails with an error PostgreSQL reports (a statement timeout
// because one request waited on a lock, say), it was rolled back, and each
// request is retried alone, so one caller's trouble never becomes another's.
// When the connection is lost mid-call, the outcome is unknown: every caller
// of that batch gets the error, as a direct caller would.
import type pg from 'pg';
import { Histogram, type Registry } from 'prom-client';

export interface ReserveLine { sku: string; warehouse?: string | null; qty: number; channel?: string | null; region?: string | null }

export interface ReserveRequest {
  orderRef: string;
  lines: ReserveLine[];
  ttlSeconds?: number | null;
  idempotencyKey?: string | null;
  /** The ledger's actor for this reservation (a token's subject, else its role). */
  actor: string;
}

/** A request refused by reserve_many: shaped like pg's DatabaseError (code is the SQLSTATE), so errors map alike. */
export class ReserveRefusal extends Error {
  readonly code: string;
  readonly detail: string | undefined;
  readonly hint: string | undefined;
  constructor(code: string, message: string, detail?: string | null, hint?: string | null) {
    super(message);
    this.name = 'ReserveRefusal';
    this.code = code;
    this.detail = detail ?? undefined;
    this.hint = hint ?? undefined;
  }
}

export interface CombinerOptions {
  /** Connections (transactions in flight at once). */
  connections: number;
  /** The most requests one call carries. */
  maxBatch: number;
}

export function createCombinerMetrics(registry: Registry) {
  return {
    batchSize: new Histogram({
      name: 'stockroom_reserve_batch_size', help: 'Reserve mutations combined into one inventory.reserve_many call',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128], registers: [registry],
    }),
  };
}

interface Pending {
  request: ReserveRequest;
  resolve(reservationId: string): void;
  reject(error: unknown): void;
}

interface ResultRow { request: number; id: string | null; sqlstate: string | null; message: string | null; detail: string | null; hint: string | null }

const RESERVE_MANY = `select r.request, (r.reservation).id, r.sqlstate, r.message, r.detail::text as detail, r.hint
  from inventory.reserve_many($1::jsonb) r`;

export class ReserveCombiner {
  private readonly queue: Pending[] = [];
  private busy = 0;
  private readonly pool: Pick<pg.Pool, 'query'>;
  private readonly options: CombinerOptions;
  private readonly metrics: ReturnType<typeof createCombinerMetrics> | undefined;

  constructor(pool: Pick<pg.Pool, 'query'>, options: CombinerOptions, metrics?: ReturnType<typeof createCombinerMetrics>) {
    this.pool = pool;
    this.options = options;
    this.metrics = metrics;
  }

  /** Reserves; resolves with the reservation's id, rejects with its ReserveRefusal (or the call's error). */
  reserve(request: ReserveRequest): Promise<string> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.busy < this.options.connections && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.busy++;
      void this.run(batch).finally(() => {
        this.busy--;
        this.pump();
      });
    }
  }

  private async run(batch: Pending[]): Promise<void> {
    this.metrics?.batchSize.observe(batch.length);
    let rows: ResultRow[];
    try {
      ({ rows } = await this.pool.query<ResultRow>({
        name: 'reserve-many', text: RESERVE_MANY, values: [JSON.stringify(batch.map((p) => toJson(p.request)))],
      }));
    } catch (error) {
      const rolledBack = typeof (error as { code?: unknown }).code === 'string' && /^[0-9A-Z]{5}$/.test((error as { code: string }).code);
      if (batch.length > 1 && rolledBack) {
        await Promise.all(batch.map((one) => this.run([one])));
      } else {
        for (const p of batch) p.reject(error);
      }
      return;
    }
    for (const row of rows) {
      const pending = batch[row.request - 1]!;
      if (row.id) pending.resolve(row.id);
      else pending.reject(new ReserveRefusal(row.sqlstate ?? 'XX000', row.message ?? 'reserve failed', row.detail, row.hint));
    }
    if (rows.length !== batch.length) {
      const error = new Error(`reserve_many answered ${rows.length} of ${batch.length} requests`);
      for (const p of batch.slice(rows.length)) p.reject(error);
    }
  }
}

/** A request as reserve_many reads it (see sql/functions/reserve_many.sql). */
function toJson(r: ReserveRequest) {
  return {
    order_ref: r.orderRef,
    // (Only the fields given: a line without a channel stays a plain line, for reserve's lean path.)
    lines: r.lines.map((l) => ({
      sku: l.sku, ...(l.warehouse ? { warehouse: l.warehouse } : {}), qty: l.qty,
      ...(l.channel ? { channel: l.channel } : {}), ...(l.region ? { region: l.region } : {}),
    })),
    ...(r.ttlSeconds != null ? { ttl: r.ttlSeconds } : {}),
    ...(r.idempotencyKey != null ? { idempotency_key: r.idempotencyKey } : {}),
    actor: r.actor,
  };
}
