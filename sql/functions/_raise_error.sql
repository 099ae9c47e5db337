-- Raises an error carried as a value (see inventory._error), if there is one:
-- how reserve() raises what its checks, shared with reserve_many(), return.
create or replace function inventory._raise_error(p_error inventory._error) returns void
language plpgsql volatile
as $$
begin
  if p_error.code is not null then
    perform inventory._raise(p_error.code, p_error.message, p_error.detail, p_error.hint);
  end if;
end
$$;
comment on function inventory._raise_error(inventory._error) is 'Internal: raise an error carried as a value, if any';
