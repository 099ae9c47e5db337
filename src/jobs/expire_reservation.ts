// expire_reservation: scheduled in the reserving transaction for the
// reservation's expires_at (job key expire:<id>; extend() moves it; confirm
// and release delete it). It expires every due reservation, not only its own:
// when many come due at once, the first job clears them in batches and the
// jobs of the others are deleted with them (see _settle.sql).
import type { Task } from 'graphile-worker';
import type pg from 'pg';
import { z } from 'zod';
import type { JobMetrics } from './metrics.ts';

export const EXPIRE_RESERVATION = 'expire_reservation';

export const expireReservationPayload = z.object({ reservation_id: z.uuid() });
export type ExpireReservationPayload = z.infer<typeof expireReservationPayload>;

/** Any constant shared by every Stockroom worker. */
const SWEEP_LOCK = 7_466_001_202_412;

/**
 * Calls inventory.expire_due until nothing is due; returns how many it
 * expired. Sweeps take turns on an advisory lock: when many reservations come
 * due together, many jobs start together, and sweeping the same due set side
 * by side only makes them wait on each other's row locks. A job that waited
 * then sweeps what is still due (usually nothing), so none returns while its
 * own reservation is due.
 */
export async function expireAllDue(client: Pick<pg.PoolClient, 'query'>, batch = 1000): Promise<number> {
  await client.query('select pg_advisory_lock($1)', [SWEEP_LOCK]);
  try {
    let total = 0;
    for (;;) {
      const { rows } = await client.query<{ n: number }>('select inventory.expire_due($1) as n', [batch]);
      const n = rows[0]?.n ?? 0;
      total += n;
      if (n < batch) return total;
    }
  } finally {
    await client.query('select pg_advisory_unlock($1)', [SWEEP_LOCK]);
  }
}

export function expireReservationTask(metrics: JobMetrics): Task {
  return async (payload, helpers) => {
    const { reservation_id: reservationId } = expireReservationPayload.parse(payload);
    const expired = await helpers.withPgClient((client) => expireAllDue(client));
    metrics.ttlExpired.inc(expired);
    if (expired) helpers.logger.info(`expired ${expired} reservation(s)`, { reservationId, expired });
  };
}
