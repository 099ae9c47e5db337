-- release(reservation_id, reason): give held stock back. Idempotent: releasing
-- a RELEASED or EXPIRED reservation returns it unchanged. The reason
-- TTL_EXPIRED records an expiry (status EXPIRED, EXPIRE movements), so the
-- expiry job and a manual expiry leave the same trail.
create or replace function inventory.release(reservation_id uuid, reason text default 'CANCELLED')
returns inventory.reservations
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
set plan_cache_mode = force_generic_plan -- see reserve.sql
as $$
declare
  v_reservation inventory.reservations;
begin
  perform inventory._require_text(release.reason, 'reason');
  v_reservation := inventory._locked_reservation(release.reservation_id);
  if v_reservation.status in ('RELEASED', 'EXPIRED') then
    return v_reservation;
  elsif v_reservation.status = 'CONFIRMED' then
    perform inventory._refuse_transition(v_reservation, 'release', 'it is CONFIRMED',
      'Stock of a confirmed reservation has left; return it with inventory.adjust(sku, warehouse, qty, reason).');
  end if;
  perform inventory._settle(array[v_reservation.id],
    case when release.reason = 'TTL_EXPIRED' then 'EXPIRE' else 'RELEASE' end,
    release.reason);
  select * into v_reservation from inventory.reservations where id = v_reservation.id;
  return v_reservation;
end
$$;
comment on function inventory.release(uuid, text) is
  'Give the stock of a HELD reservation back (reasons such as CANCELLED, PAYMENT_FAILED, TTL_EXPIRED); idempotent';
