-- IV005 unless a ttl is acceptable (see _ttl_error).
create or replace function inventory._require_ttl(p_ttl interval) returns void
language plpgsql immutable
as $$
declare
  v_error inventory._error := inventory._ttl_error(p_ttl);
begin
  if v_error.code is not null then
    perform inventory._raise_error(v_error);
  end if;
end
$$;
comment on function inventory._require_ttl(interval) is 'Internal: IV005 for a missing, non-positive, infinite or over-long ttl';
