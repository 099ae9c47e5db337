-- expire_due(max): expire up to max HELD reservations past expires_at, oldest
-- first, and return how many it expired. Stock rows are locked first (key
-- order), then the reservations, as everywhere; a reservation settled by
-- someone else meanwhile is simply no longer due.
create or replace function inventory.expire_due(max integer default 1000)
returns integer
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
set plan_cache_mode = force_generic_plan -- see reserve.sql
as $$
declare
  v_due uuid[];
begin
  if expire_due.max is null or expire_due.max < 1 then
    perform inventory._raise('IV005', format('max must be a positive integer, got %s', coalesce(expire_due.max::text, 'null')),
      jsonb_build_object('argument', 'max'));
  end if;
  select array_agg(r.id) into v_due
  from (
    select r.id from inventory.reservations r
    where r.status = 'HELD' and r.expires_at <= now()
    order by r.expires_at
    limit expire_due.max
  ) r;
  if v_due is null then
    return 0;
  end if;

  perform 1 from (
    select 1 from inventory.stock_levels s
    where (s.product_id, s.warehouse_id) in (
      select l.product_id, l.warehouse_id from inventory.reservation_lines l where l.reservation_id = any (v_due))
    order by s.product_id, s.warehouse_id
    for update of s
  ) locked;
  -- Rechecked under the lock: confirmed, released, extended or expired meanwhile
  -- drop out. SKIP LOCKED: with the rows held, a reservation still locked by
  -- someone else is being extended (or locked by hand); the next sweep gets it.
  select array_agg(r.id) into v_due
  from (
    select r.id from inventory.reservations r
    where r.id = any (v_due) and r.status = 'HELD' and r.expires_at <= now()
    order by r.id
    for update of r skip locked
  ) r;
  if v_due is null then
    return 0;
  end if;
  perform inventory._settle(v_due, 'EXPIRE', 'TTL_EXPIRED');
  return cardinality(v_due);
end
$$;
comment on function inventory.expire_due(integer) is
  'Expire up to max due HELD reservations, oldest first; returns how many';
