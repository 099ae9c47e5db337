-- confirm(reservation_id): the final deduction; on_hand and reserved both drop.
-- Confirming a CONFIRMED reservation returns it unchanged (idempotent). A HELD
-- reservation past expires_at can no longer be confirmed: its stock may
-- already have gone to someone else (extend() it while payment is in flight).
create or replace function inventory.confirm(reservation_id uuid)
returns inventory.reservations
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
set plan_cache_mode = force_generic_plan -- see reserve.sql
as $$
declare
  v_reservation inventory.reservations := inventory._locked_reservation(confirm.reservation_id);
begin
  if v_reservation.status = 'CONFIRMED' then
    return v_reservation;
  elsif v_reservation.status <> 'HELD' then
    perform inventory._refuse_transition(v_reservation, 'confirm',
      format('it is %s (%s)', v_reservation.status, inventory._clip(v_reservation.release_reason)),
      'Reserve again: a released or expired reservation no longer holds stock.');
  elsif v_reservation.expires_at <= now() then
    perform inventory._refuse_transition(v_reservation, 'confirm',
      format('it expired at %s', v_reservation.expires_at),
      'Reserve again, and extend() a reservation while its payment is in flight.');
  end if;
  perform inventory._settle(array[v_reservation.id], 'CONFIRM', null);
  select * into v_reservation from inventory.reservations where id = v_reservation.id;
  return v_reservation;
end
$$;
comment on function inventory.confirm(uuid) is
  'Final deduction of a HELD reservation (on_hand and reserved drop); idempotent';
