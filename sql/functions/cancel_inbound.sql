-- cancel_inbound(inbound_id, reason): the whole shipment will not come. Every
-- line becomes CANCELLED, and the shipment too. Only before anything of it
-- was received (IV003 after: what came is on the shelves and in the ledger;
-- close_inbound closes the rest short). Cancelling a CANCELLED shipment
-- returns it unchanged. Moves no stock.
create or replace function inventory.cancel_inbound(inbound_id uuid, reason text default 'CANCELLED')
returns inventory.inbound_shipments
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_shipment inventory.inbound_shipments;
  v_received bigint;
begin
  perform inventory._inbound_shipment(cancel_inbound.inbound_id);
  perform inventory._require_text(cancel_inbound.reason, 'reason', 'reason');
  v_shipment := inventory._locked_inbound(cancel_inbound.inbound_id);
  if v_shipment.status = 'CANCELLED' then
    return v_shipment;
  end if;
  select sum(l.qty_received) into v_received from inventory.inbound_lines l where l.shipment_id = v_shipment.id;
  if v_received > 0 then
    perform inventory._raise('IV003',
      format('cannot cancel inbound shipment %s (%s): %s unit(s) of it were received', v_shipment.id,
        inventory._clip(v_shipment.reference), v_received),
      jsonb_build_object('inbound_id', v_shipment.id, 'status', v_shipment.status, 'received', v_received),
      'Close what is still expected with inventory.close_inbound(inbound_id, reason); return received units with inventory.adjust.');
  end if;
  update inventory.inbound_lines l
  set status = 'CANCELLED', closed_reason = cancel_inbound.reason, updated_at = now()
  where l.shipment_id = v_shipment.id;
  return inventory._inbound_refresh(v_shipment.id);
end
$$;
comment on function inventory.cancel_inbound(uuid, text) is
  'The whole inbound shipment will not come: every line CANCELLED (IV003 once anything was received)';
