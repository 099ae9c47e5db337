// Readiness of a role that runs in another process: the slot consumer is
// healthy when the slot exists, is streaming to someone, and is not far behind.
import type pg from 'pg';

const MAX_LAG_BYTES = 64 * 1024 * 1024;

export async function slotConsumerCheck(pool: pg.Pool, slot: string): Promise<{ ok: boolean; detail: unknown }> {
  const { rows: [row] } = await pool.query<{ active: boolean; lag: string | null }>(
    'select active, (pg_current_wal_lsn() - confirmed_flush_lsn)::text as lag from pg_replication_slots where slot_name = $1', [slot]);
  if (!row) return { ok: false, detail: `no replication slot ${slot}` };
  const lag = row.lag === null ? null : Number(row.lag);
  return { ok: row.active && lag !== null && lag < MAX_LAG_BYTES, detail: { slot, active: row.active, lagBytes: lag } };
}
