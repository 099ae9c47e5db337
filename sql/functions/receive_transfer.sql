-- receive_transfer(shipment_id, qty, reason, idempotency_key): units of a
-- shipment arrive at its destination: a TRANSIT_IN movement there (on_hand up,
-- the row made when missing; the units fill waiting backorders first, as any
-- receipt) that takes them out of transit. A shipment may arrive in parts;
-- more than is in transit is IV005, a shipment with nothing in transit IV003.
-- Returns the shipment; a retry with the same key returns it as it is now.
create or replace function inventory.receive_transfer(
  shipment_id uuid,
  qty integer,
  reason text,
  idempotency_key text default null
) returns inventory.transit_shipments
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_shipment inventory.transit_shipments := inventory._transit_shipment(receive_transfer.shipment_id, false);
  v_to inventory.stock_levels;
begin
  if receive_transfer.qty is null or receive_transfer.qty <= 0 then
    perform inventory._raise('IV005', format('qty must be a positive integer, got %s', coalesce(receive_transfer.qty::text, 'null')),
      jsonb_build_object('argument', 'qty'));
  end if;
  perform inventory._require_text(receive_transfer.reason, 'reason', 'reason');
  if receive_transfer.idempotency_key is not null
     and not inventory._claim_operation_key(receive_transfer.idempotency_key, 'receive_transfer',
           concat_ws(chr(31), v_shipment.id, receive_transfer.qty, receive_transfer.reason)) then
    return inventory._transit_shipment(v_shipment.id, false);
  end if;

  -- The stock row, then the shipment (see _transit_shipment).
  v_to := inventory._locked_stock_row(v_shipment.product_id, v_shipment.to_warehouse_id, true);
  v_shipment := inventory._transit_shipment(v_shipment.id, true);
  perform inventory._check_in_transit(v_shipment, receive_transfer.qty, 'receive');
  if v_to.on_hand::bigint + receive_transfer.qty > 2147483647 then
    perform inventory._raise('IV005', format('on_hand at the destination of shipment %s would exceed 2147483647', v_shipment.id),
      jsonb_build_object('argument', 'qty'));
  end if;
  perform inventory._record_movement(v_to, 'TRANSIT_IN', receive_transfer.qty, receive_transfer.reason, v_shipment.reference,
    receive_transfer.idempotency_key, -receive_transfer.qty);
  update inventory.transit_shipments s
  set qty_received = s.qty_received + receive_transfer.qty, updated_at = clock_timestamp(),
      closed_at = case when s.qty_in_transit = receive_transfer.qty then clock_timestamp() end
  where s.id = v_shipment.id
  returning * into v_shipment;
  return v_shipment;
end
$$;
comment on function inventory.receive_transfer(uuid, integer, text, text) is
  'Receive units of a shipment in transit at its destination (TRANSIT_IN), whole or in parts; returns the shipment';
