-- IV005 unless a ttl is a positive, finite interval of at most a year (a
-- longer hold is almost certainly a unit mistake, and now() + ttl must fit a timestamp).
create or replace function inventory._require_ttl(p_ttl interval) returns void
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_ttl is null or p_ttl <= interval '0' or not isfinite(p_ttl) or p_ttl > interval '1 year' then
    perform inventory._raise('IV005',
      format('ttl must be a positive interval of at most 1 year, got %s', coalesce(p_ttl::text, 'null')),
      jsonb_build_object('argument', 'ttl'), 'Example: interval ''15 minutes''.');
  end if;
end
$$;
comment on function inventory._require_ttl(interval) is 'Internal: IV005 for a missing, non-positive, infinite or over-long ttl';
