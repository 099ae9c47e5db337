-- adjust_state(sku, warehouse, state, delta, reason, idempotency_key): units
-- that arrive in a quantity state (delta > 0: a return received into quality
-- control, a delivery found damaged: a RECEIVE movement) or leave from one
-- (delta < 0: damaged units thrown away: an ADJUST movement); on_hand and the
-- state move together, what is sellable does not. Creates the stock row on a
-- first receipt. Returns the row.
create or replace function inventory.adjust_state(
  sku text,
  warehouse text,
  state text,
  delta integer,
  reason text,
  idempotency_key text default null
) returns inventory.stock_levels
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_product_id uuid := inventory._stocked_product_id(adjust_state.sku);
  v_warehouse_id uuid := inventory._warehouse_id(adjust_state.warehouse);
  v_state text;
  v_row inventory.stock_levels;
  v_held integer;
begin
  if adjust_state.state is null then
    perform inventory._raise('IV005', 'state must be a quantity state (use adjust for sellable units)', jsonb_build_object('argument', 'state'));
  end if;
  v_state := inventory._quantity_state(adjust_state.state, 'state');
  if adjust_state.delta is null or adjust_state.delta = 0 then
    perform inventory._raise('IV005', format('delta must be a non-zero integer, got %s', coalesce(adjust_state.delta::text, 'null')),
      jsonb_build_object('argument', 'delta'));
  end if;
  perform inventory._require_text(adjust_state.reason, 'reason', 'reason');
  if adjust_state.idempotency_key is not null
     and not inventory._claim_operation_key(adjust_state.idempotency_key, 'adjust_state',
           concat_ws(chr(31), v_product_id, v_warehouse_id, v_state, adjust_state.delta, adjust_state.reason)) then
    select * into v_row from inventory.stock_levels where product_id = v_product_id and warehouse_id = v_warehouse_id;
    return v_row;
  end if;

  v_row := inventory._locked_stock_row(v_product_id, v_warehouse_id, adjust_state.delta > 0);
  if adjust_state.delta < 0 then
    select s.qty into v_held from inventory.stock_level_states s
    where s.product_id = v_product_id and s.warehouse_id = v_warehouse_id and s.state = v_state;
    if coalesce(v_held, 0) < -adjust_state.delta then
      perform inventory._raise('IV002',
        format('cannot remove %s of %s at %s from %s: it holds %s', -adjust_state.delta, inventory._clip(adjust_state.sku),
               inventory._clip(adjust_state.warehouse), v_state, coalesce(v_held, 0)),
        inventory._stock_row_json(adjust_state.sku, adjust_state.warehouse, v_row)
          || jsonb_build_object('delta', adjust_state.delta, 'state', v_state, 'holds', coalesce(v_held, 0)),
        'Nothing was changed.');
    end if;
  elsif v_row.on_hand::bigint + adjust_state.delta > 2147483647 then
    perform inventory._raise('IV005', format('on_hand of %s at %s would exceed 2147483647', inventory._clip(adjust_state.sku), inventory._clip(adjust_state.warehouse)),
      jsonb_build_object('argument', 'delta'));
  end if;
  return inventory._record_state_movement(v_row, case when adjust_state.delta > 0 then 'RECEIVE' else 'ADJUST' end,
    adjust_state.delta, v_state, adjust_state.delta, adjust_state.reason, null, adjust_state.idempotency_key);
end
$$;
comment on function inventory.adjust_state(text, text, text, integer, text, text) is
  'Units arriving in (delta > 0, RECEIVE) or leaving from (delta < 0, ADJUST) a quantity state: on_hand and the state together';
