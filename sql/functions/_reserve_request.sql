-- (Its first form took no resolved ids; an overload would make calls ambiguous.)
drop function if exists inventory._reserve_request(text, jsonb, interval, text, text);

-- Checks and resolves one reserve() request without raising: the first
-- problem, in argument order, comes back in .error, so that reserve() can
-- raise it and reserve_many() can answer it to that request alone. Lines are
-- summed per stock row (repeated lines count together) in key order; a line
-- without a warehouse keeps warehouse_id null for allocation. A kit line
-- becomes its components' lines (r.kits keeps it as asked).
create or replace function inventory._reserve_request(
  p_order_ref text,
  p_lines jsonb,
  p_ttl interval,
  p_idempotency_key text,
  p_actor text,
  -- Already resolved, by a caller with many requests (reserve_many): the ids
  -- of these skus and warehouse codes; a one-line request then needs no
  -- statement of its own. Null: look them up.
  p_known_skus text[] default null,
  p_known_product_ids uuid[] default null,
  p_known_codes text[] default null,
  p_known_warehouse_ids uuid[] default null
) returns inventory._reserve_request
language plpgsql stable
as $$
declare
  r inventory._reserve_request;
  v_problem jsonb;
  v_line_number integer;
  v_unknown_skus text[];
  v_unknown_warehouses text[];
  v_too_much boolean;
  v_product_id uuid;
  v_warehouse_id uuid;
  v_has_kit boolean;
begin
  r.order_ref := p_order_ref;
  r.ttl := p_ttl;
  r.idempotency_key := p_idempotency_key;
  r.actor := p_actor;
  if p_order_ref is null or btrim(p_order_ref) = '' then
    r.error := row('IV005', 'order_ref must be a non-empty text', jsonb_build_object('argument', 'order_ref'), null);
    return r;
  end if;
  if length(p_order_ref) > inventory._max_length('order_ref') then
    r.error := inventory._length_error(p_order_ref, 'order_ref', 'order_ref');
    return r;
  end if;
  r.error := inventory._ttl_error(p_ttl);
  if (r.error).code is not null then
    return r;
  end if;
  if p_idempotency_key is not null and btrim(p_idempotency_key) = '' then
    r.error := row('IV005', 'idempotency_key must be null or a non-empty text', jsonb_build_object('argument', 'idempotency_key'), null);
    return r;
  end if;
  if length(p_idempotency_key) > inventory._max_length('idempotency_key') then
    r.error := inventory._length_error(p_idempotency_key, 'idempotency_key', 'idempotency_key');
    return r;
  end if;
  if p_lines is null or jsonb_typeof(p_lines) <> 'array' or jsonb_array_length(p_lines) = 0 then
    r.error := row('IV005', 'lines must be a non-empty JSON array of {"sku", "warehouse", "qty"} objects',
      jsonb_build_object('argument', 'lines', 'got', inventory._clip(coalesce(p_lines::text, 'null'))),
      'Example: [{"sku": "A", "warehouse": "WH1", "qty": 2}, {"sku": "B", "qty": 1}]');
    return r;
  end if;
  if jsonb_array_length(p_lines) > 1000 then
    r.error := row('IV005', format('lines holds %s entries; at most 1000 fit one reservation', jsonb_array_length(p_lines)),
      jsonb_build_object('argument', 'lines'), null);
    return r;
  end if;

  if jsonb_array_length(p_lines) = 1 then
    v_problem := inventory._line_check(p_lines -> 0);
    v_line_number := 1;
  else
    select problem, n into v_problem, v_line_number
    from (select n, inventory._line_check(e) as problem
          from jsonb_array_elements(p_lines) with ordinality as x(e, n)) checked
    where problem is not null
    order by problem ? 'problem' desc, n -- (a channel line's {"channel": true} after every problem)
    limit 1;
  end if;
  if v_problem is not null then
    if v_problem ? 'problem' then
      r.error := row('IV005', format('invalid reservation line %s: %s', v_line_number, v_problem ->> 'problem'),
        jsonb_build_object('argument', 'lines', 'line', v_line_number) || (v_problem - 'problem'),
        'Each line is {"sku": text, "warehouse": text (optional), "qty": positive integer, "channel": text (optional), "region": text (optional)}.');
      return r;
    end if;
    -- Well formed, and some line names a channel: _channel_request resolves
    -- the channels and calls back here with the lines without them.
    return inventory._channel_request(r, p_lines, p_known_skus, p_known_product_ids, p_known_codes, p_known_warehouse_ids);
  end if;

  -- One line naming its warehouse (the common case): two index probes.
  if jsonb_array_length(p_lines) = 1 and jsonb_typeof(p_lines -> 0 -> 'warehouse') = 'string' then
    if p_known_skus is not null then
      v_product_id := p_known_product_ids[array_position(p_known_skus, p_lines -> 0 ->> 'sku')];
      v_warehouse_id := p_known_warehouse_ids[array_position(p_known_codes, p_lines -> 0 ->> 'warehouse')];
    else
      select (select p.id from inventory.products p where p.sku = p_lines -> 0 ->> 'sku' and not p.is_kit),
             (select w.id from inventory.warehouses w where w.code = p_lines -> 0 ->> 'warehouse')
      into v_product_id, v_warehouse_id;
    end if;
    -- A kit, or a sku the caller did not know (a kit is never among them):
    -- the general path below finds out which.
    if v_product_id is null and (p_known_skus is not null
        or exists (select from inventory.products p where p.sku = p_lines -> 0 ->> 'sku')) then
      v_product_id := null; -- (falls through)
    elsif v_product_id is null or v_warehouse_id is null then
      r.error := inventory._unknown_error(
        case when v_product_id is null then array[p_lines -> 0 ->> 'sku'] end,
        case when v_warehouse_id is null then array[p_lines -> 0 ->> 'warehouse'] end);
      return r;
    end if;
    if v_product_id is not null then
      r.lines := array[row(v_product_id, v_warehouse_id, (p_lines -> 0 ->> 'qty')::numeric)::inventory._line];
      r.has_open_line := false;
      if p_idempotency_key is not null then
        r.request_hash := inventory._request_hash(p_order_ref, p_ttl, r.lines);
      end if;
      return r;
    end if;
  end if;

  select
    array_agg(row(p.id, w.id, l.qty)::inventory._line order by p.id, w.id nulls last)
      filter (where p.id is not null and (l.warehouse is null or w.id is not null)),
    array_agg(distinct l.sku) filter (where p.id is null),
    array_agg(distinct l.warehouse) filter (where l.warehouse is not null and w.id is null),
    coalesce(bool_or(l.warehouse is null), false),
    coalesce(bool_or(l.qty > 2147483647), false),
    coalesce(bool_or(p.is_kit), false)
  into r.lines, v_unknown_skus, v_unknown_warehouses, r.has_open_line, v_too_much, v_has_kit
  from (
    select e ->> 'sku' as sku, e ->> 'warehouse' as warehouse, sum((e ->> 'qty')::numeric)::bigint as qty
    from jsonb_array_elements(p_lines) e
    group by 1, 2
  ) l
  -- One index probe per line, whatever the planner guesses a JSON array holds
  -- (limit 1 keeps these subqueries from being flattened into a hash join).
  left join lateral (select p.id, p.is_kit from inventory.products p where p.sku = l.sku limit 1) p on true
  left join lateral (select w.id from inventory.warehouses w where w.code = l.warehouse limit 1) w on true;
  if v_unknown_skus is not null or v_unknown_warehouses is not null then
    r.error := inventory._unknown_error(v_unknown_skus, v_unknown_warehouses);
    return r;
  end if;
  -- Kit lines become their components' lines (qty × units per kit, same
  -- warehouse or the same open choice), summed with the other lines per
  -- stock row: two lines sharing a component take it together. r.kits keeps
  -- the kit lines as asked.
  if v_has_kit then
    r.kits := array(select row(l.product_id, l.warehouse_id, l.qty)::inventory._line
                    from unnest(r.lines) l join inventory.products p on p.id = l.product_id
                    where p.is_kit order by l.product_id, l.warehouse_id nulls last);
    select array_agg(row(x.product_id, x.warehouse_id, x.qty)::inventory._line order by x.product_id, x.warehouse_id nulls last),
           coalesce(bool_or(x.qty > 2147483647), false)
    into r.lines, v_too_much
    from (
      select e.product_id, e.warehouse_id, sum(e.qty)::bigint as qty
      from (
        select l.product_id, l.warehouse_id, l.qty::numeric as qty
        from unnest(r.lines) l where l.product_id <> all (array(select k.product_id from unnest(r.kits) k))
        union all
        select c.component_id, k.warehouse_id, k.qty::numeric * c.qty
        from unnest(r.kits) k join inventory.kit_components c on c.kit_id = k.product_id
      ) e
      group by e.product_id, e.warehouse_id
    ) x;
  end if;
  if v_too_much then
    r.error := row('IV005', 'the summed qty of one sku in one warehouse exceeds 2147483647',
      jsonb_build_object('argument', 'lines'), null);
    return r;
  end if;
  if p_idempotency_key is not null then
    -- (The kit lines too: a kit and its components asked one by one are different requests.)
    r.request_hash := inventory._request_hash(p_order_ref, p_ttl, r.lines || coalesce(r.kits, '{}'));
  end if;
  return r;
end
$$;
comment on function inventory._reserve_request(text, jsonb, interval, text, text, text[], uuid[], text[], uuid[]) is
  'Internal: check and resolve one reserve() request; the first problem is returned, not raised';
