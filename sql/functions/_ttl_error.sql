-- IV005 unless a ttl is a positive, finite interval of at most a year (a
-- longer hold is almost certainly a unit mistake, and now() + ttl must fit a
-- timestamp); null when it is fine.
create or replace function inventory._ttl_error(p_ttl interval) returns inventory._error
language sql immutable
as $$
  select case when p_ttl is null or p_ttl <= interval '0' or not isfinite(p_ttl) or p_ttl > interval '1 year' then
    row('IV005', format('ttl must be a positive interval of at most 1 year, got %s', coalesce(p_ttl::text, 'null')),
        jsonb_build_object('argument', 'ttl'), 'Example: interval ''15 minutes''.')::inventory._error
  end
$$;
comment on function inventory._ttl_error(interval) is 'Internal: IV005 for a missing, non-positive, infinite or over-long ttl, else null';
