-- (Its earlier form, _line_problem, returned the problem as text only.)
drop function if exists inventory._line_problem(jsonb);

-- An over-long field of a line as _line_check reports it: the message of
-- _length_error (the one wording of a length problem), the field and its maximum.
create or replace function inventory._line_field_too_long(p_value text, p_field text) returns jsonb
language sql immutable
as $$
  select jsonb_build_object('problem', (e).message, 'field', p_field, 'max_length', inventory._max_length(p_field))
  from (select inventory._length_error(p_value, format('"%s"', p_field), p_field) as e) checked
$$;
comment on function inventory._line_field_too_long(text, text) is 'Internal: a reserve line''s over-long field, as {"problem", "field", "max_length"}';

-- What is wrong with one reserve() line, or null when it is well formed:
-- {"sku": non-empty string, "warehouse": non-empty string (optional), "qty":
-- positive integer}, sku and warehouse within their maximum lengths
-- (_arguments.sql). A well-formed line that names a channel ("channel",
-- "region": _channel_line_check) is answered {"channel": true}, not null:
-- reserve()'s lean path takes only lines that come back null, and callers
-- that take channel lines tell a problem by its "problem" key. A line
-- without those fields never reaches that check: it costs nothing more.
-- A problem is {"problem": a sentence} plus, for an over-long field,
-- {"field", "max_length"}; the caller adds the line's number and the argument.
-- PL/pgSQL IFs rather than one SQL CASE: evaluated as simple expressions they
-- cost a fraction of a statement's start-up (the maxima fold to constants
-- when planned).
-- No SET clause (it would cost a configuration save and restore per call,
-- once per line): it names nothing but built-in functions and inlined
-- helpers, and runs inside reserve()'s pinned search_path.
create or replace function inventory._line_check(p_line jsonb) returns jsonb
language plpgsql immutable
as $$
declare
  v_qty numeric;
begin
  if jsonb_typeof(p_line) is distinct from 'object' then
    return jsonb_build_object('problem', 'must be an object like {"sku": "A", "warehouse": "WH1", "qty": 2}');
  end if;
  if jsonb_typeof(p_line -> 'sku') is distinct from 'string' or btrim(p_line ->> 'sku') = '' then
    return jsonb_build_object('problem', '"sku" must be a non-empty string');
  end if;
  if length(p_line ->> 'sku') > inventory._max_length('sku') then
    return inventory._line_field_too_long(p_line ->> 'sku', 'sku');
  end if;
  if jsonb_typeof(p_line -> 'warehouse') not in ('string', 'null') or btrim(p_line ->> 'warehouse') = '' then
    return jsonb_build_object('problem', '"warehouse" must be a non-empty string, or left out to allocate across warehouses');
  end if;
  if length(p_line ->> 'warehouse') > inventory._max_length('warehouse') then
    return inventory._line_field_too_long(p_line ->> 'warehouse', 'warehouse');
  end if;
  if jsonb_typeof(p_line -> 'qty') is distinct from 'number' then
    return jsonb_build_object('problem', format('"qty" must be a positive integer, got %s',
      coalesce(inventory._clip((p_line -> 'qty')::text), 'nothing')));
  end if;
  v_qty := (p_line ->> 'qty')::numeric;
  if v_qty <= 0 or v_qty > 2147483647 or v_qty <> trunc(v_qty) then
    return jsonb_build_object('problem', format('"qty" must be a positive integer, got %s', inventory._clip(p_line ->> 'qty')));
  end if;
  if (p_line - 'sku' - 'warehouse' - 'qty') <> '{}'::jsonb then
    -- Only a line with more fields comes here: a channel line (README "Sales
    -- channels"), or an unknown field.
    return inventory._channel_line_check(p_line);
  end if;
  return null;
end
$$;
comment on function inventory._line_check(jsonb) is 'Internal: what is wrong with one reserve() line, as {"problem", ...}, or null';
