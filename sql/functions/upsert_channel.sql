-- upsert_channel(code, name, strategy, region): create a sales channel or
-- update it (README "Sales channels"). strategy is PRIORITY (the channel's
-- own warehouse order), MOST_STOCK (most available first) or NEAREST (the
-- customer's region first); it always takes the value given (PRIORITY when
-- left out). A null name or region keeps the current value. Its warehouses
-- are set with set_channel_warehouses.
create or replace function inventory.upsert_channel(
  code text,
  name text default null,
  strategy text default 'PRIORITY',
  region text default null
) returns inventory.channels
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_channel inventory.channels;
begin
  perform inventory._require_text(upsert_channel.code, 'code', 'channel');
  if upsert_channel.code <> btrim(upsert_channel.code) then
    perform inventory._raise('IV005',
      format('channel code %s must not have leading or trailing spaces', inventory._quote(upsert_channel.code)),
      jsonb_build_object('argument', 'code'));
  end if;
  perform inventory._check_length(upsert_channel.name, 'name', 'name');
  perform inventory._check_length(upsert_channel.region, 'region', 'name');
  if upsert_channel.strategy is null or upsert_channel.strategy not in ('PRIORITY', 'MOST_STOCK', 'NEAREST') then
    perform inventory._raise('IV005',
      format('strategy must be PRIORITY, MOST_STOCK or NEAREST, got %s', coalesce(inventory._quote(upsert_channel.strategy), 'null')),
      jsonb_build_object('argument', 'strategy', 'allowed', jsonb_build_array('PRIORITY', 'MOST_STOCK', 'NEAREST')),
      'PRIORITY: the channel''s warehouse order; MOST_STOCK: most available first; NEAREST: the customer''s region first, then the channel''s order.');
  end if;
  if btrim(upsert_channel.region) = '' then
    perform inventory._raise('IV005', 'region must be null (keep the current one) or a non-empty text',
      jsonb_build_object('argument', 'region'));
  end if;
  insert into inventory.channels as c (code, name, strategy, region)
  values (upsert_channel.code, upsert_channel.name, upsert_channel.strategy, upsert_channel.region)
  on conflict (code) do update
    set name = coalesce(excluded.name, c.name),
        strategy = excluded.strategy,
        region = coalesce(excluded.region, c.region),
        updated_at = now()
    where (coalesce(excluded.name, c.name), excluded.strategy, coalesce(excluded.region, c.region))
          is distinct from (c.name, c.strategy, c.region)
  returning * into v_channel;
  if v_channel.id is null then
    select * into v_channel from inventory.channels c where c.code = upsert_channel.code;
  end if;
  return v_channel;
end
$$;
comment on function inventory.upsert_channel(text, text, text, text) is
  'Create or update a sales channel (strategy PRIORITY, MOST_STOCK or NEAREST; null name/region keep the current value)';
