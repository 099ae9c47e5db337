-- Lazy expiry for reserve(): a HELD reservation past expires_at does not block
-- a new one, whether or not the expiry job has run. The caller holds the locks
-- on the given rows. It waits for the due reservations' own locks (safe: a
-- reservation lock is only ever held by a transaction that already has every
-- row it needs), but takes their *other* rows with SKIP LOCKED: waiting for a
-- row outside key order could deadlock. So a due reservation stays HELD here
-- only while another transaction holds one of its other rows; the expiry job
-- gets it then.
create or replace function inventory._expire_due_on_rows(
  p_slot_products uuid[],
  p_slot_warehouses uuid[]
) returns integer
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_due uuid[];
  v_ready uuid[];
begin
  select array_agg(r.id order by r.id) into v_due
  from (
    select r.id from inventory.reservations r
    where r.status = 'HELD' and r.expires_at <= now()
      and exists (
        select from inventory.reservation_lines l
        join unnest(p_slot_products, p_slot_warehouses) k(product_id, warehouse_id)
          on k.product_id = l.product_id and k.warehouse_id = l.warehouse_id
        where l.reservation_id = r.id)
    order by r.id
    for update of r
  ) r;
  if v_due is null then
    return 0;
  end if;

  with other_row as (
    select distinct l.product_id, l.warehouse_id
    from inventory.reservation_lines l
    where l.reservation_id = any (v_due)
    except
    select * from unnest(p_slot_products, p_slot_warehouses)
  ),
  got as (
    select s.product_id, s.warehouse_id from inventory.stock_levels s
    where (s.product_id, s.warehouse_id) in (select * from other_row)
    order by s.product_id, s.warehouse_id
    for update of s skip locked
  ),
  missing as (
    select * from other_row except select * from got
  )
  select array_agg(d.id) into v_ready
  from unnest(v_due) d(id)
  where not exists (
    select from inventory.reservation_lines l
    join missing m on m.product_id = l.product_id and m.warehouse_id = l.warehouse_id
    where l.reservation_id = d.id);

  if v_ready is null then
    return 0;
  end if;
  perform inventory._settle(v_ready, 'EXPIRE', 'TTL_EXPIRED');
  return cardinality(v_ready);
end
$$;
comment on function inventory._expire_due_on_rows(uuid[], uuid[]) is
  'Internal: expire due HELD reservations holding the given (locked) rows';
