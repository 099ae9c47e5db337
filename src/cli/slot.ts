// `stockroom slot`: the replication slot the cache consumer reads, for people
// and for monitoring (exit status says what is wrong), with the last loss of
// the slot (dropped or invalidated) and the events the consumer backfilled for
// its gap from the ledger.
import type { Command } from 'commander';
import pg from 'pg';
import type { SlotLossRecord } from '../cache/writer.ts';
import { checkDatabase } from '../db/check.ts';
import { openCliCache, withCliContext } from './context.ts';
import { bytes } from './format.ts';
import { printFields, printJson } from './output.ts';

/** A status as a person reads it: only ok looks fine. */
const STATUS_WORDS = { ok: 'ok', lagging: 'LAGGING', missing: 'MISSING', lost: 'LOST (invalidated)', idle: 'IDLE: no consumer' } as const;

/** Exit status by slot status: 0 only when someone consumes the slot and keeps up. */
export const SLOT_EXIT = { ok: 0, lagging: 1, missing: 2, lost: 3, idle: 4 } as const;

interface SlotRow {
  active: boolean; active_pid: number | null; confirmed_flush_lsn: string | null; restart_lsn: string | null;
  wal_status: string | null; safe_wal_size: string | null; lag_bytes: string | null; retained_bytes: string | null;
  application_name: string | null; client_addr: string | null; reply_time: Date | null;
}

export function registerSlot(program: Command): void {
  program
    .command('slot')
    .description('replication slot status: its consumer, position, lag, retained WAL; exits 1 when lagging, 2 when missing, 3 when lost, 4 when nothing consumes it')
    .option('--max-lag-bytes <n>', 'lag above which to exit 1', (v) => Number(v), 64 * 1024 * 1024)
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  stockroom slot\n  stockroom slot --json --max-lag-bytes 10000000 || alert "stockroom cache is behind"')
    .action(async (options: { maxLagBytes: number; json?: boolean }) => {
      await withCliContext({ redis: true }, async (context) => {
        const { config, services } = context;
        await checkDatabase(services.databaseUrl, { logicalWal: true });
        const client = new pg.Client({ connectionString: services.databaseUrl, application_name: 'stockroom slot' });
        await client.connect();
        let row: SlotRow | undefined;
        try {
          ({ rows: [row] } = await client.query<SlotRow>(`
            select s.active, s.active_pid, s.confirmed_flush_lsn::text, s.restart_lsn::text, s.wal_status, s.safe_wal_size::text,
                   (pg_current_wal_lsn() - s.confirmed_flush_lsn)::text as lag_bytes,
                   (pg_current_wal_lsn() - s.restart_lsn)::text as retained_bytes,
                   r.application_name, r.client_addr::text, r.reply_time
            from pg_replication_slots s left join pg_stat_replication r on r.pid = s.active_pid
            where s.slot_name = $1`, [config.slot]));
        } finally {
          await client.end();
        }
        const cache = openCliCache(context);
        const applied = await cache.redis.get(cache.keys.position).catch(() => null);
        const lastLoss = await cache.writer.readSlotLoss().catch(() => undefined);
        await cache.close();
        const lag = row?.lag_bytes === null || row === undefined ? null : Number(row.lag_bytes);
        const status = !row ? 'missing' : row.wal_status === 'lost' || row.confirmed_flush_lsn === null ? 'lost'
          : !row.active ? 'idle' : lag !== null && lag > options.maxLagBytes ? 'lagging' : 'ok';
        const report = {
          slot: config.slot, status, active: row?.active ?? false, activePid: row?.active_pid ?? null,
          consumer: row?.active ? { pid: row.active_pid, application: row.application_name, address: row.client_addr ?? 'local socket', lastReplyAt: row.reply_time?.toISOString() ?? null } : null,
          confirmedFlushLsn: row?.confirmed_flush_lsn ?? null, restartLsn: row?.restart_lsn ?? null,
          lagBytes: lag, retainedWalBytes: row?.retained_bytes == null ? null : Number(row.retained_bytes),
          walStatus: row?.wal_status ?? null, safeWalSizeBytes: row?.safe_wal_size == null ? null : Number(row.safe_wal_size),
          redisAppliedLsn: applied,
          lastSlotLoss: lastLoss ?? null,
        };
        if (options.json) {
          printJson(report);
        } else {
          const consumer = report.consumer;
          printFields([
            ['slot', report.slot],
            ['status', STATUS_WORDS[status as keyof typeof STATUS_WORDS]],
            ['consumer', consumer ? `pid ${consumer.pid}, ${consumer.application || 'no application name'} (${consumer.address})` : 'none: nothing streams from this slot'],
            ['last reply', consumer?.lastReplyAt ?? ''],
            ['confirmed', report.confirmedFlushLsn ?? ''],
            ['lag', bytes(report.lagBytes)],
            ['retained WAL', `${bytes(report.retainedWalBytes)}${report.safeWalSizeBytes === null ? '' : ` (${bytes(report.safeWalSizeBytes)} more before PostgreSQL invalidates the slot)`}`],
            ['wal_status', report.walStatus ?? ''],
            ['applied in Redis', report.redisAppliedLsn ?? ''],
          ]);
          if (lastLoss) process.stdout.write(`${describeLoss(lastLoss)}\n`);
          if (status === 'missing') process.stderr.write(`stockroom: no replication slot ${config.slot}: start the listener (stockroom start --listener), which creates it and builds the cache\n`);
          if (status === 'lost') process.stderr.write(`stockroom: replication slot ${config.slot} was invalidated by PostgreSQL: restart the listener, which recreates it, rebuilds the cache and publishes the events of the gap from the ledger\n`);
          if (status === 'idle') process.stderr.write(`stockroom: nothing consumes replication slot ${config.slot}: the cache and the events fall behind and PostgreSQL keeps its WAL (${bytes(report.retainedWalBytes)} so far); start the listener (stockroom start --listener)\n`);
          if (status === 'lagging') process.stderr.write(`stockroom: the consumer is ${bytes(lag)} behind (over ${bytes(options.maxLagBytes)}): is the listener running? see stockroom start --listener and its logs\n`);
        }
        process.exitCode = SLOT_EXIT[status as keyof typeof SLOT_EXIT];
      });
    });
}

/** One line on the last slot loss, for people. */
function describeLoss(loss: SlotLossRecord): string {
  const what = `last slot loss: ${loss.reason} (found ${loss.detectedAt}${loss.lostAfter ? `, cache at ${loss.lostAfter}` : ''})`;
  const events = `${loss.backfilledMovements} movements of the gap got their events from the ledger (${loss.backfilledEvents} events)`;
  if (loss.state === 'recovering') return `${what}: recovery under way, ${events} so far`;
  const window = loss.windowFrom ? `movements since ${loss.windowFrom} checked` : `not backfilled: ${loss.windowBasis}`;
  return `${what}: recovered ${loss.finishedAt}, streaming resumed at ${loss.resumedAt}; ${events}; ${window}`;
}
