-- expire_due(max): expire up to max HELD reservations past expires_at, oldest
-- first, skipping any another transaction holds (it is settling them now).
-- Returns how many it expired.
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
  select array_agg(id) into v_due
  from (
    select r.id from inventory.reservations r
    where r.status = 'HELD' and r.expires_at <= now()
    order by r.expires_at
    limit expire_due.max
    for update of r skip locked
  ) due;
  if v_due is null then
    return 0;
  end if;
  perform inventory._settle(v_due, 'EXPIRE', 'TTL_EXPIRED');
  return cardinality(v_due);
end
$$;
comment on function inventory.expire_due(integer) is
  'Expire up to max due HELD reservations (skipping locked ones); returns how many';
