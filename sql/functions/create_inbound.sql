-- create_inbound(reference, lines, kind, idempotency_key, expected_at): stock
-- on its way, a purchase order (kind PURCHASE, the default) or a customer
-- return (RETURN): per line, qty units of a sku expected at a warehouse by
-- expected_at (the line's, else the expected_at argument). One line per sku
-- and warehouse (a second delivery date is a second shipment). Nothing moves
-- on a stock row until receive_inbound; available_to_promise counts the
-- units from their date. Returns the shipment (status OPEN).
-- With an idempotency key, a retry of the same request returns the first
-- shipment; the key with another request is IV006.
create or replace function inventory.create_inbound(
  reference text,
  lines jsonb,
  kind text default 'PURCHASE',
  idempotency_key text default null,
  expected_at timestamptz default null
) returns inventory.inbound_shipments
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  c_kinds constant text[] := array['PURCHASE', 'RETURN'];
  v_lines jsonb;
  v_duplicates jsonb;
  v_hash text;
  v_shipment inventory.inbound_shipments;
begin
  perform inventory._require_text(create_inbound.reference, 'reference', 'reference');
  if create_inbound.kind is null or not (create_inbound.kind = any (c_kinds)) then
    perform inventory._raise('IV005', format('kind must be PURCHASE or RETURN; got %s', inventory._quote(create_inbound.kind)),
      jsonb_build_object('argument', 'kind', 'accepted', to_jsonb(c_kinds)));
  end if;
  if create_inbound.idempotency_key is not null then
    if btrim(create_inbound.idempotency_key) = '' then
      perform inventory._raise('IV005', 'idempotency_key must be null or a non-empty text', jsonb_build_object('argument', 'idempotency_key'));
    end if;
    perform inventory._check_length(create_inbound.idempotency_key, 'idempotency_key', 'idempotency_key');
  end if;
  select jsonb_agg(to_jsonb(l) order by l.line) into v_lines
  from inventory._inbound_request_lines(create_inbound.lines, true, create_inbound.expected_at) l;

  select jsonb_agg(jsonb_build_object('sku', p.sku, 'warehouse', w.code, 'lines', d.lines) order by p.sku, w.code) into v_duplicates
  from (select (l ->> 'product_id')::uuid as product_id, (l ->> 'warehouse_id')::uuid as warehouse_id, jsonb_agg((l ->> 'line')::integer) as lines
        from jsonb_array_elements(v_lines) l group by 1, 2 having count(*) > 1) d
  join inventory.products p on p.id = d.product_id
  join inventory.warehouses w on w.id = d.warehouse_id;
  if v_duplicates is not null then
    perform inventory._raise('IV005',
      format('lines name %s at %s more than once (lines %s); a shipment has one line per sku and warehouse',
        inventory._clip(v_duplicates -> 0 ->> 'sku'), inventory._clip(v_duplicates -> 0 ->> 'warehouse'), v_duplicates -> 0 -> 'lines'),
      jsonb_build_object('argument', 'lines', 'duplicates', v_duplicates),
      'Add the quantities up into one line; units expected on another date are another shipment.');
  end if;

  -- The request as resolved: the same reference, kind and lines (in any order) are the same request
  -- (dates as epochs: the text of a timestamptz depends on the session's TimeZone).
  v_hash := md5(concat_ws(chr(31), create_inbound.reference, create_inbound.kind,
    (select string_agg(concat_ws(',', l ->> 'product_id', l ->> 'warehouse_id', l ->> 'qty',
                                 extract(epoch from (l ->> 'expected_at')::timestamptz)), ';'
                       order by l ->> 'product_id', l ->> 'warehouse_id')
     from jsonb_array_elements(v_lines) l)));
  insert into inventory.inbound_shipments (reference, kind, idempotency_key, request_hash, created_by)
  values (create_inbound.reference, create_inbound.kind, create_inbound.idempotency_key, v_hash, inventory._actor())
  on conflict (idempotency_key) where idempotency_key is not null do nothing
  returning * into v_shipment;
  if v_shipment.id is null then
    -- The key was used before (a concurrent first call with it has committed by now).
    select * into v_shipment from inventory.inbound_shipments s where s.idempotency_key = create_inbound.idempotency_key;
    if v_shipment.request_hash is distinct from v_hash then
      perform inventory._raise('IV006',
        format('idempotency key %s was already used for inbound shipment %s with a different request',
          inventory._quote(create_inbound.idempotency_key), v_shipment.id),
        jsonb_build_object('idempotency_key', inventory._clip(create_inbound.idempotency_key), 'inbound_id', v_shipment.id,
                           'reference', inventory._clip(v_shipment.reference)),
        'Use a new idempotency key for a different request; retry with the same reference, kind and lines to get the first result.');
    end if;
    return v_shipment;
  end if;

  insert into inventory.inbound_lines (shipment_id, product_id, warehouse_id, qty_expected, expected_at)
  select v_shipment.id, (l ->> 'product_id')::uuid, (l ->> 'warehouse_id')::uuid, (l ->> 'qty')::integer, (l ->> 'expected_at')::timestamptz
  from jsonb_array_elements(v_lines) l;
  return v_shipment;
end
$$;
comment on function inventory.create_inbound(text, jsonb, text, text, timestamptz) is
  'Stock on its way (a purchase order or a return): qty per sku and warehouse, expected by a date; optional idempotency key';
