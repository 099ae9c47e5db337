-- Locks one inbound shipment (IV005 for a null id, IV004 when unknown). Every
-- function that changes a shipment or its lines takes this lock, after the
-- stock rows it will change (the order of every other function: stock rows
-- first, in key order), so its lines hold still until it commits.
create or replace function inventory._locked_inbound(p_shipment_id uuid) returns inventory.inbound_shipments
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_shipment inventory.inbound_shipments;
begin
  perform inventory._inbound_shipment(p_shipment_id);
  select * into v_shipment from inventory.inbound_shipments where id = p_shipment_id for update;
  return v_shipment;
end
$$;
comment on function inventory._locked_inbound(uuid) is 'Internal: lock an inbound shipment (IV004 when unknown)';
