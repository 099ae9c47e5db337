-- IV001 for a reservation that cannot be met: every short line (sku,
-- warehouse or null for "across warehouses", requested, available).
create or replace function inventory._short_error(p_order_ref text, p_short jsonb, p_line_count integer) returns inventory._error
language sql immutable
as $$
  select row('IV001',
    format('insufficient stock for %s of %s line(s): %s', jsonb_array_length(p_short), p_line_count,
      (select string_agg(format('%s%s requested %s, available %s', inventory._clip(s ->> 'sku'),
                                coalesce(' at ' || inventory._clip(s ->> 'warehouse'), ' across warehouses'),
                                s ->> 'requested', s ->> 'available'), '; ')
       from jsonb_array_elements(p_short) s)),
    jsonb_build_object('order_ref', inventory._clip(p_order_ref), 'lines', p_short),
    'Nothing was reserved. Reserve less, or leave out the warehouse to allocate across warehouses.'
  )::inventory._error
$$;
comment on function inventory._short_error(text, jsonb, integer) is 'Internal: IV001 listing every short line of a reservation';
