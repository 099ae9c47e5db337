-- receive_inbound(inbound_id, lines, reason, allow_over_receipt, idempotency_key):
-- units of an inbound shipment arrived. Each line's units go on_hand with a
-- RECEIVE movement (through _record_movement, as adjust(): they fill the
-- row's waiting backorders first), reason the argument or "<reference>
-- received", reference "inbound:<id>". lines is [{"sku", "warehouse"?,
-- "qty"}] (a line may leave out the warehouse when the shipment expects that
-- sku at one warehouse only; repeated lines add up); null receives everything
-- still outstanding. A line becomes PARTIAL, then RECEIVED once qty_received
-- reaches qty_expected; the shipment's status follows (_inbound_refresh).
-- All lines or none:
--   IV003  a line is CANCELLED or CLOSED_SHORT: it expects nothing any more;
--   IV005  more than a line still expects (an over-receipt), listing every
--          such line, unless allow_over_receipt: then the extra units are
--          received too (qty_received > qty_expected, status RECEIVED);
--   IV005  a line the shipment does not have.
-- Retried with the same key and request, it returns the shipment as it is
-- now without receiving twice (the key space of adjust and transfer).
-- Locks: the stock rows in key order, then the shipment (_locked_inbound).
create or replace function inventory.receive_inbound(
  inbound_id uuid,
  lines jsonb default null,
  reason text default null,
  allow_over_receipt boolean default false,
  idempotency_key text default null
) returns inventory.inbound_shipments
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_shipment inventory.inbound_shipments := inventory._inbound_shipment(receive_inbound.inbound_id);
  v_reason text;
  v_wanted jsonb;
  v_line record;
  v_row inventory.stock_levels;
begin
  if receive_inbound.reason is not null then
    perform inventory._require_text(receive_inbound.reason, 'reason', 'reason');
  end if;
  if receive_inbound.allow_over_receipt is null then
    perform inventory._raise('IV005', 'allow_over_receipt must be true or false', jsonb_build_object('argument', 'allow_over_receipt'));
  end if;
  v_reason := coalesce(receive_inbound.reason, v_shipment.reference || ' received');
  if receive_inbound.lines is not null then
    v_wanted := inventory._inbound_receipt_lines(v_shipment, receive_inbound.lines);
  end if;
  if receive_inbound.idempotency_key is not null
     and not inventory._claim_operation_key(receive_inbound.idempotency_key, 'receive_inbound',
           concat_ws(chr(31), v_shipment.id, coalesce(inventory._lines_digest(receive_inbound.lines), 'outstanding'),
                     receive_inbound.reason, receive_inbound.allow_over_receipt)) then
    select * into v_shipment from inventory.inbound_shipments s where s.id = v_shipment.id;
    return v_shipment;
  end if;

  -- Lock what will change: the stock rows in key order, then the shipment.
  -- (Without lines: the rows of its open lines now. Lines are never added to
  -- a shipment and a closed line never reopens, so what is outstanding once
  -- the shipment is locked is on these rows or nowhere.)
  for v_line in
    select x.product_id, x.warehouse_id
    from jsonb_to_recordset(coalesce(v_wanted, inventory._inbound_outstanding(v_shipment.id))) x(product_id uuid, warehouse_id uuid)
    order by x.product_id, x.warehouse_id
  loop
    perform inventory._locked_stock_row(v_line.product_id, v_line.warehouse_id, true);
  end loop;
  v_shipment := inventory._locked_inbound(v_shipment.id);
  if receive_inbound.lines is null then
    v_wanted := inventory._inbound_outstanding(v_shipment.id);
    if v_wanted = '[]' then
      if v_shipment.status = 'RECEIVED' then
        return v_shipment; -- everything came: nothing to do
      end if;
      perform inventory._raise('IV003',
        format('inbound shipment %s (%s) is %s: it expects nothing more', v_shipment.id, inventory._clip(v_shipment.reference), v_shipment.status),
        jsonb_build_object('inbound_id', v_shipment.id, 'status', v_shipment.status),
        'Record units that came anyway with inventory.adjust(sku, warehouse, qty, reason).');
    end if;
  end if;
  perform inventory._inbound_receipt_check(v_shipment, v_wanted, receive_inbound.allow_over_receipt);

  for v_line in
    select x.product_id, x.warehouse_id, x.qty
    from jsonb_to_recordset(v_wanted) x(product_id uuid, warehouse_id uuid, qty bigint)
    order by x.product_id, x.warehouse_id
  loop
    v_row := inventory._locked_stock_row(v_line.product_id, v_line.warehouse_id, false);
    if v_row.on_hand + v_line.qty > 2147483647 then
      perform inventory._raise('IV005', format('receiving %s units would take on_hand past 2147483647', v_line.qty),
        jsonb_build_object('argument', 'lines', 'on_hand', v_row.on_hand));
    end if;
    perform inventory._record_movement(v_row, 'RECEIVE', v_line.qty::integer, v_reason, 'inbound:' || v_shipment.id, receive_inbound.idempotency_key);
    update inventory.inbound_lines l
    set qty_received = l.qty_received + v_line.qty,
        status = case when l.qty_received + v_line.qty >= l.qty_expected then 'RECEIVED' else 'PARTIAL' end,
        updated_at = now()
    where l.shipment_id = v_shipment.id and l.product_id = v_line.product_id and l.warehouse_id = v_line.warehouse_id;
  end loop;
  return inventory._inbound_refresh(v_shipment.id);
end
$$;
comment on function inventory.receive_inbound(uuid, jsonb, text, boolean, text) is
  'Units of an inbound shipment arrived: RECEIVE movements (filling waiting backorders), lines PARTIAL or RECEIVED; all lines or none; optional idempotency key';
