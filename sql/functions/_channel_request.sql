-- The channel part of a reserve() request (README "Sales channels"), for
-- _reserve_request when some line names a "channel": the lines without
-- their channel fields are checked and resolved as any request (by
-- _reserve_request, called back), then the channels:
--   - an unknown channel is IV004 (with the request's unknown skus and
--     warehouses, if any: detail unknown_channels);
--   - a line on a channel without warehouses, or naming a warehouse outside
--     its channel, is IV005 naming the line (its warehouse is the channel's
--     or it is refused: nothing else is checked);
--   - a line without a warehouse allocates its product (a kit: its
--     components) only among the channel's warehouses, in the order of its
--     strategy: r.ranks holds, per such product, every warehouse of the
--     channel with its sort keys (grp, priority, then most available, then
--     tiebreak, then code: see _allocate). One request allocates a product
--     left open by one channel and region only: lines leaving it open under
--     different ones (or under one and under none) are IV005.
-- A channel line's request digest covers its channels and regions too.
create or replace function inventory._channel_request(
  p_request inventory._reserve_request,
  p_lines jsonb,
  p_known_skus text[],
  p_known_product_ids uuid[],
  p_known_codes text[],
  p_known_warehouse_ids uuid[]
) returns inventory._reserve_request
language plpgsql stable
as $$
declare
  r inventory._reserve_request;
  v_unknown text[];
  v_line integer;
  v_lines integer[];
  v_channel text;
  v_warehouse text;
  v_sku text;
  v_empty boolean;
begin
  select array_agg(distinct l.channel) filter (where c.id is null)
  into v_unknown
  from (select e ->> 'channel' as channel from jsonb_array_elements(p_lines) e where e ->> 'channel' is not null) l
  left join inventory.channels c on c.code = l.channel;

  r := inventory._reserve_request(p_request.order_ref,
    (select jsonb_agg(e - 'channel' - 'region' order by n) from jsonb_array_elements(p_lines) with ordinality x(e, n)),
    p_request.ttl, p_request.idempotency_key, p_request.actor,
    p_known_skus, p_known_product_ids, p_known_codes, p_known_warehouse_ids);
  if v_unknown is not null and ((r.error).code is null or (r.error).code = 'IV004') then
    r.error := inventory._unknown_channel_error(r.error, v_unknown);
    return r;
  end if;
  if (r.error).code is not null then
    return r;
  end if;

  -- A channel without warehouses, or a warehouse outside the line's channel.
  select l.n, l.channel, l.warehouse, not exists (select from inventory.channel_warehouses cw where cw.channel_id = c.id)
  into v_line, v_channel, v_warehouse, v_empty
  from (select n, e ->> 'channel' as channel, e ->> 'warehouse' as warehouse
        from jsonb_array_elements(p_lines) with ordinality x(e, n) where e ->> 'channel' is not null) l
  join inventory.channels c on c.code = l.channel
  where not exists (select from inventory.channel_warehouses cw where cw.channel_id = c.id)
     or (l.warehouse is not null and not exists (
           select from inventory.channel_warehouses cw join inventory.warehouses w on w.id = cw.warehouse_id
           where cw.channel_id = c.id and w.code = l.warehouse))
  order by l.n
  limit 1;
  if v_line is not null then
    if v_empty then
      r.error := row('IV005', format('invalid reservation line %s: channel %s has no warehouses', v_line, inventory._quote(v_channel)),
        jsonb_build_object('argument', 'lines', 'line', v_line, 'channel', inventory._clip(v_channel)),
        'Give the channel its warehouses with inventory.set_channel_warehouses(channel, warehouses).')::inventory._error;
    else
      r.error := row('IV005', format('invalid reservation line %s: warehouse %s is not one of channel %s''s warehouses',
          v_line, inventory._quote(v_warehouse), inventory._quote(v_channel)),
        jsonb_build_object('argument', 'lines', 'line', v_line, 'channel', inventory._clip(v_channel), 'warehouse', inventory._clip(v_warehouse)),
        'Leave out the warehouse to allocate among the channel''s warehouses, or add it with inventory.set_channel_warehouses.')::inventory._error;
    end if;
    return r;
  end if;

  -- The scope of each product left open: its channel and, for NEAREST, the
  -- customer's region (the line's, else the channel's); none for a line
  -- without a channel.
  with open_line as (
    select n, e ->> 'sku' as sku, e ->> 'channel' as channel, e ->> 'region' as region
    from jsonb_array_elements(p_lines) with ordinality x(e, n)
    where e ->> 'warehouse' is null
  ),
  scope as (
    select l.n, l.sku, coalesce(k.component_id, p.id) as product_id, c.id as channel_id, c.strategy,
           case when c.strategy = 'NEAREST' then coalesce(l.region, c.region) end as region
    from open_line l
    join inventory.products p on p.sku = l.sku
    left join inventory.kit_components k on p.is_kit and k.kit_id = p.id
    left join inventory.channels c on c.code = l.channel
  ),
  conflict as (
    select s.product_id, array_agg(s.n order by s.n) as lines, min(s.sku) as sku
    from scope s
    group by s.product_id
    having count(distinct coalesce(s.channel_id::text, '') || '/' || coalesce(s.region, '')) > 1
  ),
  ranks as (
    select array_agg(row(s.product_id, cw.warehouse_id,
                         case when s.strategy = 'NEAREST' and w.region = s.region then 0
                              when s.strategy = 'NEAREST' then 1 else 0 end,
                         case when s.strategy = 'MOST_STOCK' then 0 else cw.priority end,
                         case when s.strategy = 'MOST_STOCK' then cw.priority else 0 end)::inventory._rank
                     order by s.product_id, cw.warehouse_id) as ranks
    from (select distinct s.product_id, s.channel_id, s.strategy, s.region from scope s where s.channel_id is not null) s
    join inventory.channel_warehouses cw on cw.channel_id = s.channel_id
    join inventory.warehouses w on w.id = cw.warehouse_id
  )
  select (select c.lines from conflict c order by c.lines[cardinality(c.lines)] limit 1),
         (select c.sku from conflict c order by c.lines[cardinality(c.lines)] limit 1),
         ranks.ranks
  into v_lines, v_sku, r.ranks
  from ranks;
  if v_lines is not null then
    r.ranks := null;
    r.error := row('IV005',
      format('invalid reservation line %s: lines %s leave the warehouse of %s open under different channels or regions; one request allocates a product by one channel',
        v_lines[cardinality(v_lines)], array_to_string(v_lines, ', '), inventory._quote(v_sku)),
      jsonb_build_object('argument', 'lines', 'line', v_lines[cardinality(v_lines)], 'lines', to_jsonb(v_lines), 'sku', inventory._clip(v_sku)),
      'Give these lines the same channel and region, or name their warehouses.')::inventory._error;
    return r;
  end if;

  -- (Lines whose channel is null are plain lines: the digest is theirs.)
  if r.request_hash is not null then
    r.request_hash := coalesce(md5(r.request_hash || chr(31) || (
      select string_agg(distinct concat_ws(chr(30), e ->> 'sku', e ->> 'warehouse', e ->> 'channel', e ->> 'region'), chr(29))
      from jsonb_array_elements(p_lines) e where e ->> 'channel' is not null)), r.request_hash);
  end if;
  return r;
end
$$;
comment on function inventory._channel_request(inventory._reserve_request, jsonb, text[], uuid[], text[], uuid[]) is
  'Internal: resolve the channels of a reserve() request (IV004 unknown, IV005 outside or empty channel); its ranks for allocation';

-- IV004 for unknown channels: added to the request's other unknown names
-- (p_error, an IV004 of _unknown_error) or on their own (p_error null).
create or replace function inventory._unknown_channel_error(p_error inventory._error, p_channels text[]) returns inventory._error
language sql immutable
as $$
  select row('IV004',
    concat_ws('; ', nullif((p_error).message, ''),
      'unknown channel ' || (select string_agg(inventory._quote(s), ', ' order by s) from unnest(p_channels) s)),
    coalesce((p_error).detail, jsonb_build_object('unknown_skus', '[]'::jsonb, 'unknown_warehouses', '[]'::jsonb))
      || jsonb_build_object('unknown_channels', (select jsonb_agg(inventory._clip(s) order by s) from unnest(p_channels) s)),
    case when (p_error).code is null
      then 'Create channels with inventory.upsert_channel(code, name, strategy) and give them warehouses with inventory.set_channel_warehouses(channel, warehouses).'
      else (p_error).hint || ' Create channels with inventory.upsert_channel(code, name, strategy).' end
  )::inventory._error
$$;
comment on function inventory._unknown_channel_error(inventory._error, text[]) is 'Internal: IV004 for unknown channels in reserve() lines';
