// `stockroom slot`: the replication slot the cache consumer reads (or every
// partition's, when the listener runs partitioned), for people
// and for monitoring (exit status says what is wrong), with the last loss of
// the slot (dropped or invalidated) and the events the consumer backfilled for
// its gap from the ledger.
import type { Command } from 'commander';
import pg from 'pg';
import type { SlotLossRecord } from '../cache/writer.ts';
import { checkDatabase } from '../db/check.ts';
import { cacheKeysFor } from '../cache/redis.ts';
import { CacheWriter } from '../cache/writer.ts';
import { partitionNames, type Partition } from '../partition.ts';
import { openCliCache, withCliContext } from './context.ts';
import { bytes } from './format.ts';
import { printFields, printJson, printTable } from './output.ts';

/** A status as a person reads it: only ok looks fine. */
const STATUS_WORDS = { ok: 'ok', lagging: 'LAGGING', missing: 'MISSING', lost: 'LOST (invalidated)', idle: 'IDLE: no consumer' } as const;

/** Exit status by slot status: 0 only when someone consumes the slot and keeps up. */
export const SLOT_EXIT = { ok: 0, lagging: 1, missing: 2, lost: 3, idle: 4 } as const;

interface SlotRow {
  active: boolean; active_pid: number | null; confirmed_flush_lsn: string | null; restart_lsn: string | null;
  wal_status: string | null; safe_wal_size: string | null; lag_bytes: string | null; retained_bytes: string | null;
  application_name: string | null; client_addr: string | null; reply_time: Date | null;
}

/** What `stockroom slot` says about one slot. */
interface SlotReport {
  slot: string;
  /** "i/N" for a partition's slot (stockroom start --listener --partition i/N). */
  partition: string | null;
  status: keyof typeof SLOT_EXIT;
  active: boolean;
  activePid: number | null;
  consumer: { pid: number | null; application: string | null; address: string; lastReplyAt: string | null } | null;
  confirmedFlushLsn: string | null;
  restartLsn: string | null;
  lagBytes: number | null;
  retainedWalBytes: number | null;
  walStatus: string | null;
  safeWalSizeBytes: number | null;
  redisAppliedLsn: string | null;
  lastSlotLoss: SlotLossRecord | null;
}

/** Worst first: the status the command exits with when slots differ. */
const SEVERITY: Array<keyof typeof SLOT_EXIT> = ['lost', 'missing', 'idle', 'lagging', 'ok'];

export function registerSlot(program: Command): void {
  program
    .command('slot')
    .description('replication slot status (every partition\'s, when the listener is partitioned): its consumer, position, lag, retained WAL; exits 1 when lagging, 2 when missing, 3 when lost, 4 when nothing consumes it')
    .option('--max-lag-bytes <n>', 'lag above which to exit 1', (v) => Number(v), 64 * 1024 * 1024)
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  stockroom slot\n  stockroom slot --json --max-lag-bytes 10000000 || alert "stockroom cache is behind"')
    .action(async (options: { maxLagBytes: number; json?: boolean }) => {
      await withCliContext({ redis: true }, async (context) => {
        const { config, services } = context;
        await checkDatabase(services.databaseUrl, { logicalWal: true });
        const client = new pg.Client({ connectionString: services.databaseUrl, application_name: 'stockroom slot' });
        await client.connect();
        let rows: Array<SlotRow & { slot_name: string }>;
        try {
          // The slot, and the slots of its partitions (<slot>_p<i>of<N>).
          ({ rows } = await client.query<SlotRow & { slot_name: string }>(`
            select s.slot_name, s.active, s.active_pid, s.confirmed_flush_lsn::text, s.restart_lsn::text, s.wal_status, s.safe_wal_size::text,
                   (pg_current_wal_lsn() - s.confirmed_flush_lsn)::text as lag_bytes,
                   (pg_current_wal_lsn() - s.restart_lsn)::text as retained_bytes,
                   r.application_name, r.client_addr::text, r.reply_time
            from pg_replication_slots s left join pg_stat_replication r on r.pid = s.active_pid
            where s.slot_name = $1 or s.slot_name ~ ('^' || $1 || '_p[0-9]+of[0-9]+$')
            order by s.slot_name`, [config.slot]));
        } finally {
          await client.end();
        }
        const partitioned = rows.filter((r) => r.slot_name !== config.slot);
        // Without partitions (or with the plain slot still there), the plain slot is reported, missing or not.
        const shown: Array<{ name: string; partition: Partition | undefined; row: SlotRow | undefined }> = [
          ...(partitioned.length === 0 || rows.some((r) => r.slot_name === config.slot)
            ? [{ name: config.slot, partition: undefined, row: rows.find((r) => r.slot_name === config.slot) }] : []),
          ...partitioned.map((row) => {
            const [, index, count] = /_p(\d+)of(\d+)$/.exec(row.slot_name)!;
            return { name: row.slot_name, partition: { index: Number(index), count: Number(count) }, row };
          }).sort((a, b) => a.partition.count - b.partition.count || a.partition.index - b.partition.index),
        ];
        const cache = openCliCache(context);
        const reports: SlotReport[] = [];
        try {
          for (const { name, partition, row } of shown) {
            const stream = partitionNames(config, partition).stream;
            const keys = cacheKeysFor(cache.redis, config.cachePrefix, stream, partition);
            const writer = new CacheWriter(cache.redis, keys, { name: stream, maxLength: config.streamMaxLength });
            const applied = await cache.redis.get(keys.position).catch(() => null);
            const lastLoss = await writer.readSlotLoss().catch(() => undefined);
            reports.push(slotReport(name, partition, row, applied, lastLoss, options.maxLagBytes));
          }
        } finally {
          await cache.close();
        }
        const status = SEVERITY.find((s) => reports.some((r) => r.status === s))!;
        if (options.json) {
          printJson(reports.length === 1 && !reports[0]!.partition ? reports[0] : { status, slots: reports });
        } else if (reports.length === 1 && !reports[0]!.partition) {
          printOne(reports[0]!);
        } else {
          printTable(['partition', 'slot', 'status', 'consumer', 'lag', 'retained WAL', 'applied in Redis'], reports.map((r) => [
            r.partition ?? '', r.slot, STATUS_WORDS[r.status], r.consumer ? `pid ${r.consumer.pid} (${r.consumer.address})` : 'none',
            bytes(r.lagBytes), bytes(r.retainedWalBytes), r.redisAppliedLsn ?? '',
          ]));
          for (const r of reports) if (r.lastSlotLoss) process.stdout.write(`${r.slot}: ${describeLoss(r.lastSlotLoss)}\n`);
        }
        if (!options.json) for (const r of reports) advise(r, options.maxLagBytes);
        process.exitCode = SLOT_EXIT[status];
      });
    });
}

function slotReport(slot: string, partition: Partition | undefined, row: SlotRow | undefined, applied: string | null,
  lastLoss: SlotLossRecord | undefined, maxLagBytes: number): SlotReport {
  const lag = row?.lag_bytes === null || row === undefined ? null : Number(row.lag_bytes);
  const status = !row ? 'missing' : row.wal_status === 'lost' || row.confirmed_flush_lsn === null ? 'lost'
    : !row.active ? 'idle' : lag !== null && lag > maxLagBytes ? 'lagging' : 'ok';
  return {
    slot, partition: partition ? `${partition.index}/${partition.count}` : null, status, active: row?.active ?? false, activePid: row?.active_pid ?? null,
    consumer: row?.active ? { pid: row.active_pid, application: row.application_name, address: row.client_addr ?? 'local socket', lastReplyAt: row.reply_time?.toISOString() ?? null } : null,
    confirmedFlushLsn: row?.confirmed_flush_lsn ?? null, restartLsn: row?.restart_lsn ?? null,
    lagBytes: lag, retainedWalBytes: row?.retained_bytes == null ? null : Number(row.retained_bytes),
    walStatus: row?.wal_status ?? null, safeWalSizeBytes: row?.safe_wal_size == null ? null : Number(row.safe_wal_size),
    redisAppliedLsn: applied,
    lastSlotLoss: lastLoss ?? null,
  };
}

function printOne(report: SlotReport): void {
  const consumer = report.consumer;
  printFields([
    ['slot', report.slot],
    ['status', STATUS_WORDS[report.status]],
    ['consumer', consumer ? `pid ${consumer.pid}, ${consumer.application || 'no application name'} (${consumer.address})` : 'none: nothing streams from this slot'],
    ['last reply', consumer?.lastReplyAt ?? ''],
    ['confirmed', report.confirmedFlushLsn ?? ''],
    ['lag', bytes(report.lagBytes)],
    ['retained WAL', `${bytes(report.retainedWalBytes)}${report.safeWalSizeBytes === null ? '' : ` (${bytes(report.safeWalSizeBytes)} more before PostgreSQL invalidates the slot)`}`],
    ['wal_status', report.walStatus ?? ''],
    ['applied in Redis', report.redisAppliedLsn ?? ''],
  ]);
  if (report.lastSlotLoss) process.stdout.write(`${describeLoss(report.lastSlotLoss)}\n`);
}

/** What to do about a slot that is not ok, on stderr. */
function advise(report: SlotReport, maxLagBytes: number): void {
  const start = `stockroom start --listener${report.partition ? ` --partition ${report.partition}` : ''}`;
  const { slot } = report;
  if (report.status === 'missing') process.stderr.write(`stockroom: no replication slot ${slot}: start the listener (${start}), which creates it and builds the cache\n`);
  if (report.status === 'lost') process.stderr.write(`stockroom: replication slot ${slot} was invalidated by PostgreSQL: restart the listener, which recreates it, rebuilds the cache and publishes the events of the gap from the ledger\n`);
  if (report.status === 'idle') process.stderr.write(`stockroom: nothing consumes replication slot ${slot}: the cache and the events fall behind and PostgreSQL keeps its WAL (${bytes(report.retainedWalBytes)} so far); start the listener (${start})\n`);
  if (report.status === 'lagging') process.stderr.write(`stockroom: the consumer${report.partition ? ` of ${slot}` : ''} is ${bytes(report.lagBytes)} behind (over ${bytes(maxLagBytes)}): is the listener running? see ${start} and its logs\n`);
}

/** One line on the last slot loss, for people. */
function describeLoss(loss: SlotLossRecord): string {
  const what = `last slot loss: ${loss.reason} (found ${loss.detectedAt}${loss.lostAfter ? `, cache at ${loss.lostAfter}` : ''})`;
  const events = `${loss.backfilledMovements} movements of the gap got their events from the ledger (${loss.backfilledEvents} events)`;
  if (loss.state === 'recovering') return `${what}: recovery under way, ${events} so far`;
  const window = loss.windowFrom ? `movements since ${loss.windowFrom} checked` : `not backfilled: ${loss.windowBasis}`;
  return `${what}: recovered ${loss.finishedAt}, streaming resumed at ${loss.resumedAt}; ${events}; ${window}`;
}
