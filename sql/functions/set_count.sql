-- set_count(sku, warehouse, counted, reason, expected): a cycle count sets
-- on_hand to what was counted (a COUNT movement with the difference, zero
-- included: the count itself is worth keeping). With expected, it refuses
-- (IV007) when the stored on_hand has moved since the counter looked.
create or replace function inventory.set_count(
  sku text,
  warehouse text,
  counted integer,
  reason text,
  expected integer default null
) returns inventory.stock_levels
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
set plan_cache_mode = force_generic_plan -- see reserve.sql
as $$
#variable_conflict use_column
declare
  v_product_id uuid := inventory._stocked_product_id(set_count.sku);
  v_warehouse_id uuid := inventory._warehouse_id(set_count.warehouse);
  v_row inventory.stock_levels;
begin
  if set_count.counted is null or set_count.counted < 0 then
    perform inventory._raise('IV005', format('counted must be zero or more, got %s', coalesce(set_count.counted::text, 'null')),
      jsonb_build_object('argument', 'counted'));
  end if;
  if set_count.expected < 0 then
    perform inventory._raise('IV005', format('expected must be zero or more, got %s', set_count.expected),
      jsonb_build_object('argument', 'expected'));
  end if;
  perform inventory._require_text(set_count.reason, 'reason', 'reason');

  v_row := inventory._locked_stock_row(v_product_id, v_warehouse_id, true);
  if set_count.expected is not null and v_row.on_hand <> set_count.expected then
    perform inventory._raise('IV007',
      format('count of %s at %s expected on_hand %s, but it is %s now', inventory._clip(set_count.sku), inventory._clip(set_count.warehouse),
             set_count.expected, v_row.on_hand),
      inventory._stock_row_json(set_count.sku, set_count.warehouse, v_row)
        || jsonb_build_object('expected', set_count.expected, 'counted', set_count.counted),
      'Stock moved since the count started: recount, or pass the current on_hand as expected.');
  end if;
  if set_count.counted < v_row.reserved + v_row.unavailable then
    perform inventory._raise('IV002',
      format('count %s of %s at %s is below the %s reserved and %s in quantity states there', set_count.counted, inventory._clip(set_count.sku),
             inventory._clip(set_count.warehouse), v_row.reserved, v_row.unavailable),
      inventory._stock_row_json(set_count.sku, set_count.warehouse, v_row) || jsonb_build_object('counted', set_count.counted),
      'Nothing was changed. Release or confirm the reservations on this row first; units in a state leave with adjust_state.');
  end if;
  return inventory._record_movement(v_row, 'COUNT', set_count.counted - v_row.on_hand, set_count.reason, null, null);
end
$$;
comment on function inventory.set_count(text, text, integer, text, integer) is
  'Cycle count: set on_hand to counted; with expected, compare-and-set (IV007 when stale)';
