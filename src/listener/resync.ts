// The manual "sync this product" of the old system, over LISTEN/NOTIFY:
//   NOTIFY stockroom_resync, '<sku>'
// re-reads that sku from Postgres and rewrites its keys (a component's kits
// too; a kit's components, then the kit). Payloads are
// untrusted: anything that is not a plausible sku is logged and ignored. The
// listener reconnects forever (pg-listen's default gives up after 3 s), and
// after a reconnect rebuilds the cache, since requests sent while it was away
// are lost.
import pgListen, { type Subscriber } from 'pg-listen';
import type pg from 'pg';
import { z } from 'zod';
import type { CacheWriter } from '../cache/writer.ts';
import { writeWithKits } from '../cache/kits.ts';
import { loadKitDefinitions, loadSkus } from '../cache/loader.ts';
import type { Logger } from '../log.ts';
import type { ListenerMetrics } from './metrics.ts';

export const RESYNC_CHANNEL = 'stockroom_resync';

/** Same rule as inventory.products.sku: 1..128 characters, no leading or trailing spaces (btrim strips spaces only). */
const skuPayload = z.string().min(1).max(128).refine((s) => !s.startsWith(' ') && !s.endsWith(' '));

export interface ResyncOptions {
  databaseUrl: string;
  pool: pg.Pool;
  writer: CacheWriter;
  metrics: ListenerMetrics;
  log: Logger;
  /** Called after the LISTEN connection came back (requests may have been missed). */
  onReconnected: () => Promise<void> | void;
}

export class ResyncListener {
  private readonly options: ResyncOptions;
  private readonly log: Logger;
  private readonly subscriber: Subscriber;
  private readonly queue = new Set<string>();
  private draining: Promise<void> | undefined;
  private reconnecting = false;

  constructor(options: ResyncOptions) {
    this.options = options;
    this.log = options.log.child({ component: 'resync' });
    // pg-listen is CommonJS: its function is the `default` property of module.exports.
    this.subscriber = pgListen.default({ connectionString: options.databaseUrl, application_name: 'stockroom resync' }, {
      parse: (text: string) => text, // raw text: validated below, never JSON-parsed blindly
      retryLimit: Infinity,
      retryTimeout: Infinity,
      retryInterval: (attempt: number) => Math.random() * Math.min(10_000, 250 * 2 ** Math.min(attempt, 8)),
      paranoidChecking: 10_000,
    });
    this.subscriber.events.on('error', (error: Error) => this.log.error({ err: error }, 'resync listener error'));
    this.subscriber.events.on('reconnect', (attempt: number) => {
      this.reconnecting = true;
      if (attempt === 1 || attempt % 10 === 0) this.log.warn({ attempt }, 'resync listener reconnecting');
    });
    this.subscriber.events.on('connected', () => {
      if (!this.reconnecting) return;
      this.reconnecting = false;
      this.log.info('resync listener reconnected; resynchronising what may have been missed');
      void Promise.resolve(this.options.onReconnected()).catch((error: unknown) => this.log.error({ err: error }, 'resync after reconnect failed'));
    });
    this.subscriber.notifications.on(RESYNC_CHANNEL, (payload: unknown) => this.request(payload));
  }

  async start(): Promise<void> {
    await this.subscriber.connect();
    await this.subscriber.listenTo(RESYNC_CHANNEL);
  }

  async stop(): Promise<void> {
    await this.subscriber.close().catch(() => {});
    await this.draining;
  }

  private request(payload: unknown): void {
    const parsed = skuPayload.safeParse(payload);
    if (!parsed.success) {
      this.options.metrics.resyncs.inc({ outcome: 'rejected' });
      const shown = typeof payload === 'string' ? payload.slice(0, 80) : typeof payload;
      this.log.warn({ payload: shown, length: typeof payload === 'string' ? payload.length : null }, 'ignored a resync request that is not a sku');
      return;
    }
    if (this.queue.size >= 10_000) {
      this.options.metrics.resyncs.inc({ outcome: 'dropped' });
      return; // a flood: the periodic sync repairs anything real
    }
    this.queue.add(parsed.data); // a sku asked for twice before it is done is resynced once
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
    });
  }

  private async drain(): Promise<void> {
    for (const sku of this.queue) {
      this.queue.delete(sku);
      try {
        const outcome = await resyncSku(this.options.pool, this.options.writer, sku);
        this.options.metrics.resyncs.inc({ outcome });
        this.log.info({ sku, outcome }, 'resynced sku');
      } catch (error) {
        this.options.metrics.resyncs.inc({ outcome: 'failed' });
        this.log.error({ err: error, sku }, 'resync failed');
      }
    }
  }
}

/**
 * Rewrites one sku's keys from Postgres. Version-guarded like every write, so
 * a change the stream applies meanwhile is never undone; an equal version
 * rewrites the keys, which is what repairs a key someone edited by hand.
 */
export async function resyncSku(pool: pg.Pool, writer: CacheWriter, sku: string): Promise<'rewritten' | 'unknown'> {
  const rows = (await loadSkus(pool, [sku])).get(sku) ?? [];
  if (rows.length > 0) {
    // And the kits it is a component of, recomputed from its rows as now written.
    await writeWithKits(pool, writer, rows, await loadKitDefinitions(pool, { components: [sku] }));
    return 'rewritten';
  }
  // A kit: its components' rows, then the kit from them.
  const [kit] = await loadKitDefinitions(pool, { kits: [sku] });
  if (!kit) return 'unknown';
  const components = await loadSkus(pool, kit.components.map((c) => c.sku));
  await writeWithKits(pool, writer, [...components.values()].flat(), [kit]);
  return 'rewritten';
}
