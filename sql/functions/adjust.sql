-- adjust(sku, warehouse, delta, reason, idempotency_key): receipts (delta > 0,
-- a RECEIVE movement) and corrections (delta < 0, an ADJUST movement). Creates
-- the stock row on a first receipt; never takes on_hand below reserved plus
-- the units in quantity states (IV002).
-- Retried with the same key it returns the row as it is now, without a second change.
create or replace function inventory.adjust(
  sku text,
  warehouse text,
  delta integer,
  reason text,
  idempotency_key text default null
) returns inventory.stock_levels
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
set plan_cache_mode = force_generic_plan -- see reserve.sql
as $$
#variable_conflict use_column
declare
  v_product_id uuid := inventory._stocked_product_id(adjust.sku);
  v_warehouse_id uuid := inventory._warehouse_id(adjust.warehouse);
  v_row inventory.stock_levels;
begin
  if adjust.delta is null or adjust.delta = 0 then
    perform inventory._raise('IV005', format('delta must be a non-zero integer, got %s', coalesce(adjust.delta::text, 'null')),
      jsonb_build_object('argument', 'delta'));
  end if;
  perform inventory._require_text(adjust.reason, 'reason', 'reason');
  if adjust.idempotency_key is not null
     and not inventory._claim_operation_key(adjust.idempotency_key, 'adjust',
           concat_ws(chr(31), v_product_id, v_warehouse_id, adjust.delta, adjust.reason)) then
    select * into v_row from inventory.stock_levels
    where product_id = v_product_id and warehouse_id = v_warehouse_id;
    return v_row;
  end if;

  v_row := inventory._locked_stock_row(v_product_id, v_warehouse_id, adjust.delta > 0);
  if coalesce(v_row.on_hand, 0)::bigint + adjust.delta < coalesce(v_row.reserved, 0) + coalesce(v_row.unavailable, 0) then
    perform inventory._raise('IV002',
      format('adjusting %s at %s by %s would take on_hand to %s, below the %s reserved and %s in quantity states',
             inventory._clip(adjust.sku), inventory._clip(adjust.warehouse), adjust.delta, coalesce(v_row.on_hand, 0) + adjust.delta,
             coalesce(v_row.reserved, 0), coalesce(v_row.unavailable, 0)),
      inventory._stock_row_json(adjust.sku, adjust.warehouse, v_row) || jsonb_build_object('delta', adjust.delta),
      'Nothing was changed. Release or confirm reservations first, or remove less (units in a state leave with adjust_state).');
  end if;
  if v_row.on_hand::bigint + adjust.delta > 2147483647 then
    perform inventory._raise('IV005', format('on_hand of %s at %s would exceed 2147483647', inventory._clip(adjust.sku), inventory._clip(adjust.warehouse)),
      jsonb_build_object('argument', 'delta'));
  end if;
  return inventory._record_movement(v_row, case when adjust.delta > 0 then 'RECEIVE' else 'ADJUST' end,
    adjust.delta, adjust.reason, null, adjust.idempotency_key);
end
$$;
comment on function inventory.adjust(text, text, integer, text, text) is
  'Receipt (delta > 0) or correction (delta < 0) of on_hand; never below reserved; optional idempotency key';
