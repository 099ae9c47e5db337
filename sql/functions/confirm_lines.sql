-- confirm_lines(reservation_id, lines, idempotency_key): the final deduction
-- of part of a HELD reservation (a partial shipment): CONFIRM movements,
-- on_hand and reserved drop by the units named. lines: reserve()'s format,
-- [{"sku", "warehouse"?, "qty"}], naming units the reservation holds (see
-- _settle_lines for a line without a warehouse and for kits; more than held
-- is IV005). A reservation past expires_at is refused as confirm() refuses
-- it (IV003): its stock may already be someone else's. When nothing is left
-- held it ends CONFIRMED. With an idempotency key, a retry returns the
-- reservation as it is, without a second change; another request with the
-- key is IV006.
create or replace function inventory.confirm_lines(
  reservation_id uuid,
  lines jsonb,
  idempotency_key text default null
) returns inventory.reservations
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
begin
  return inventory._settle_lines(confirm_lines.reservation_id, confirm_lines.lines, 'CONFIRM', null, confirm_lines.idempotency_key);
end
$$;
comment on function inventory.confirm_lines(uuid, jsonb, text) is
  'Confirm part of a HELD reservation: [{"sku","warehouse"?,"qty"}] of the units it holds (CONFIRM movements); ends CONFIRMED when nothing is left; optional idempotency key';
