-- IV005 when an optional text argument is longer than its kind allows; null passes.
create or replace function inventory._check_length(p_value text, p_argument text, p_kind text) returns void
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  if length(p_value) > inventory._max_length(p_kind) then
    perform inventory._raise_error(inventory._length_error(p_value, p_argument, p_kind));
  end if;
end
$$;
comment on function inventory._check_length(text, text, text) is 'Internal: IV005 for an optional text argument over its maximum length';
