-- Locks a reservation for a change of its lines (edit_reservation,
-- confirm_lines, release_lines), with every stock row the change may touch:
-- the rows its lines name, and the rows a request's lines could take from
-- (p_lines: named rows, and every row of a product left to allocation; see
-- _candidate_rows). The one order every function uses: stock rows in
-- (product_id, warehouse_id) order first, then the reservation.
--
-- Lines can change now (edit_reservation adds rows to a reservation), so the
-- rows read before the reservation is locked may be stale: an edit may commit
-- between that read and the lock. Once the reservation is locked its lines
-- cannot change any more, so they are checked then; when a row is missing,
-- the locks are given back (rolling back to the savepoint of this block
-- releases row locks) and taken again, in key order, from the lines as they
-- are now. Waiting for the missing row while holding the others could
-- deadlock with a transaction that holds it and wants one of ours.
-- IV005 for a null id, IV004 for an unknown one (from _locked_reservation).
create or replace function inventory._locked_reservation_and_rows(p_id uuid, p_lines inventory._line[] default null)
returns inventory.reservations
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_reservation inventory.reservations;
  v_products uuid[];
  v_warehouses uuid[];
begin
  if p_id is null then
    perform inventory._raise('IV005', 'reservation_id must not be null', jsonb_build_object('argument', 'reservation_id'));
  end if;
  for v_attempt in 1 .. 5 loop
    begin
      select coalesce(array_agg(s.product_id), '{}'), coalesce(array_agg(s.warehouse_id), '{}')
      into v_products, v_warehouses
      from (
        select s.product_id, s.warehouse_id
        from inventory.stock_levels s
        where (s.product_id, s.warehouse_id) in (
          select l.product_id, l.warehouse_id from inventory.reservation_lines l where l.reservation_id = p_id
          union
          select * from inventory._candidate_rows(coalesce(p_lines, '{}')))
        order by s.product_id, s.warehouse_id
        for update of s
      ) s;
      v_reservation := inventory._locked_reservation(p_id, p_lock_stock => false);
      if v_attempt = 5 or not exists (
          select from inventory.reservation_lines l
          where l.reservation_id = p_id
            and not exists (select from unnest(v_products, v_warehouses) k(product_id, warehouse_id)
                            where k.product_id = l.product_id and k.warehouse_id = l.warehouse_id)) then
        -- (After four tries in a row lost to edits of this very reservation,
        -- the fifth keeps what it has; _change_holds locks the rest then.)
        return v_reservation;
      end if;
      raise exception using errcode = 'IVR01'; -- lines changed meanwhile: let go, and again
    exception when sqlstate 'IVR01' then
      null;
    end;
  end loop;
  return v_reservation; -- (not reached)
end
$$;
comment on function inventory._locked_reservation_and_rows(uuid, inventory._line[]) is
  'Internal: lock a reservation and every stock row a change of its lines may touch, in key order, then the reservation';
