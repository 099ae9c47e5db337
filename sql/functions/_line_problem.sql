-- What is wrong with one reserve() line, or null when it is well formed:
-- {"sku": non-empty string, "warehouse": non-empty string (optional), "qty": positive integer}.
-- PL/pgSQL IFs rather than one SQL CASE: evaluated as simple expressions they
-- cost a fraction of a statement's start-up. No SET clause (it would cost a
-- configuration save and restore per call, once per line): it names nothing
-- but built-in functions, and runs inside reserve()'s pinned search_path.
create or replace function inventory._line_problem(p_line jsonb) returns text
language plpgsql immutable
as $$
declare
  v_qty numeric;
begin
  if jsonb_typeof(p_line) is distinct from 'object' then
    return 'must be an object like {"sku": "A", "warehouse": "WH1", "qty": 2}';
  end if;
  if jsonb_typeof(p_line -> 'sku') is distinct from 'string' or btrim(p_line ->> 'sku') = '' then
    return '"sku" must be a non-empty string';
  end if;
  if jsonb_typeof(p_line -> 'warehouse') not in ('string', 'null') or btrim(p_line ->> 'warehouse') = '' then
    return '"warehouse" must be a non-empty string, or left out to allocate across warehouses';
  end if;
  if jsonb_typeof(p_line -> 'qty') is distinct from 'number' then
    return format('"qty" must be a positive integer, got %s', coalesce((p_line -> 'qty')::text, 'nothing'));
  end if;
  v_qty := (p_line ->> 'qty')::numeric;
  if v_qty <= 0 or v_qty > 2147483647 or v_qty <> trunc(v_qty) then
    return format('"qty" must be a positive integer, got %s', p_line -> 'qty');
  end if;
  if (p_line - 'sku' - 'warehouse' - 'qty') <> '{}'::jsonb then
    return format('unknown field(s) %s; a line has only "sku", "warehouse" and "qty"',
      (select string_agg(quote_ident(k), ', ') from jsonb_object_keys(p_line - 'sku' - 'warehouse' - 'qty') k));
  end if;
  return null;
end
$$;
comment on function inventory._line_problem(jsonb) is 'Internal: what is wrong with one reserve() line, or null';
