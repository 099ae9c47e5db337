create or replace function inventory._warehouse_id(p_code text) returns uuid
language plpgsql stable
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_id uuid;
begin
  if p_code is null or btrim(p_code) = '' then
    perform inventory._raise('IV005', 'warehouse must be a non-empty text', jsonb_build_object('argument', 'warehouse'));
  end if;
  select id into v_id from inventory.warehouses where code = p_code;
  if v_id is null then
    perform inventory._raise('IV004', format('unknown warehouse %L', p_code),
      jsonb_build_object('warehouse', p_code),
      'Create it first with inventory.upsert_warehouse(code, name, region, priority).');
  end if;
  return v_id;
end
$$;
comment on function inventory._warehouse_id(text) is 'Internal: warehouse id of a code, IV004 when unknown';
