-- set_kit(sku, components, low_stock_threshold): make a product a kit of
-- components, or change what an existing kit is made of. components is the
-- whole new definition, a JSON array of {"sku": text, "qty": positive integer}
-- (units of that component per kit). See README "Kits".
-- Refused (IV005, nothing changed):
--   - a component that is itself a kit, or a kit made a component (kits are
--     one level deep: nesting is refused, not bounded);
--   - the kit among its own components, a component named twice, an empty or
--     over-long list (at most 100 components);
--   - a product that holds stock of its own (a kit's stock is its components').
-- Refused with IV003: removing a component while a HELD reservation holds
-- the kit (its lines hold that component; release or confirm it first).
-- Definitions change under an exclusive advisory lock per kit, which reserve()
-- takes shared for the kits it expands: a reserve sees one definition whole.
create or replace function inventory.set_kit(
  sku text,
  components jsonb,
  low_stock_threshold integer default 0
) returns inventory.kits
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_kit_id uuid := inventory._product_id(set_kit.sku);
  v_problem text;
  v_unknown text[];
  v_nested text[];
  v_removed text[];
  v_held integer;
  v_stock jsonb;
  v_kit inventory.kits;
begin
  if set_kit.low_stock_threshold is null or set_kit.low_stock_threshold < 0 then
    perform inventory._raise('IV005', format('low_stock_threshold must be zero or more, got %s', coalesce(set_kit.low_stock_threshold::text, 'null')),
      jsonb_build_object('argument', 'low_stock_threshold'));
  end if;
  if set_kit.components is null or jsonb_typeof(set_kit.components) <> 'array' or jsonb_array_length(set_kit.components) = 0 then
    perform inventory._raise('IV005', 'components must be a non-empty JSON array of {"sku", "qty"} objects',
      jsonb_build_object('argument', 'components'), 'Example: [{"sku": "LENS", "qty": 1}, {"sku": "CAP", "qty": 2}]');
  end if;
  if jsonb_array_length(set_kit.components) > 100 then
    perform inventory._raise('IV005', format('components holds %s entries; a kit has at most 100', jsonb_array_length(set_kit.components)),
      jsonb_build_object('argument', 'components'));
  end if;
  select format('component %s: %s', n, problem) into v_problem
  from (
    select n, case
      when jsonb_typeof(e) <> 'object' then 'must be an object like {"sku": "A", "qty": 2}'
      when jsonb_typeof(e -> 'sku') is distinct from 'string' or btrim(e ->> 'sku') = '' then '"sku" must be a non-empty string'
      when length(e ->> 'sku') > inventory._max_length('sku') then format('"sku" must be at most %s characters', inventory._max_length('sku'))
      when jsonb_typeof(e -> 'qty') is distinct from 'number' or (e ->> 'qty')::numeric not between 1 and 100000
           or (e ->> 'qty')::numeric <> trunc((e ->> 'qty')::numeric) then
        format('"qty" must be an integer from 1 to 100000, got %s', coalesce(inventory._clip((e -> 'qty')::text), 'nothing'))
      when (e - 'sku' - 'qty') <> '{}'::jsonb then 'a component has only "sku" and "qty"'
      when e ->> 'sku' = set_kit.sku then 'a kit cannot be a component of itself'
      when count(*) over (partition by e ->> 'sku') > 1 then format('%s is named more than once', inventory._quote(e ->> 'sku'))
    end as problem
    from jsonb_array_elements(set_kit.components) with ordinality x(e, n)
  ) checked
  where problem is not null
  order by n limit 1;
  if v_problem is not null then
    perform inventory._raise('IV005', 'invalid kit ' || v_problem, jsonb_build_object('argument', 'components'),
      'Each component is {"sku": text, "qty": integer from 1 to 100000}, each sku once.');
  end if;

  perform pg_advisory_xact_lock(inventory._kit_lock_key(v_kit_id));
  select array_agg(e ->> 'sku' order by n) filter (where p.id is null),
         array_agg(e ->> 'sku' order by n) filter (where p.is_kit)
  into v_unknown, v_nested
  from jsonb_array_elements(set_kit.components) with ordinality x(e, n)
  left join inventory.products p on p.sku = e ->> 'sku';
  if v_unknown is not null then
    perform inventory._raise('IV004', format('unknown component sku(s) %s', inventory._clip(array_to_string(v_unknown, ', '))),
      jsonb_build_object('skus', to_jsonb(v_unknown)), 'Create them first with inventory.upsert_product(sku, name).');
  end if;
  if v_nested is not null then
    perform inventory._raise('IV005', format('%s is a kit: kits cannot be nested (a component must be a stocked product)',
        inventory._clip(array_to_string(v_nested, ', '))),
      jsonb_build_object('argument', 'components', 'kits', to_jsonb(v_nested)),
      'List the inner kit''s components in this kit instead.');
  end if;
  if exists (select from inventory.kit_components c where c.component_id = v_kit_id) then
    perform inventory._raise('IV005', format('%s is a component of kit(s) %s: kits cannot be nested', inventory._quote(set_kit.sku),
        (select string_agg(p.sku, ', ' order by p.sku) from inventory.kit_components c join inventory.products p on p.id = c.kit_id
         where c.component_id = v_kit_id)),
      jsonb_build_object('argument', 'sku'));
  end if;
  select jsonb_agg(jsonb_build_object('warehouse', w.code, 'on_hand', s.on_hand, 'reserved', s.reserved, 'backordered', s.backordered) order by w.code)
  into v_stock
  from inventory.stock_levels s join inventory.warehouses w on w.id = s.warehouse_id
  where s.product_id = v_kit_id and (s.on_hand > 0 or s.reserved > 0 or s.backordered > 0);
  if v_stock is not null then
    perform inventory._raise('IV005', format('%s holds stock of its own; a kit''s stock is its components''', inventory._quote(set_kit.sku)),
      jsonb_build_object('argument', 'sku', 'stock', v_stock),
      'Adjust or transfer that stock out first (inventory.adjust with a negative delta).');
  end if;

  -- Components this definition drops, while HELD reservations hold the kit.
  select array_agg(p.sku order by p.sku) into v_removed
  from inventory.kit_components c join inventory.products p on p.id = c.component_id
  where c.kit_id = v_kit_id
    and not exists (select from jsonb_array_elements(set_kit.components) e where e ->> 'sku' = p.sku);
  if v_removed is not null then
    select count(distinct r.id) into v_held
    from inventory.reservation_kits k join inventory.reservations r on r.id = k.reservation_id
    where k.kit_id = v_kit_id and k.qty > 0 and r.status = 'HELD';
    if v_held > 0 then
      perform inventory._raise('IV003',
        format('cannot remove component(s) %s of kit %s: %s HELD reservation(s) hold the kit',
          inventory._clip(array_to_string(v_removed, ', ')), inventory._quote(set_kit.sku), v_held),
        jsonb_build_object('sku', inventory._clip(set_kit.sku), 'components', to_jsonb(v_removed), 'held_reservations', v_held),
        'Wait until they are confirmed, released or expired, or change only quantities and add components.');
    end if;
  end if;

  insert into inventory.kits as k (product_id, low_stock_threshold)
  values (v_kit_id, set_kit.low_stock_threshold)
  on conflict (product_id) do update
    set low_stock_threshold = excluded.low_stock_threshold, version = k.version + 1, updated_at = now()
  returning * into v_kit;
  update inventory.products set is_kit = true, updated_at = now() where id = v_kit_id and not is_kit;
  delete from inventory.kit_components c
  where c.kit_id = v_kit_id
    and c.component_id not in (select p.id from jsonb_array_elements(set_kit.components) e join inventory.products p on p.sku = e ->> 'sku');
  insert into inventory.kit_components as c (kit_id, component_id, qty)
  select v_kit_id, p.id, (e ->> 'qty')::integer
  from jsonb_array_elements(set_kit.components) e join inventory.products p on p.sku = e ->> 'sku'
  on conflict (kit_id, component_id) do update set qty = excluded.qty where c.qty <> excluded.qty;
  return v_kit;
end
$$;
comment on function inventory.set_kit(text, jsonb, integer) is
  'Make a product a kit of components, or redefine it: [{"sku": "LENS", "qty": 1}, ...]; nesting refused; a component held by HELD reservations of the kit cannot be removed';
