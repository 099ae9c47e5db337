-- move_stock_state(sku, warehouse, qty, reason, from_state, to_state,
-- idempotency_key): moves on-hand units between the sellable rest of a stock
-- row (a null state, the default of both) and its quantity states, or between two states. on_hand
-- does not change: the units stay on the shelf, only what may be sold does.
-- - into a state from sellable: at most on_hand - reserved - unavailable
--   (units promised to a reservation are released or confirmed first; the
--   safety stock is physical stock and may be damaged like any);
-- - out of a state: at most what it holds; back to sellable, the units fill
--   waiting backorders first;
-- - between two states: two STATE_MOVE movements with one reference.
-- One STATE_MOVE movement per state changed (state, state_delta). Returns the row.
create or replace function inventory.move_stock_state(
  sku text,
  warehouse text,
  qty integer,
  reason text,
  from_state text default null,
  to_state text default null,
  idempotency_key text default null
) returns inventory.stock_levels
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_product_id uuid := inventory._stocked_product_id(move_stock_state.sku);
  v_warehouse_id uuid := inventory._warehouse_id(move_stock_state.warehouse);
  v_from text := inventory._quantity_state(move_stock_state.from_state, 'from_state');
  v_to text := inventory._quantity_state(move_stock_state.to_state, 'to_state');
  v_row inventory.stock_levels;
  v_held integer;
  v_reference text;
begin
  if move_stock_state.qty is null or move_stock_state.qty <= 0 then
    perform inventory._raise('IV005', format('qty must be a positive integer, got %s', coalesce(move_stock_state.qty::text, 'null')),
      jsonb_build_object('argument', 'qty'));
  end if;
  if v_from is not distinct from v_to then
    perform inventory._raise('IV005', format('from_state and to_state are both %s: nothing would move', coalesce(v_from, 'null (sellable)')),
      jsonb_build_object('argument', 'to_state'), 'Name a state to move into (to_state) or out of (from_state); null is the sellable rest.');
  end if;
  perform inventory._require_text(move_stock_state.reason, 'reason', 'reason');
  if move_stock_state.idempotency_key is not null
     and not inventory._claim_operation_key(move_stock_state.idempotency_key, 'move_stock_state',
           concat_ws(chr(31), v_product_id, v_warehouse_id, move_stock_state.qty, coalesce(v_from, ''), coalesce(v_to, ''), move_stock_state.reason)) then
    select * into v_row from inventory.stock_levels where product_id = v_product_id and warehouse_id = v_warehouse_id;
    return v_row;
  end if;

  v_row := inventory._locked_stock_row(v_product_id, v_warehouse_id, false);
  if v_from is null then
    v_held := coalesce(v_row.on_hand - v_row.reserved - v_row.unavailable, 0);
  else
    select s.qty into v_held from inventory.stock_level_states s
    where s.product_id = v_product_id and s.warehouse_id = v_warehouse_id and s.state = v_from;
    v_held := coalesce(v_held, 0);
  end if;
  if v_held < move_stock_state.qty then
    perform inventory._raise('IV002',
      format('cannot move %s of %s at %s out of %s: it holds %s', move_stock_state.qty, inventory._clip(move_stock_state.sku),
             inventory._clip(move_stock_state.warehouse), coalesce(v_from, 'the sellable units (on_hand - reserved - unavailable)'), v_held),
      inventory._stock_row_json(move_stock_state.sku, move_stock_state.warehouse, v_row)
        || jsonb_build_object('qty', move_stock_state.qty, 'from_state', v_from, 'holds', v_held),
      'Nothing was moved. Units held by a reservation are released or confirmed first.');
  end if;
  v_reference := case when v_from is not null and v_to is not null then 'state:' || gen_random_uuid() end;
  if v_from is not null then
    v_row := inventory._record_state_movement(v_row, 'STATE_MOVE', 0, v_from, -move_stock_state.qty, move_stock_state.reason,
      v_reference, move_stock_state.idempotency_key);
  end if;
  if v_to is not null then
    v_row := inventory._record_state_movement(v_row, 'STATE_MOVE', 0, v_to, move_stock_state.qty, move_stock_state.reason,
      v_reference, move_stock_state.idempotency_key);
  end if;
  return v_row;
end
$$;
comment on function inventory.move_stock_state(text, text, integer, text, text, text, text) is
  'Move on-hand units between sellable (null) and quantity states (DAMAGED, QUALITY_CONTROL, ...): STATE_MOVE movements, on_hand unchanged';
