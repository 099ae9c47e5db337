-- IV005 unless a required text argument is present and not blank.
create or replace function inventory._require_text(p_value text, p_argument text) returns void
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_value is null or btrim(p_value) = '' then
    perform inventory._raise('IV005', format('%s must be a non-empty text', p_argument),
      jsonb_build_object('argument', p_argument));
  end if;
end
$$;
comment on function inventory._require_text(text, text) is 'Internal: IV005 for a missing or blank text argument';
