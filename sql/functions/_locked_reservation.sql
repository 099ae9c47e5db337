-- Locks one reservation for a state change; IV005 for a null id, IV004 when unknown.
create or replace function inventory._locked_reservation(p_id uuid)
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
  select * into v_reservation from inventory.reservations where id = p_id for update;
  if v_reservation.id is null then
    perform inventory._raise('IV004', format('unknown reservation %s', p_id),
      jsonb_build_object('reservation_id', p_id));
  end if;
  return v_reservation;
end
$$;
comment on function inventory._locked_reservation(uuid) is 'Internal: lock a reservation row, IV004 when unknown';
