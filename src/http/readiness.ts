// Readiness of a role that runs in another process: the slot consumer is
// healthy when the slot exists, is streaming to someone, and is not far behind.
import pg from 'pg';

const MAX_LAG_BYTES = 64 * 1024 * 1024;

export async function slotConsumerCheck(databaseUrl: string, slot: string): Promise<{ ok: boolean; detail: unknown }> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 2000, application_name: 'stockroom ready' });
  client.on('error', () => {});
  await client.connect();
  try {
    const { rows: [row] } = await client.query<{ active: boolean; lag: string | null }>(
      'select active, (pg_current_wal_lsn() - confirmed_flush_lsn)::text as lag from pg_replication_slots where slot_name = $1', [slot]);
    if (!row) return { ok: false, detail: `no replication slot ${slot}` };
    const lag = row.lag === null ? null : Number(row.lag);
    return { ok: row.active && lag !== null && lag < MAX_LAG_BYTES, detail: { slot, active: row.active, lagBytes: lag } };
  } finally {
    await client.end().catch(() => {});
  }
}
