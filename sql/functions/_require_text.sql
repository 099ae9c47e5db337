-- (Its first form took no kind; an overload would make calls ambiguous.)
drop function if exists inventory._require_text(text, text);

-- IV005 unless a required text argument is present, not blank, and within
-- the maximum length of its kind (see _arguments.sql).
create or replace function inventory._require_text(p_value text, p_argument text, p_kind text) returns void
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_value is null or btrim(p_value) = '' then
    perform inventory._raise('IV005', format('%s must be a non-empty text', p_argument),
      jsonb_build_object('argument', p_argument));
  end if;
  perform inventory._check_length(p_value, p_argument, p_kind);
end
$$;
comment on function inventory._require_text(text, text, text) is 'Internal: IV005 for a missing, blank or over-long text argument';
