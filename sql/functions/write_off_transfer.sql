-- write_off_transfer(shipment_id, reason, qty, idempotency_key): units of a
-- shipment that will never arrive (lost, stolen, destroyed on the way) leave
-- transit: a TRANSIT_LOST movement with on_hand_delta 0 and transit_delta
-- -qty. qty defaults to all that is still in transit.
--
-- The movement is on the source's stock row: the units left its on_hand when
-- they were shipped (so nothing of on_hand changes now), the shipment is the
-- source's until the destination counts the units in, and the destination
-- never held them (it may not even have a row; making one for a loss would
-- be noise). The source's ledger thus tells the whole story of what it sent:
-- TRANSIT_OUT, then what was lost on the way.
-- Returns the shipment; a retry with the same key returns it as it is now.
create or replace function inventory.write_off_transfer(
  shipment_id uuid,
  reason text,
  qty integer default null,
  idempotency_key text default null
) returns inventory.transit_shipments
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_shipment inventory.transit_shipments := inventory._transit_shipment(write_off_transfer.shipment_id, false);
  v_from inventory.stock_levels;
  v_qty integer;
begin
  if write_off_transfer.qty <= 0 then
    perform inventory._raise('IV005', format('qty must be a positive integer or null (all in transit), got %s', write_off_transfer.qty),
      jsonb_build_object('argument', 'qty'));
  end if;
  perform inventory._require_text(write_off_transfer.reason, 'reason', 'reason');
  if write_off_transfer.idempotency_key is not null
     and not inventory._claim_operation_key(write_off_transfer.idempotency_key, 'write_off_transfer',
           concat_ws(chr(31), v_shipment.id, coalesce(write_off_transfer.qty::text, 'all'), write_off_transfer.reason)) then
    return inventory._transit_shipment(v_shipment.id, false);
  end if;

  -- The stock row, then the shipment (see _transit_shipment). The source row
  -- exists: shipping wrote a movement on it, and stock rows are never deleted.
  v_from := inventory._locked_stock_row(v_shipment.product_id, v_shipment.from_warehouse_id, false);
  v_shipment := inventory._transit_shipment(v_shipment.id, true);
  v_qty := coalesce(write_off_transfer.qty, v_shipment.qty_in_transit);
  perform inventory._check_in_transit(v_shipment, v_qty, 'write off');
  perform inventory._record_movement(v_from, 'TRANSIT_LOST', 0, write_off_transfer.reason, v_shipment.reference,
    write_off_transfer.idempotency_key, -v_qty);
  update inventory.transit_shipments s
  set qty_lost = s.qty_lost + v_qty, updated_at = clock_timestamp(),
      closed_at = case when s.qty_in_transit = v_qty then clock_timestamp() end
  where s.id = v_shipment.id
  returning * into v_shipment;
  return v_shipment;
end
$$;
comment on function inventory.write_off_transfer(uuid, text, integer, text) is
  'Write off units of a shipment that will not arrive (TRANSIT_LOST on the source row, on_hand unchanged); qty null: all in transit; returns the shipment';
