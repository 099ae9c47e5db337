-- An inbound shipment, unlocked: IV005 for a null id, IV004 when unknown.
create or replace function inventory._inbound_shipment(p_shipment_id uuid) returns inventory.inbound_shipments
language plpgsql stable
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_shipment inventory.inbound_shipments;
begin
  if p_shipment_id is null then
    perform inventory._raise('IV005', 'inbound_id must not be null', jsonb_build_object('argument', 'inbound_id'));
  end if;
  select * into v_shipment from inventory.inbound_shipments where id = p_shipment_id;
  if v_shipment.id is null then
    perform inventory._raise('IV004', format('unknown inbound shipment %s', p_shipment_id),
      jsonb_build_object('inbound_id', p_shipment_id),
      'inventory.inbound(sku, warehouse) lists inbound shipments and their ids.');
  end if;
  return v_shipment;
end
$$;
comment on function inventory._inbound_shipment(uuid) is 'Internal: an inbound shipment by id (IV004 when unknown)';
