-- IV003: a reservation cannot make the requested state change. (release_reason
-- is clipped: reservations released before the reasons were a set may carry
-- any text.)
create or replace function inventory._refuse_transition(
  p_reservation inventory.reservations,
  p_action text,
  p_why text,
  p_hint text default null
) returns void
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
begin
  perform inventory._raise('IV003',
    format('cannot %s reservation %s: %s', p_action, p_reservation.id, p_why),
    jsonb_build_object('reservation_id', p_reservation.id, 'status', p_reservation.status,
                       'expires_at', p_reservation.expires_at, 'release_reason', inventory._clip(p_reservation.release_reason)),
    p_hint);
end
$$;
comment on function inventory._refuse_transition(inventory.reservations, text, text, text) is
  'Internal: raise IV003 for an invalid reservation state change';
