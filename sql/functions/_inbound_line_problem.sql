-- What is wrong with one inbound line, or null (see _inbound_request_lines):
-- {"problem": a sentence} plus, for a field, {"field"} (and "max_length").
create or replace function inventory._inbound_line_problem(p_line jsonb, p_dated boolean, p_expected_at timestamptz)
returns jsonb
language plpgsql stable
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_fields constant text[] := case when p_dated then array['sku', 'warehouse', 'qty', 'expected_at'] else array['sku', 'warehouse', 'qty'] end;
  v_extra text;
begin
  if jsonb_typeof(p_line) = 'object' then
    select string_agg(quote_ident(k), ', ' order by k) into v_extra
    from jsonb_object_keys(p_line) k where not (k = any (v_fields));
    if v_extra is not null then
      return jsonb_build_object('problem', format('unknown field(s) %s; a line has only %s',
        inventory._clip(v_extra), array_to_string(v_fields, ', ')));
    end if;
  end if;
  -- sku, warehouse and qty as reserve() checks them (the one wording of those problems).
  return coalesce(inventory._line_check(case when jsonb_typeof(p_line) = 'object' then p_line - 'expected_at' else p_line end),
                  inventory._inbound_line_date_problem(p_line, p_dated, p_expected_at));
end
$$;
comment on function inventory._inbound_line_problem(jsonb, boolean, timestamptz) is 'Internal: what is wrong with one inbound line, or null';
