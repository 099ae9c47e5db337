-- The channel fields of one reserve() line (README "Sales channels"), called
-- by _line_check for a line with fields beyond "sku", "warehouse" and "qty":
-- "channel": a channel code (a non-empty string, or null or left out for
-- none), "region": the customer's region for a NEAREST channel (likewise;
-- only with a channel). Returns the problem as _line_check does, or
-- {"channel": true} for a well-formed channel line (one whose channel and
-- region are both null is a plain line that says so).
create or replace function inventory._channel_line_check(p_line jsonb) returns jsonb
language plpgsql immutable
as $$
begin
  if (p_line - 'sku' - 'warehouse' - 'qty' - 'channel' - 'region') <> '{}'::jsonb then
    return jsonb_build_object('problem', format('unknown field(s) %s; a line has only "sku", "warehouse", "qty", "channel" and "region"',
      inventory._clip((select string_agg(quote_ident(k), ', ')
                       from jsonb_object_keys(p_line - 'sku' - 'warehouse' - 'qty' - 'channel' - 'region') k))));
  end if;
  if jsonb_typeof(p_line -> 'channel') not in ('string', 'null') or btrim(p_line ->> 'channel') = '' then
    return jsonb_build_object('problem', '"channel" must be a non-empty string (a channel code), or left out');
  end if;
  if length(p_line ->> 'channel') > inventory._max_length('channel') then
    return inventory._line_field_too_long(p_line ->> 'channel', 'channel');
  end if;
  if jsonb_typeof(p_line -> 'region') not in ('string', 'null') or btrim(p_line ->> 'region') = '' then
    return jsonb_build_object('problem', '"region" must be a non-empty string, or left out');
  end if;
  if length(p_line ->> 'region') > inventory._max_length('name') then
    return jsonb_build_object('problem', format('"region" must be at most %s characters, got %s',
      inventory._max_length('name'), length(p_line ->> 'region')), 'field', 'region', 'max_length', inventory._max_length('name'));
  end if;
  if p_line ->> 'region' is not null and p_line ->> 'channel' is null then
    return jsonb_build_object('problem', '"region" is the customer''s region for a channel: it needs a "channel"');
  end if;
  return jsonb_build_object('channel', true);
end
$$;
comment on function inventory._channel_line_check(jsonb) is
  'Internal: what is wrong with a reserve() line''s channel fields, as {"problem", ...}, or {"channel": true}';
