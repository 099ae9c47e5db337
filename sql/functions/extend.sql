-- extend(reservation_id, ttl): keep a HELD reservation alive; it now expires
-- ttl from now (the expiry sweeper finds it by expires_at). A reservation already past
-- expires_at cannot be revived.
create or replace function inventory.extend(reservation_id uuid, ttl interval)
returns inventory.reservations
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
set plan_cache_mode = force_generic_plan -- see reserve.sql
as $$
declare
  v_reservation inventory.reservations;
begin
  perform inventory._require_ttl(extend.ttl);
  -- No stock changes, so no stock rows to lock; holding only the reservation it never waits again.
  v_reservation := inventory._locked_reservation(extend.reservation_id, p_lock_stock => false);
  if v_reservation.status <> 'HELD' then
    perform inventory._refuse_transition(v_reservation, 'extend', format('it is %s', v_reservation.status));
  elsif v_reservation.expires_at <= now() then
    perform inventory._refuse_transition(v_reservation, 'extend',
      format('it expired at %s', v_reservation.expires_at), 'Reserve again.');
  end if;
  update inventory.reservations r
  set expires_at = now() + extend.ttl, updated_at = now()
  where r.id = v_reservation.id
  returning * into v_reservation;
  return v_reservation;
end
$$;
comment on function inventory.extend(uuid, interval) is 'Keep a HELD reservation alive: it expires ttl from now';
