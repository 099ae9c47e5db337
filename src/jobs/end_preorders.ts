// end_preorders, every minute: stock rows whose preorder date has passed
// become DENY, so the catalog cache (which sees changes, not the clock)
// stops showing them as preorder. reserve() refuses at the date on its own.
import type { Task } from 'graphile-worker';

export const END_PREORDERS = 'end_preorders';

export function endPreordersTask(): Task {
  return async (_payload, helpers) => {
    const { rows } = await helpers.query<{ ended: number }>('select inventory.end_preorders() as ended');
    const ended = rows[0]?.ended ?? 0;
    if (ended > 0) helpers.logger.info(`end_preorders: ${ended} stock row(s) ended their preorder`, { ended });
  };
}
