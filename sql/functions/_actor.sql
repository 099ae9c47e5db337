-- Who made a change, for the ledger: the application's own name for its user
-- (SET stockroom.actor, e.g. a JWT subject), else the role in effect, else the login.
-- A SQL function with no SET clause, so PostgreSQL inlines it into the
-- statement or expression that calls it (it runs once per reserve()).
create or replace function inventory._actor() returns text
language sql stable
as $$
  select coalesce(
    nullif(pg_catalog.current_setting('stockroom.actor', true), ''),
    nullif(pg_catalog.current_setting('role'), 'none'),
    session_user::text)
$$;
comment on function inventory._actor() is 'Internal: the actor recorded on movements';
