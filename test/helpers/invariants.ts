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
//   the reservation's own movements on its row;
// - and (transitViolations) every shipment in transit agrees with its
//   movements, and in_transit() with the ledger per route.
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

/**
 * Transfers in transit against the ledger. Per shipment (its movements share
 * its reference): qty_shipped = what its TRANSIT_OUT took from the source's
 * on_hand = what it put into transit; qty_received = what its TRANSIT_IN
 * added to the destination's on_hand = what they took out of transit;
 * qty_lost = what its TRANSIT_LOST took out of transit, with on_hand_delta 0;
 * qty_in_transit = Σ transit_delta. Each movement is on the shipment's row
 * (OUT and LOST on the source, IN on the destination); no other movement
 * touches transit. Per route, in_transit() = Σ transit_delta of the ledger.
 */
export async function transitViolations(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ problem: string }>(`
    with transit as (
      select m.*, s.id as shipment_id,
             s.product_id = m.product_id
               and m.warehouse_id = case m.kind when 'TRANSIT_IN' then s.to_warehouse_id else s.from_warehouse_id end as on_its_row
      from inventory.movements m left join inventory.transit_shipments s on s.reference = m.reference
      where m.kind in ('TRANSIT_OUT', 'TRANSIT_IN', 'TRANSIT_LOST')),
    moved as (
      select shipment_id,
             coalesce(-sum(on_hand_delta) filter (where kind = 'TRANSIT_OUT'), 0) as shipped_on_hand,
             coalesce(sum(transit_delta) filter (where kind = 'TRANSIT_OUT'), 0) as shipped_transit,
             coalesce(sum(on_hand_delta) filter (where kind = 'TRANSIT_IN'), 0) as received_on_hand,
             coalesce(-sum(transit_delta) filter (where kind = 'TRANSIT_IN'), 0) as received_transit,
             coalesce(-sum(transit_delta) filter (where kind = 'TRANSIT_LOST'), 0) as lost,
             coalesce(sum(on_hand_delta) filter (where kind = 'TRANSIT_LOST'), 0) as lost_on_hand,
             sum(transit_delta) as in_transit
      from transit where shipment_id is not null group by 1),
    ledger_routes as (
      select p.sku, f.code as from_warehouse, t.code as to_warehouse, sum(m.transit_delta) as qty
      from transit m
      join inventory.transit_shipments s on s.id = m.shipment_id
      join inventory.products p on p.id = s.product_id
      join inventory.warehouses f on f.id = s.from_warehouse_id
      join inventory.warehouses t on t.id = s.to_warehouse_id
      group by 1, 2, 3 having sum(m.transit_delta) <> 0)
    select format('movement %s (%s): reference %s names no shipment', id, kind, reference) as problem
    from transit where shipment_id is null
    union all
    select format('movement %s (%s) of shipment %s is not on the shipment''s stock row', id, kind, shipment_id)
    from transit where shipment_id is not null and not on_its_row
    union all
    select format('movement %s (%s): transit_delta %s on a movement that is not a transit', id, kind, transit_delta)
    from inventory.movements where transit_delta <> 0 and kind not in ('TRANSIT_OUT', 'TRANSIT_IN', 'TRANSIT_LOST')
    union all
    select format('shipment %s: shipped %s received %s lost %s in transit %s, but its movements shipped %s (into transit %s), received %s (out of transit %s), lost %s (on_hand %s), in transit %s',
                  s.id, s.qty_shipped, s.qty_received, s.qty_lost, s.qty_in_transit, coalesce(m.shipped_on_hand, 0), coalesce(m.shipped_transit, 0),
                  coalesce(m.received_on_hand, 0), coalesce(m.received_transit, 0), coalesce(m.lost, 0), coalesce(m.lost_on_hand, 0), coalesce(m.in_transit, 0))
    from inventory.transit_shipments s left join moved m on m.shipment_id = s.id
    where s.qty_shipped is distinct from m.shipped_on_hand or s.qty_shipped is distinct from m.shipped_transit
       or s.qty_received <> m.received_on_hand or s.qty_received <> m.received_transit
       or s.qty_lost <> m.lost or m.lost_on_hand <> 0 or s.qty_in_transit <> m.in_transit
    union all
    select format('route %s %s -> %s: in_transit() says %s, the ledger %s', coalesce(r.sku, l.sku), coalesce(r.from_warehouse, l.from_warehouse),
                  coalesce(r.to_warehouse, l.to_warehouse), coalesce(r.qty_in_transit, 0), coalesce(l.qty, 0))
    from inventory.in_transit() r
    full join ledger_routes l on l.sku = r.sku and l.from_warehouse = r.from_warehouse and l.to_warehouse = r.to_warehouse
    where coalesce(r.qty_in_transit, 0) <> coalesce(l.qty, 0)
    limit 20`);
  return rows.map((r) => r.problem);
}

export async function assertInvariants(t: ExecutionContext, db: Queryable, options: { reservationLedger?: boolean } = {}): Promise<void> {
  t.deepEqual(await invariantViolations(db), [], 'ledger invariants hold');
  t.deepEqual(await transitViolations(db), [], 'transfers in transit agree with the ledger');
  if (options.reservationLedger) t.deepEqual(await reservationLedgerViolations(db), [], 'reservation lines agree with their movements');
}
