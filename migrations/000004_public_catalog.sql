-- Hardening (issue 10): what a caller without a token may read, and locks no
-- other role can take.

-- stockroom_public: the anonymous caller of the API. It reads the public
-- catalog only (products, warehouses, stock levels); reservations (order refs,
-- idempotency keys) and the ledger (actors) need stockroom_reader or more.
-- The reader keeps all it had: it is a member of stockroom_public.
do $$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'stockroom_public') then
    begin
      create role stockroom_public nologin;
    exception when duplicate_object or unique_violation then
      null; -- created concurrently by a migrator of another database
    end;
  end if;
end
$$;
grant stockroom_public to stockroom_reader;
grant usage on schema inventory to stockroom_public;
grant select on inventory.products, inventory.warehouses, inventory.stock_levels to stockroom_public;

-- Advisory locks are one namespace for the whole database, open to every
-- role: a session of any role could take the lock that queues reserves of a
-- hot stock row, or an idempotency key's lock, and keep it. The SQL API takes
-- them as the owner (SECURITY DEFINER), so only the owner needs them here.
-- Revoking needs the privileges of the functions' owner (a superuser); a
-- migrator without them leaves them open and says so.
do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure from pg_catalog.pg_proc p
    where p.pronamespace = 'pg_catalog'::regnamespace
      and p.proname in ('pg_advisory_lock', 'pg_advisory_lock_shared', 'pg_advisory_xact_lock', 'pg_advisory_xact_lock_shared',
                        'pg_try_advisory_lock', 'pg_try_advisory_lock_shared', 'pg_try_advisory_xact_lock', 'pg_try_advisory_xact_lock_shared')
  loop
    if pg_catalog.has_function_privilege(f, 'execute with grant option') then
      execute format('grant execute on function %s to %I', f, current_user);
      execute format('revoke execute on function %s from public', f);
    else
      raise warning 'advisory lock function % stays open to every role: the migrating role may not revoke it (run this migration as a superuser to close it)', f;
    end if;
  end loop;
end
$$;
