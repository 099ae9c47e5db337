-- set_warehouse_region(warehouse, region): a warehouse's region, which NEAREST
-- channels compare with the customer's (README "Sales channels"); null
-- clears it. (upsert_warehouse sets it too, but keeps it for null and resets
-- the priority to the value given: this changes the region alone.)
create or replace function inventory.set_warehouse_region(
  warehouse text,
  region text
) returns inventory.warehouses
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_warehouse inventory.warehouses;
begin
  perform inventory._require_text(set_warehouse_region.warehouse, 'warehouse', 'warehouse');
  perform inventory._check_length(set_warehouse_region.region, 'region', 'name');
  if btrim(set_warehouse_region.region) = '' then
    perform inventory._raise('IV005', 'region must be a non-empty text, or null to clear it', jsonb_build_object('argument', 'region'));
  end if;
  update inventory.warehouses w
  set region = set_warehouse_region.region,
      updated_at = case when w.region is distinct from set_warehouse_region.region then now() else w.updated_at end
  where w.code = set_warehouse_region.warehouse
  returning * into v_warehouse;
  if v_warehouse.id is null then
    perform inventory._raise('IV004', format('unknown warehouse %s', inventory._quote(set_warehouse_region.warehouse)),
      jsonb_build_object('unknown_warehouses', jsonb_build_array(inventory._clip(set_warehouse_region.warehouse))),
      'Create warehouses with inventory.upsert_warehouse(code).');
  end if;
  return v_warehouse;
end
$$;
comment on function inventory.set_warehouse_region(text, text) is
  'Set (or, with null, clear) a warehouse''s region, which NEAREST channels prefer';
