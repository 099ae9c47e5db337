// The ledger invariants every test ends with:
// - for each stock row, Σ movement deltas = on_hand and reserved, and each
//   movement's *_after values follow from the previous ones in id order;
// - 0 ≤ reserved ≤ on_hand;
// - reserved = Σ qty of HELD reservation lines;
// - backordered = Σ backordered_delta of the ledger = Σ backordered of the
//   lines of HELD and CONFIRMED reservations (an ended one waits for nothing),
//   and each backordered_after recorded follows the ledger;
// - and (reservationLedgerViolations; verify_counters' tests, which damage
//   reservations on purpose, leave it out) each reservation line agrees with
//   the reservation's own movements on its row.
import type { ExecutionContext } from 'ava';
import type pg from 'pg';

export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export async function invariantViolations(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ problem: string }>(`
    with ledger as (
      select product_id, warehouse_id, sum(on_hand_delta) as on_hand, sum(reserved_delta) as reserved, sum(backordered_delta) as backordered
      from inventory.movements group by 1, 2),
    held as (
      select l.product_id, l.warehouse_id, sum(l.qty) filter (where r.status = 'HELD') as qty, sum(l.backordered) as backordered
      from inventory.reservation_lines l join inventory.reservations r on r.id = l.reservation_id
      where r.status in ('HELD', 'CONFIRMED') group by 1, 2),
    chain as (
      select product_id, warehouse_id, id, on_hand_after, reserved_after,
             sum(on_hand_delta) over w as on_hand_running, sum(reserved_delta) over w as reserved_running,
             backordered_after, sum(backordered_delta) over w as backordered_running
      from inventory.movements
      window w as (partition by product_id, warehouse_id order by id))
    select format('%s/%s: on_hand %s but ledger sums to %s', s.product_id, s.warehouse_id, s.on_hand, coalesce(l.on_hand, 0)) as problem
    from inventory.stock_levels s left join ledger l using (product_id, warehouse_id)
    where s.on_hand <> coalesce(l.on_hand, 0)
    union all
    select format('%s/%s: reserved %s but ledger sums to %s', s.product_id, s.warehouse_id, s.reserved, coalesce(l.reserved, 0))
    from inventory.stock_levels s left join ledger l using (product_id, warehouse_id)
    where s.reserved <> coalesce(l.reserved, 0)
    union all
    select format('%s/%s: reserved %s outside 0..on_hand %s', product_id, warehouse_id, reserved, on_hand)
    from inventory.stock_levels where reserved < 0 or reserved > on_hand
    union all
    select format('%s/%s: reserved %s but HELD lines hold %s', s.product_id, s.warehouse_id, s.reserved, coalesce(h.qty, 0))
    from inventory.stock_levels s left join held h using (product_id, warehouse_id)
    where s.reserved <> coalesce(h.qty, 0)
    union all
    select format('movement %s: after values (%s, %s) do not follow the ledger (%s, %s)',
                  id, on_hand_after, reserved_after, on_hand_running, reserved_running)
    from chain where on_hand_after <> on_hand_running or reserved_after <> reserved_running
    union all
    select format('%s/%s: backordered %s but ledger sums to %s', s.product_id, s.warehouse_id, s.backordered, coalesce(l.backordered, 0))
    from inventory.stock_levels s left join ledger l using (product_id, warehouse_id)
    where s.backordered <> coalesce(l.backordered, 0)
    union all
    select format('%s/%s: backordered %s but waiting lines wait for %s', s.product_id, s.warehouse_id, s.backordered, coalesce(h.backordered, 0))
    from inventory.stock_levels s left join held h using (product_id, warehouse_id)
    where s.backordered <> coalesce(h.backordered, 0)
    union all
    select format('reservation %s is %s but its lines still wait for %s', r.id, r.status, sum(l.backordered))
    from inventory.reservations r join inventory.reservation_lines l on l.reservation_id = r.id
    where r.status in ('RELEASED', 'EXPIRED') group by r.id, r.status having sum(l.backordered) > 0
    union all
    select format('movement %s: backordered_after %s does not follow the ledger (%s)', id, backordered_after, backordered_running)
    from chain where backordered_after <> backordered_running
    limit 20`);
  return rows.map((r) => r.problem);
}

/**
 * Each reservation's lines against its movements, per stock row: what its movements
 * reserved and gave back sums to the line's qty while it is HELD and to 0 once it has
 * ended; the units its CONFIRM movements took are the line's `confirmed` (units
 * confirmed part by part, confirm_lines), plus its qty when confirm() ended it (a
 * settled line keeps its qty as history). Every movement of a reservation has its line.
 */
export async function reservationLedgerViolations(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ problem: string }>(`
    with moved as (
      select reservation_id, product_id, warehouse_id, sum(reserved_delta) as reserved, sum(backordered_delta) as backordered,
             -- (a FILL of a CONFIRMED reservation's waiting units ships them: on_hand drops as for a confirm)
             coalesce(-sum(on_hand_delta) filter (where kind in ('CONFIRM', 'FILL')), 0) as confirmed
      from inventory.movements where reservation_id is not null group by 1, 2, 3),
    line as (
      select l.reservation_id, l.product_id, l.warehouse_id, l.qty, l.confirmed, l.backordered, r.status
      from inventory.reservation_lines l join inventory.reservations r on r.id = l.reservation_id)
    select format('reservation %s, row %s/%s (%s): line qty %s confirmed %s, but its movements reserved %s and confirmed %s',
                  coalesce(l.reservation_id, m.reservation_id), coalesce(l.product_id, m.product_id), coalesce(l.warehouse_id, m.warehouse_id),
                  coalesce(l.status, 'no line'), l.qty, l.confirmed, coalesce(m.reserved, 0), coalesce(m.confirmed, 0)) as problem
    from line l
    full join moved m on m.reservation_id = l.reservation_id and m.product_id = l.product_id and m.warehouse_id = l.warehouse_id
    where l.reservation_id is null
       or coalesce(m.reserved, 0) <> case when l.status = 'HELD' then l.qty else 0 end
       or coalesce(m.confirmed, 0) <> l.confirmed + case when l.status = 'CONFIRMED' then l.qty else 0 end
       or coalesce(m.backordered, 0) <> l.backordered
    limit 20`);
  return rows.map((r) => r.problem);
}

export async function assertInvariants(t: ExecutionContext, db: Queryable, options: { reservationLedger?: boolean } = {}): Promise<void> {
  t.deepEqual(await invariantViolations(db), [], 'ledger invariants hold');
  if (options.reservationLedger) t.deepEqual(await reservationLedgerViolations(db), [], 'reservation lines agree with their movements');
}
