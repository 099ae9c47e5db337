-- recently_updated(since, warehouse, after, max): stock rows changed at or
-- after since, oldest first, a page of at most max rows. Pass the last row's
-- cursor as after for the next page. Keyset pagination on
-- (last_movement_at, product_id, warehouse_id): a row changed while you page
-- moves to the end and is seen again, never skipped.
create or replace function inventory.recently_updated(
  since timestamptz,
  warehouse text default null,
  after text default null,
  max integer default 1000
) returns setof inventory.stock_change
language plpgsql stable security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_warehouse_id uuid;
  v_after_at timestamptz := recently_updated.since;
  v_after_product uuid := '00000000-0000-0000-0000-000000000000';
  v_after_warehouse uuid := '00000000-0000-0000-0000-000000000000';
  v_parts text[];
begin
  if recently_updated.since is null then
    perform inventory._raise('IV005', 'since must be a timestamptz', jsonb_build_object('argument', 'since'));
  end if;
  if recently_updated.max is null or recently_updated.max not between 1 and 10000 then
    perform inventory._raise('IV005', format('max must be between 1 and 10000, got %s', coalesce(recently_updated.max::text, 'null')),
      jsonb_build_object('argument', 'max'));
  end if;
  if recently_updated.warehouse is not null then
    v_warehouse_id := inventory._warehouse_id(recently_updated.warehouse);
  end if;
  if recently_updated.after is not null then
    perform inventory._check_length(recently_updated.after, 'after', 'cursor');
    v_parts := string_to_array(recently_updated.after, '/');
    begin
      v_after_at := v_parts[1]::timestamptz;
      v_after_product := v_parts[2]::uuid;
      v_after_warehouse := v_parts[3]::uuid;
    exception when others then
      v_parts := null;
    end;
    if v_parts is null or cardinality(v_parts) <> 3 or v_after_at is null then
      perform inventory._raise('IV005', format('after %s is not a cursor returned by recently_updated()', inventory._quote(recently_updated.after)),
        jsonb_build_object('argument', 'after'), 'Pass the cursor column of the last row of the previous page, or null for the first page.');
    end if;
  end if;

  return query
    select p.sku, w.code, s.on_hand, s.reserved, s.safety_stock,
           greatest(s.on_hand - s.reserved - s.safety_stock - s.unavailable, 0), s.version, s.last_movement_at,
           concat_ws('/', to_char(s.last_movement_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                     s.product_id, s.warehouse_id)
    from inventory.stock_levels s
    join inventory.products p on p.id = s.product_id
    join inventory.warehouses w on w.id = s.warehouse_id
    where (s.last_movement_at, s.product_id, s.warehouse_id) > (v_after_at, v_after_product, v_after_warehouse)
      and s.last_movement_at >= recently_updated.since
      and (v_warehouse_id is null or s.warehouse_id = v_warehouse_id)
    order by s.last_movement_at, s.product_id, s.warehouse_id
    limit recently_updated.max;
end
$$;
comment on function inventory.recently_updated(timestamptz, text, text, integer) is
  'Stock rows changed since a time, keyset-paginated by cursor';
