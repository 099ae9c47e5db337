-- The lines argument of create_inbound (p_dated) and receive_inbound, checked
-- and resolved, one row per line in input order:
--   create_inbound:  [{"sku", "warehouse", "qty", "expected_at"?}]: the
--                    warehouse is required (inbound arrives somewhere); a
--                    line without expected_at takes p_expected_at; one of the
--                    two must give a finite date;
--   receive_inbound: [{"sku", "warehouse"?, "qty"}]: the warehouse may be left
--                    out (the caller resolves it against the shipment).
-- sku, warehouse and qty are checked as reserve() checks them (_line_check);
-- a problem is IV005 naming the line (from 1) and field, before anything is
-- looked up; an unknown sku or warehouse is IV004, a kit IV005 (it holds no
-- stock of its own: its components arrive).
create or replace function inventory._inbound_request_lines(p_lines jsonb, p_dated boolean, p_expected_at timestamptz)
returns table (line integer, product_id uuid, warehouse_id uuid, qty integer, expected_at timestamptz)
language plpgsql stable
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  c_shape constant text := case when p_dated then '[{"sku": "A", "warehouse": "WH1", "qty": 10, "expected_at": "2027-01-15"}]'
                                else '[{"sku": "A", "warehouse": "WH1", "qty": 10}]' end;
  v_line jsonb;
  v_problem jsonb;
  v_at timestamptz;
  v_n integer;
begin
  if jsonb_typeof(p_lines) is distinct from 'array' or jsonb_array_length(p_lines) = 0 then
    perform inventory._raise('IV005', 'lines must be a non-empty array like ' || c_shape, jsonb_build_object('argument', 'lines'));
  end if;
  if jsonb_array_length(p_lines) > 1000 then
    perform inventory._raise('IV005', format('lines may hold at most 1000 lines, got %s', jsonb_array_length(p_lines)),
      jsonb_build_object('argument', 'lines', 'max', 1000), 'Split the shipment.');
  end if;
  -- First every line's form, so nothing is looked up for a malformed request.
  for v_line, v_n in select e, o::integer from jsonb_array_elements(p_lines) with ordinality x(e, o) loop
    v_problem := inventory._inbound_line_problem(v_line, p_dated, p_expected_at);
    if v_problem is not null then
      perform inventory._raise('IV005', format('line %s of lines: %s', v_n, v_problem ->> 'problem'),
        jsonb_build_object('argument', 'lines', 'line', v_n) || (v_problem - 'problem'));
    end if;
  end loop;
  for v_line, v_n in select e, o::integer from jsonb_array_elements(p_lines) with ordinality x(e, o) loop
    v_at := null;
    if p_dated then
      v_at := coalesce((v_line ->> 'expected_at')::timestamptz, p_expected_at);
    end if;
    line := v_n;
    product_id := inventory._stocked_product_id(v_line ->> 'sku');
    warehouse_id := case when v_line ->> 'warehouse' is not null then inventory._warehouse_id(v_line ->> 'warehouse') end;
    qty := (v_line ->> 'qty')::integer;
    expected_at := v_at;
    return next;
  end loop;
end
$$;
comment on function inventory._inbound_request_lines(jsonb, boolean, timestamptz) is
  'Internal: the lines of create_inbound / receive_inbound, checked (IV005 naming the line) and resolved to ids';
