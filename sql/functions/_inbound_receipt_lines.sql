-- receive_inbound's lines resolved against the shipment:
-- [{"product_id", "warehouse_id", "qty"}], one per line of the shipment
-- (repeated lines summed). A line without a warehouse means the one
-- warehouse the shipment expects that sku at; a line the shipment does not
-- have, or one that could be at several warehouses, is IV005 naming every
-- such line: the request is wrong, nothing is received.
create or replace function inventory._inbound_receipt_lines(p_shipment inventory.inbound_shipments, p_lines jsonb) returns jsonb
language plpgsql stable
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_asked jsonb;
  v_problems jsonb;
begin
  select jsonb_agg(jsonb_build_object('line', a.line, 'product_id', a.product_id, 'qty', a.qty,
                                      'warehouse_id', coalesce(a.warehouse_id, m.warehouse_id), 'matches', m.matches, 'warehouses', m.warehouses))
  into v_asked
  from inventory._inbound_request_lines(p_lines, false, null) a
  cross join lateral (
    select count(*) as matches, min(l.warehouse_id::text)::uuid as warehouse_id,
           coalesce(jsonb_agg(w.code order by w.code), '[]') as warehouses
    from inventory.inbound_lines l join inventory.warehouses w on w.id = l.warehouse_id
    where l.shipment_id = p_shipment.id and l.product_id = a.product_id and (a.warehouse_id is null or l.warehouse_id = a.warehouse_id)
  ) m;

  select jsonb_agg(jsonb_build_object('line', (x ->> 'line')::integer, 'sku', p.sku, 'warehouse', w.code, 'expected_at_warehouses',
                                      (select coalesce(jsonb_agg(w2.code order by w2.code), '[]')
                                       from inventory.inbound_lines l join inventory.warehouses w2 on w2.id = l.warehouse_id
                                       where l.shipment_id = p_shipment.id and l.product_id = p.id))
                   order by (x ->> 'line')::integer)
  into v_problems
  from jsonb_array_elements(v_asked) x
  join inventory.products p on p.id = (x ->> 'product_id')::uuid
  left join inventory.warehouses w on w.id = (x ->> 'warehouse_id')::uuid and (x ->> 'matches')::integer = 1
  where (x ->> 'matches')::integer <> 1;
  if v_problems is not null then
    perform inventory._raise('IV005',
      format('inbound shipment %s (%s) cannot take %s', p_shipment.id, inventory._clip(p_shipment.reference),
        (select string_agg(case jsonb_array_length(x -> 'expected_at_warehouses')
                             when 0 then format('line %s: it expects no %s', x ->> 'line', inventory._clip(x ->> 'sku'))
                             when 1 then format('line %s: it expects %s at %s only', x ->> 'line', inventory._clip(x ->> 'sku'),
                                                inventory._clip(x -> 'expected_at_warehouses' ->> 0))
                             else format('line %s: it expects %s at %s, say which', x ->> 'line', inventory._clip(x ->> 'sku'),
                                         (select string_agg(inventory._clip(c), ', ') from jsonb_array_elements_text(x -> 'expected_at_warehouses') c))
                           end, '; ')
         from jsonb_array_elements(v_problems) x)),
      jsonb_build_object('argument', 'lines', 'inbound_id', p_shipment.id, 'lines', v_problems),
      'Nothing was received. inventory.inbound(sku) shows what each shipment expects where; receive units it does not expect with inventory.adjust.');
  end if;

  return (select jsonb_agg(jsonb_build_object('product_id', product_id, 'warehouse_id', warehouse_id, 'qty', qty))
          from (select (x ->> 'product_id')::uuid as product_id, (x ->> 'warehouse_id')::uuid as warehouse_id, sum((x ->> 'qty')::bigint) as qty
                from jsonb_array_elements(v_asked) x group by 1, 2) t);
end
$$;
comment on function inventory._inbound_receipt_lines(inventory.inbound_shipments, jsonb) is
  'Internal: receive_inbound''s lines resolved to the shipment''s lines (IV005 for lines it does not have)';
