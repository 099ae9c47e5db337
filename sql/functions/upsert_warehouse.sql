-- upsert_warehouse(code, name, region, priority): create a warehouse or update
-- it. A null name or region keeps the current value; priority always takes the
-- value given (100 when left out), as it has no "unset" value.
create or replace function inventory.upsert_warehouse(
  code text,
  name text default null,
  region text default null,
  priority integer default 100
) returns inventory.warehouses
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_warehouse inventory.warehouses;
begin
  perform inventory._require_text(upsert_warehouse.code, 'code', 'warehouse');
  if upsert_warehouse.code <> btrim(upsert_warehouse.code) then
    perform inventory._raise('IV005',
      format('warehouse code %s must not have leading or trailing spaces', inventory._quote(upsert_warehouse.code)),
      jsonb_build_object('argument', 'code'));
  end if;
  perform inventory._check_length(upsert_warehouse.name, 'name', 'name');
  perform inventory._check_length(upsert_warehouse.region, 'region', 'name');
  if upsert_warehouse.priority is null then
    perform inventory._raise('IV005', 'priority must not be null (lower numbers are allocated first; the default is 100)',
      jsonb_build_object('argument', 'priority'));
  end if;
  insert into inventory.warehouses as w (code, name, region, priority)
  values (upsert_warehouse.code, upsert_warehouse.name, upsert_warehouse.region, upsert_warehouse.priority)
  on conflict (code) do update
    set name = coalesce(excluded.name, w.name),
        region = coalesce(excluded.region, w.region),
        priority = excluded.priority,
        updated_at = now()
    where (coalesce(excluded.name, w.name), coalesce(excluded.region, w.region), excluded.priority)
          is distinct from (w.name, w.region, w.priority)
  returning * into v_warehouse;
  if v_warehouse.id is null then
    select * into v_warehouse from inventory.warehouses w where w.code = upsert_warehouse.code;
  end if;
  return v_warehouse;
end
$$;
comment on function inventory.upsert_warehouse(text, text, text, integer) is
  'Create or update a warehouse (null name/region keep the current value; lower priority is allocated first)';
