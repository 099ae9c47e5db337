-- reservation_holds(reservation_id): what a reservation holds, where, named
-- the way a person reads it (sku and warehouse code, not uuids): one row per
-- line, in sku then warehouse order, with the reservation's status and
-- expiry. IV004 for an unknown reservation.
--   select * from inventory.reservation_holds('0193…');
create or replace function inventory.reservation_holds(reservation_id uuid)
returns table (order_ref text, status text, expires_at timestamptz, sku text, warehouse text, qty integer)
language plpgsql stable security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
begin
  if reservation_holds.reservation_id is null then
    perform inventory._raise('IV005', 'reservation_id must be a reservation''s id', jsonb_build_object('argument', 'reservation_id'));
  end if;
  return query
    select r.order_ref, r.status, r.expires_at, p.sku, w.code, l.qty
    from inventory.reservations r
    join inventory.reservation_lines l on l.reservation_id = r.id
    join inventory.products p on p.id = l.product_id
    join inventory.warehouses w on w.id = l.warehouse_id
    where r.id = reservation_holds.reservation_id
    order by p.sku, w.code;
  if not found then
    perform inventory._raise('IV004', format('unknown reservation %s', reservation_holds.reservation_id),
      jsonb_build_object('reservation_id', reservation_holds.reservation_id));
  end if;
end
$$;
comment on function inventory.reservation_holds(uuid) is
  'What a reservation holds: one row per line, by sku and warehouse code, with its status and expiry';
