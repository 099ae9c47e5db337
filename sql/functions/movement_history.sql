-- movement_history(sku, warehouse, kind, since, until): the ledger for
-- people and the API, newest first; every filter optional (the API pages it).
create or replace function inventory.movement_history(
  sku text default null,
  warehouse text default null,
  kind text default null,
  since timestamptz default null,
  until timestamptz default null
) returns setof inventory.movements
language plpgsql stable security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_product_id uuid;
  v_warehouse_id uuid;
begin
  -- An over-long sku or warehouse is IV005 (the maxima of _arguments.sql), as everywhere.
  if movement_history.sku is not null then v_product_id := inventory._product_id(movement_history.sku); end if;
  if movement_history.warehouse is not null then v_warehouse_id := inventory._warehouse_id(movement_history.warehouse); end if;
  if movement_history.kind is not null and movement_history.kind not in (
      'RECEIVE', 'ADJUST', 'COUNT', 'RESERVE', 'RELEASE', 'EXPIRE', 'CONFIRM', 'TRANSFER_OUT', 'TRANSFER_IN',
      'BACKORDER', 'FILL', 'TRANSIT_OUT', 'TRANSIT_IN', 'TRANSIT_LOST') then
    perform inventory._raise('IV005', format('kind %s is not a movement kind', inventory._quote(movement_history.kind)),
      jsonb_build_object('argument', 'kind'),
      'Kinds: RECEIVE, ADJUST, COUNT, RESERVE, RELEASE, EXPIRE, CONFIRM, TRANSFER_OUT, TRANSFER_IN, BACKORDER, FILL, TRANSIT_OUT, TRANSIT_IN, TRANSIT_LOST.');
  end if;
  return query
    select m.* from inventory.movements m
    where (v_product_id is null or m.product_id = v_product_id)
      and (v_warehouse_id is null or m.warehouse_id = v_warehouse_id)
      and (movement_history.kind is null or m.kind = movement_history.kind)
      and (movement_history.since is null or m.occurred_at >= movement_history.since)
      and (movement_history.until is null or m.occurred_at < movement_history.until)
    order by m.id desc;
end
$$;
comment on function inventory.movement_history(text, text, text, timestamptz, timestamptz) is
  'The movement ledger, newest first, filtered by sku, warehouse, kind and time range (all optional)';
