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
import { printJson, printTable } from './output.ts';

export const SLOT_EXIT = { ok: 0, lagging: 1, missing: 2, lost: 3 } as const;

interface SlotRow {
  active: boolean; active_pid: number | null; confirmed_flush_lsn: string | null; restart_lsn: string | null;
  wal_status: string | null; safe_wal_size: string | null; lag_bytes: string | null; retained_bytes: string | null;
}

export function registerSlot(program: Command): void {
  program
    .command('slot')
    .description('replication slot status: position, lag, retained WAL; exits 1 when lagging, 2 when missing, 3 when lost')
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
            select active, active_pid, confirmed_flush_lsn::text, restart_lsn::text, wal_status, safe_wal_size::text,
                   (pg_current_wal_lsn() - confirmed_flush_lsn)::text as lag_bytes,
                   (pg_current_wal_lsn() - restart_lsn)::text as retained_bytes
            from pg_replication_slots where slot_name = $1`, [config.slot]));
        } finally {
          await client.end();
        }
        const cache = openCliCache(context);
        const applied = await cache.redis.get(cache.keys.position).catch(() => null);
        const lastLoss = await cache.writer.readSlotLoss().catch(() => undefined);
        await cache.close();
        const lag = row?.lag_bytes === null || row === undefined ? null : Number(row.lag_bytes);
        const status = !row ? 'missing' : row.wal_status === 'lost' || row.confirmed_flush_lsn === null ? 'lost'
          : lag !== null && lag > options.maxLagBytes ? 'lagging' : 'ok';
        const report = {
          slot: config.slot, status, active: row?.active ?? false, activePid: row?.active_pid ?? null,
          confirmedFlushLsn: row?.confirmed_flush_lsn ?? null, restartLsn: row?.restart_lsn ?? null,
          lagBytes: lag, retainedWalBytes: row?.retained_bytes == null ? null : Number(row.retained_bytes),
          walStatus: row?.wal_status ?? null, safeWalSizeBytes: row?.safe_wal_size == null ? null : Number(row.safe_wal_size),
          redisAppliedLsn: applied,
          lastSlotLoss: lastLoss ?? null,
        };
        if (options.json) {
          printJson(report);
        } else {
          printTable(['slot', 'status', 'active pid', 'confirmed', 'lag', 'retained WAL', 'wal_status', 'safe_wal_size', 'applied in Redis'], [[
            report.slot, report.status, report.activePid ?? '', report.confirmedFlushLsn ?? '', bytes(report.lagBytes),
            bytes(report.retainedWalBytes), report.walStatus ?? '', report.safeWalSizeBytes === null ? 'unlimited' : bytes(report.safeWalSizeBytes),
            report.redisAppliedLsn ?? '',
          ]]);
          if (lastLoss) process.stdout.write(`${describeLoss(lastLoss)}\n`);
          if (status === 'missing') process.stderr.write(`stockroom: no replication slot ${config.slot}: start the listener (stockroom start --listener), which creates it and builds the cache\n`);
          if (status === 'lost') process.stderr.write(`stockroom: replication slot ${config.slot} was invalidated by PostgreSQL: restart the listener, which recreates it, rebuilds the cache and publishes the events of the gap from the ledger\n`);
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
