-- Who made a change, for the ledger: the application's own name for its user
-- (SET stockroom.actor, e.g. a JWT subject), else the role in effect, else the login.
create or replace function inventory._actor() returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  return coalesce(
    nullif(current_setting('stockroom.actor', true), ''),
    nullif(current_setting('role'), 'none'),
    session_user::text);
end
$$;
comment on function inventory._actor() is 'Internal: the actor recorded on movements';
