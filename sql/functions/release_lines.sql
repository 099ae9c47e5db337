-- release_lines(reservation_id, lines, reason, idempotency_key): give part of
-- a HELD reservation back (an item removed from the order): RELEASE
-- movements with the reason, reserved drops by the units named. lines as
-- confirm_lines. reason: one of release()'s set but TTL_EXPIRED, which
-- records the expiry of a whole reservation (release(id, 'TTL_EXPIRED')).
-- A reservation past expires_at may still give units back, as with
-- release(). When nothing is left held it ends: CONFIRMED if confirm_lines
-- confirmed some of it, else RELEASED with the reason. With an idempotency
-- key, a retry returns the reservation as it is, without a second change.
create or replace function inventory.release_lines(
  reservation_id uuid,
  lines jsonb,
  reason text default 'ORDER_CHANGED',
  idempotency_key text default null
) returns inventory.reservations
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  c_reasons constant text[] := array['CANCELLED', 'CUSTOMER_CANCELLED', 'PAYMENT_FAILED', 'FRAUD', 'ORDER_CHANGED', 'ADMIN'];
begin
  if release_lines.reason is null or not (release_lines.reason = any (c_reasons)) then
    perform inventory._raise('IV005',
      format('reason must be one of %s; got %s', array_to_string(c_reasons, ', '), inventory._quote(release_lines.reason)),
      jsonb_build_object('argument', 'reason', 'accepted', to_jsonb(c_reasons)),
      case when release_lines.reason = 'TTL_EXPIRED'
        then 'A reservation expires whole: inventory.release(reservation_id, ''TTL_EXPIRED'').'
        else 'ORDER_CHANGED (the default) for an item taken off the order.' end);
  end if;
  return inventory._settle_lines(release_lines.reservation_id, release_lines.lines, 'RELEASE', release_lines.reason,
    release_lines.idempotency_key);
end
$$;
comment on function inventory.release_lines(uuid, jsonb, text, text) is
  'Give part of a HELD reservation back: [{"sku","warehouse"?,"qty"}] of the units it holds (RELEASE movements with reason, default ORDER_CHANGED); ends when nothing is left; optional idempotency key';
