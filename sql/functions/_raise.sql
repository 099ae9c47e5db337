-- Raises one of Stockroom's errors: a SQLSTATE callers branch on (IV001..IV007),
-- a sentence a person can act on, and JSON detail a program can read.
create or replace function inventory._raise(
  p_code text,
  p_message text,
  p_detail jsonb default null,
  p_hint text default null
) returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  -- RAISE refuses null options, hence the branches.
  if p_detail is null and p_hint is null then
    raise exception using errcode = p_code, message = p_message;
  elsif p_hint is null then
    raise exception using errcode = p_code, message = p_message, detail = p_detail::text;
  elsif p_detail is null then
    raise exception using errcode = p_code, message = p_message, hint = p_hint;
  else
    raise exception using errcode = p_code, message = p_message, detail = p_detail::text, hint = p_hint;
  end if;
end
$$;
comment on function inventory._raise(text, text, jsonb, text) is 'Internal: raise a Stockroom error';
