// expire_reservation: scheduled in the reserving transaction for the
// reservation's expires_at (job key expire:<id>; extend() moves it; confirm
// and release delete it). It expires every due reservation, not only its own:
// when many come due at once, the first job clears them in batches and the
// jobs of the others are deleted with them (see _settle.sql).
import type { Task } from 'graphile-worker';
import { z } from 'zod';
import type { JobMetrics } from './metrics.ts';

export const EXPIRE_RESERVATION = 'expire_reservation';

export const expireReservationPayload = z.object({ reservation_id: z.uuid() });
export type ExpireReservationPayload = z.infer<typeof expireReservationPayload>;

/** Calls inventory.expire_due until nothing is due; returns how many it expired. */
export async function expireAllDue(query: (text: string) => Promise<{ rows: Array<{ n: number }> }>, batch = 1000): Promise<number> {
  let total = 0;
  for (;;) {
    const { rows } = await query(`select inventory.expire_due(${batch}) as n`);
    const n = rows[0]?.n ?? 0;
    total += n;
    if (n < batch) return total;
  }
}

export function expireReservationTask(metrics: JobMetrics): Task {
  return async (payload, helpers) => {
    const { reservation_id: reservationId } = expireReservationPayload.parse(payload);
    const expired = await expireAllDue((text) => helpers.query(text));
    metrics.ttlExpired.inc(expired);
    if (expired) helpers.logger.info(`expired ${expired} reservation(s)`, { reservationId, expired });
  };
}
