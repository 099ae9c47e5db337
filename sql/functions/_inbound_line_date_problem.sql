-- The warehouse and date of a create_inbound line: a warehouse always, and a
-- finite expected_at from the line or the call. (A receipt's line needs neither.)
create or replace function inventory._inbound_line_date_problem(p_line jsonb, p_dated boolean, p_expected_at timestamptz)
returns jsonb
language plpgsql stable
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_at timestamptz;
begin
  if not p_dated then
    return null;
  end if;
  if p_line ->> 'warehouse' is null then
    return jsonb_build_object('problem', '"warehouse" is required: inbound stock arrives at a warehouse', 'field', 'warehouse');
  end if;
  if jsonb_typeof(p_line -> 'expected_at') not in ('string', 'null') then
    return jsonb_build_object('problem', '"expected_at" must be a date and time text such as "2027-01-15T09:00:00Z"', 'field', 'expected_at');
  end if;
  begin
    v_at := coalesce((p_line ->> 'expected_at')::timestamptz, p_expected_at);
  exception when data_exception then
    return jsonb_build_object('problem', format('"expected_at" must be a date and time, got %s', inventory._quote(p_line ->> 'expected_at')),
      'field', 'expected_at');
  end;
  if v_at is null or not isfinite(v_at) then
    return jsonb_build_object('problem', '"expected_at" is required (or the expected_at argument for every line), a finite date and time',
      'field', 'expected_at');
  end if;
  return null;
end
$$;
comment on function inventory._inbound_line_date_problem(jsonb, boolean, timestamptz) is
  'Internal: a create_inbound line without a warehouse or a usable expected_at, or null';
