-- A shipment of a transfer in transit by id: IV005 for a null id, IV004 when
-- there is none. With p_lock, locks it: receive_transfer() and
-- write_off_transfer() lock their stock row first and the shipment second
-- (stock rows before anything else, as everywhere), so the two never deadlock.
create or replace function inventory._transit_shipment(p_id uuid, p_lock boolean) returns inventory.transit_shipments
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_shipment inventory.transit_shipments;
begin
  if p_id is null then
    perform inventory._raise('IV005', 'shipment_id must be the id of a shipment, got null', jsonb_build_object('argument', 'shipment_id'));
  end if;
  if p_lock then
    select * into v_shipment from inventory.transit_shipments where id = p_id for update;
  else
    select * into v_shipment from inventory.transit_shipments where id = p_id;
  end if;
  if v_shipment.id is null then
    perform inventory._raise('IV004', format('unknown shipment %s', p_id),
      jsonb_build_object('shipment_id', p_id),
      'ship_transfer() returns the id; inventory.transit_shipments lists every shipment.');
  end if;
  return v_shipment;
end
$$;
comment on function inventory._transit_shipment(uuid, boolean) is
  'Internal: a transit shipment by id (optionally locked); IV005 for null, IV004 when unknown';

-- The error detail of a shipment: its id and counters.
create or replace function inventory._transit_shipment_json(p_shipment inventory.transit_shipments) returns jsonb
language sql immutable
set search_path = pg_catalog, inventory, pg_temp
as $$
  select jsonb_build_object('shipment_id', p_shipment.id, 'status', p_shipment.status, 'qty_shipped', p_shipment.qty_shipped,
    'qty_received', p_shipment.qty_received, 'qty_lost', p_shipment.qty_lost, 'qty_in_transit', p_shipment.qty_in_transit)
$$;
comment on function inventory._transit_shipment_json(inventory.transit_shipments) is 'Internal: error detail of a transit shipment';

-- Refuses to take more out of transit than a locked shipment has on its way:
-- IV003 when nothing is (the shipment is RECEIVED or CLOSED: a state, not a
-- quantity, is wrong), IV005 when the qty asked for is more than is left (the
-- request is wrong, not the stock: waiting would never make it right).
-- p_action says what was refused ('receive', 'write off').
create or replace function inventory._check_in_transit(p_shipment inventory.transit_shipments, p_qty integer, p_action text) returns void
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
begin
  if p_shipment.qty_in_transit = 0 then
    perform inventory._raise('IV003',
      format('cannot %s: shipment %s is %s, nothing of it is in transit', p_action, p_shipment.id, p_shipment.status),
      inventory._transit_shipment_json(p_shipment),
      'Nothing was changed. A shipment that arrived or was written off in full takes no more receipts or write-offs; for stock found later use adjust().');
  end if;
  if p_qty > p_shipment.qty_in_transit then
    perform inventory._raise('IV005',
      format('cannot %s %s units of shipment %s: only %s are in transit', p_action, p_qty, p_shipment.id, p_shipment.qty_in_transit),
      inventory._transit_shipment_json(p_shipment) || jsonb_build_object('argument', 'qty', 'requested', p_qty),
      format('Nothing was changed. %s at most %s; what never arrives is written off with write_off_transfer().',
        initcap(p_action), p_shipment.qty_in_transit));
  end if;
end
$$;
comment on function inventory._check_in_transit(inventory.transit_shipments, integer, text) is
  'Internal: IV003 when nothing of a shipment is in transit, IV005 when more is asked for than is';
