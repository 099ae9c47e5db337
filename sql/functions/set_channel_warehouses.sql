-- set_channel_warehouses(channel, warehouses): the warehouses a channel sells
-- from, and its own order of them, replacing the ones it had. warehouses is
-- a JSON array of {"warehouse": code, "priority": integer (optional; lower
-- first, default its position in the array, from 1)}; [] leaves the channel
-- without warehouses (its lines are refused until it has some). Refused,
-- nothing changed: an unknown channel or warehouse (IV004, all of them), a
-- malformed entry or a warehouse named twice (IV005). Returns the channel.
-- A reserve running meanwhile uses the warehouses it read when it began.
create or replace function inventory.set_channel_warehouses(
  channel text,
  warehouses jsonb
) returns inventory.channels
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_channel inventory.channels;
  v_problem text;
  v_entry integer;
  v_unknown text[];
  v_twice text;
begin
  perform inventory._require_text(set_channel_warehouses.channel, 'channel', 'channel');
  if set_channel_warehouses.warehouses is null or jsonb_typeof(set_channel_warehouses.warehouses) <> 'array' then
    perform inventory._raise('IV005', 'warehouses must be a JSON array of {"warehouse", "priority"} objects',
      jsonb_build_object('argument', 'warehouses'), 'Example: [{"warehouse": "WH1", "priority": 1}, {"warehouse": "WH2", "priority": 2}]');
  end if;
  if jsonb_array_length(set_channel_warehouses.warehouses) > 1000 then
    perform inventory._raise('IV005', 'warehouses holds more than 1000 entries', jsonb_build_object('argument', 'warehouses'));
  end if;
  select n, problem into v_entry, v_problem
  from (
    select n, case
      when jsonb_typeof(e) <> 'object' then 'must be an object like {"warehouse": "WH1", "priority": 1}'
      when (e - 'warehouse' - 'priority') <> '{}'::jsonb then 'has fields other than "warehouse" and "priority"'
      when jsonb_typeof(e -> 'warehouse') is distinct from 'string' or btrim(e ->> 'warehouse') = '' then '"warehouse" must be a non-empty string'
      when length(e ->> 'warehouse') > inventory._max_length('warehouse') then
        format('"warehouse" must be at most %s characters', inventory._max_length('warehouse'))
      when jsonb_typeof(e -> 'priority') not in ('number', 'null') then '"priority" must be an integer, or left out'
      when jsonb_typeof(e -> 'priority') = 'number' and ((e ->> 'priority')::numeric <> trunc((e ->> 'priority')::numeric)
           or (e ->> 'priority')::numeric not between -2147483648 and 2147483647) then '"priority" must be an integer'
    end as problem
    from jsonb_array_elements(set_channel_warehouses.warehouses) with ordinality x(e, n)
  ) checked
  where problem is not null
  order by n
  limit 1;
  if v_problem is not null then
    perform inventory._raise('IV005', format('invalid warehouses entry %s: %s', v_entry, v_problem),
      jsonb_build_object('argument', 'warehouses', 'entry', v_entry));
  end if;
  select e ->> 'warehouse' into v_twice
  from jsonb_array_elements(set_channel_warehouses.warehouses) e
  group by 1 having count(*) > 1 order by 1 limit 1;
  if v_twice is not null then
    perform inventory._raise('IV005', format('warehouse %s is named twice', inventory._quote(v_twice)),
      jsonb_build_object('argument', 'warehouses', 'warehouse', inventory._clip(v_twice)));
  end if;

  select * into v_channel from inventory.channels c where c.code = set_channel_warehouses.channel for update;
  select array_agg(e ->> 'warehouse' order by n) into v_unknown
  from jsonb_array_elements(set_channel_warehouses.warehouses) with ordinality x(e, n)
  where not exists (select from inventory.warehouses w where w.code = e ->> 'warehouse');
  if v_channel.id is null or v_unknown is not null then
    perform inventory._raise('IV004',
      concat_ws('; ',
        case when v_channel.id is null then 'unknown channel ' || inventory._quote(set_channel_warehouses.channel) end,
        'unknown warehouse ' || (select string_agg(inventory._quote(s), ', ') from unnest(v_unknown) s)),
      jsonb_build_object(
        'unknown_channels', case when v_channel.id is null then jsonb_build_array(inventory._clip(set_channel_warehouses.channel)) else '[]' end,
        'unknown_warehouses', coalesce((select jsonb_agg(inventory._clip(s)) from unnest(v_unknown) s), '[]')),
      'Create channels with inventory.upsert_channel(code, name, strategy) and warehouses with inventory.upsert_warehouse(code).');
  end if;

  delete from inventory.channel_warehouses cw where cw.channel_id = v_channel.id;
  insert into inventory.channel_warehouses (channel_id, warehouse_id, priority)
  select v_channel.id, w.id, coalesce((e ->> 'priority')::numeric::integer, n::integer)
  from jsonb_array_elements(set_channel_warehouses.warehouses) with ordinality x(e, n)
  join inventory.warehouses w on w.code = e ->> 'warehouse';
  update inventory.channels c set updated_at = now() where c.id = v_channel.id returning * into v_channel;
  return v_channel;
end
$$;
comment on function inventory.set_channel_warehouses(text, jsonb) is
  'Set the warehouses a channel sells from and its order of them: [{"warehouse": "WH1", "priority": 1}, ...] (replaces the ones it had)';
