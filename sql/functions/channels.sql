-- channels(): every sales channel with its strategy, region and warehouses
-- (README "Sales channels"): warehouses is a JSON array of {"warehouse",
-- "priority", "region"} in the channel's order (priority, then code).
create or replace function inventory.channels()
returns table (code text, name text, strategy text, region text, warehouses jsonb)
language sql stable security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
  select c.code, c.name, c.strategy, c.region,
         coalesce((select jsonb_agg(jsonb_build_object('warehouse', w.code, 'priority', cw.priority, 'region', w.region)
                                    order by cw.priority, w.code)
                   from inventory.channel_warehouses cw join inventory.warehouses w on w.id = cw.warehouse_id
                   where cw.channel_id = c.id), '[]')
  from inventory.channels c
  order by c.code
$$;
comment on function inventory.channels() is
  'Sales channels: code, name, strategy, region and warehouses ([{"warehouse", "priority", "region"}] in the channel''s order)';
