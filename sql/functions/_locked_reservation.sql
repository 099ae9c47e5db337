-- Locks one reservation for a state change; IV005 for a null id, IV004 when
-- unknown. Lock order, everywhere: stock rows (in key order) first, then the
-- reservation. So whoever holds a reservation lock already holds every stock
-- row it needs and never waits again, and reserve()'s lazy expiry can safely
-- wait for a reservation lock. Its rows are read before it is locked: only
-- edit_reservation adds rows to a reservation, and _settle locks the rows of
-- the lines as they are once the reservation is locked, so a concurrent edit
-- can cost a wait out of key order (rare: PostgreSQL resolves a resulting
-- deadlock by aborting one side, 40P01), never a wrong settle. Functions that
-- change lines use _locked_reservation_and_rows, which takes the rows again
-- when they changed meanwhile.
create or replace function inventory._locked_reservation(p_id uuid, p_lock_stock boolean default true)
returns inventory.reservations
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_reservation inventory.reservations;
begin
  if p_id is null then
    perform inventory._raise('IV005', 'reservation_id must not be null', jsonb_build_object('argument', 'reservation_id'));
  end if;
  if p_lock_stock then
    perform 1 from (
      select 1 from inventory.stock_levels s
      where (s.product_id, s.warehouse_id) in (
        select l.product_id, l.warehouse_id from inventory.reservation_lines l where l.reservation_id = p_id)
      order by s.product_id, s.warehouse_id
      for update of s
    ) locked;
  end if;
  select * into v_reservation from inventory.reservations where id = p_id for update;
  if v_reservation.id is null then
    perform inventory._raise('IV004', format('unknown reservation %s', p_id),
      jsonb_build_object('reservation_id', p_id));
  end if;
  return v_reservation;
end
$$;
comment on function inventory._locked_reservation(uuid, boolean) is
  'Internal: lock a reservation (after its stock rows, unless told not to); IV004 when unknown';
