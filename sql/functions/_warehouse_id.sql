-- (Its first form did not take the argument's name; an overload would make calls ambiguous.)
drop function if exists inventory._warehouse_id(text);

-- Warehouse id of a code: IV005 for a missing, blank or over-long code (named
-- as p_argument: warehouse, from_warehouse, to_warehouse), IV004 when unknown.
create or replace function inventory._warehouse_id(p_code text, p_argument text default 'warehouse') returns uuid
language plpgsql stable
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_id uuid;
begin
  if p_code is null or btrim(p_code) = '' or length(p_code) > inventory._max_length('warehouse') then
    perform inventory._require_text(p_code, p_argument, 'warehouse'); -- raises the IV005 that applies
  end if;
  select id into v_id from inventory.warehouses where code = p_code;
  if v_id is null then
    perform inventory._raise('IV004', format('unknown warehouse %s', inventory._quote(p_code)),
      jsonb_build_object('warehouse', inventory._clip(p_code)),
      'Create it first with inventory.upsert_warehouse(code, name, region, priority).');
  end if;
  return v_id;
end
$$;
comment on function inventory._warehouse_id(text, text) is 'Internal: warehouse id of a code, IV005 when missing or too long, IV004 when unknown';
