-- release(reservation_id, reason): give held stock back. Idempotent: releasing
-- a RELEASED or EXPIRED reservation returns it unchanged. The reason is one of
-- a documented set (README "Argument limits"), anything else is IV005 (checked
-- first, whatever the reservation's state), so a typo cannot pass for a reason:
--   CANCELLED           the order was cancelled (the default)
--   CUSTOMER_CANCELLED  the customer cancelled or abandoned the checkout
--   PAYMENT_FAILED      the payment was declined or failed
--   FRAUD               the order was refused as fraudulent
--   ORDER_CHANGED       the order changed; a new reservation replaces this one
--   ADMIN               an operator released it by hand
--   TTL_EXPIRED         records an expiry (status EXPIRED, EXPIRE movements),
--                       so the expiry job and a manual expiry leave the same trail
create or replace function inventory.release(reservation_id uuid, reason text default 'CANCELLED')
returns inventory.reservations
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
set plan_cache_mode = force_generic_plan -- see reserve.sql
as $$
declare
  c_reasons constant text[] := array['CANCELLED', 'CUSTOMER_CANCELLED', 'PAYMENT_FAILED', 'FRAUD', 'ORDER_CHANGED', 'ADMIN', 'TTL_EXPIRED'];
  v_reservation inventory.reservations;
begin
  if release.reason is null or not (release.reason = any (c_reasons)) then
    perform inventory._raise('IV005',
      format('reason must be one of %s; got %s', array_to_string(c_reasons, ', '), inventory._quote(release.reason)),
      jsonb_build_object('argument', 'reason', 'accepted', to_jsonb(c_reasons)),
      'TTL_EXPIRED records an expiry (status EXPIRED); every other reason a release (status RELEASED).');
  end if;
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
  'Give the stock of a HELD reservation back; reason: CANCELLED (default), CUSTOMER_CANCELLED, PAYMENT_FAILED, FRAUD, ORDER_CHANGED, ADMIN, or TTL_EXPIRED (records an expiry); idempotent';
