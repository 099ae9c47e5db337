-- channel_stock(skus, channel): what a channel can sell of each sku (README
-- "Sales channels"): a row per stock row of the sku in the channel's
-- warehouses, in the channel's order (priority, then code), after a total
-- row (warehouse and priority null) with the sums over them. A known sku
-- without stock in the channel's warehouses has its total row, of zeros.
-- A kit has the kit rule's rows (inventory._kit_rows) in the channel's
-- warehouses, and a total row by the same rule over the channel's
-- warehouses only: min over components of floor(Σ available there / qty), as
-- a kit line through the channel allocates its components among them.
-- Unknown skus have no rows (as in stock()). An unknown channel is IV004.
create or replace function inventory.channel_stock(skus text[], channel text)
returns table (sku text, warehouse text, priority integer, on_hand integer, available integer)
language plpgsql stable security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_channel_id uuid;
begin
  if channel_stock.skus is null then
    perform inventory._raise('IV005', 'skus must be an array of sku texts', jsonb_build_object('argument', 'skus'));
  end if;
  perform inventory._require_text(channel_stock.channel, 'channel', 'channel');
  select c.id into v_channel_id from inventory.channels c where c.code = channel_stock.channel;
  if v_channel_id is null then
    perform inventory._raise('IV004', format('unknown channel %s', inventory._quote(channel_stock.channel)),
      jsonb_build_object('unknown_channels', jsonb_build_array(inventory._clip(channel_stock.channel))),
      'Create channels with inventory.upsert_channel(code, name, strategy).');
  end if;
  return query
    with product as (
      select p.id, p.sku
      from (select distinct q.sku from unnest(channel_stock.skus) q(sku)) q
      join inventory.products p on p.sku = q.sku and not p.is_kit
    ),
    row_ as (
      select p.sku, w.code, cw.priority, s.on_hand, greatest(s.on_hand - s.reserved - s.safety_stock - s.unavailable, 0) as available
      from product p
      join inventory.stock_levels s on s.product_id = p.id
      join inventory.channel_warehouses cw on cw.channel_id = v_channel_id and cw.warehouse_id = s.warehouse_id
      join inventory.warehouses w on w.id = s.warehouse_id
    ),
    kit as (
      select p.id, p.sku
      from (select distinct q.sku from unnest(channel_stock.skus) q(sku)) q
      join inventory.products p on p.sku = q.sku and p.is_kit
    ),
    kit_row as (
      select k.sku, w.code, cw.priority, r.on_hand, r.available
      from kit k
      cross join lateral inventory._kit_rows(array[k.id]) r
      join inventory.channel_warehouses cw on cw.channel_id = v_channel_id and cw.warehouse_id = r.warehouse_id
      join inventory.warehouses w on w.id = r.warehouse_id
    ),
    -- Each component's sums over the channel's warehouses, then the kit rule over them.
    kit_total as (
      select k.sku, min(coalesce(t.on_hand, 0) / c.qty)::integer as on_hand, min(coalesce(t.available, 0) / c.qty)::integer as available
      from kit k
      join inventory.kit_components c on c.kit_id = k.id
      left join lateral (
        select sum(s.on_hand) as on_hand, sum(greatest(s.on_hand - s.reserved - s.safety_stock - s.unavailable, 0)) as available
        from inventory.stock_levels s
        join inventory.channel_warehouses cw on cw.channel_id = v_channel_id and cw.warehouse_id = s.warehouse_id
        where s.product_id = c.component_id
      ) t on true
      group by k.sku
    )
    select x.sku, x.code, x.priority, x.on_hand, x.available
    from (
      select p.sku, null::text as code, null::integer as priority,
             coalesce((select sum(r.on_hand) from row_ r where r.sku = p.sku), 0)::integer as on_hand,
             coalesce((select sum(r.available) from row_ r where r.sku = p.sku), 0)::integer as available
      from product p
      union all
      select r.sku, r.code, r.priority, r.on_hand, r.available from row_ r
      union all
      select k.sku, null, null, k.on_hand, k.available from kit_total k
      union all
      select r.sku, r.code, r.priority, r.on_hand, r.available from kit_row r
    ) x
    order by x.sku, x.priority nulls first, x.code;
end
$$;
comment on function inventory.channel_stock(text[], text) is
  'What a channel can sell of each sku: per stock row in its warehouses (its order) after a total row (warehouse null)';
