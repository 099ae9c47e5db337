-- Applies a change of a locked stock row's quantity state and writes its
-- movement: the state's qty and the row's unavailable move by p_state_delta,
-- on_hand by p_on_hand_delta (0 for a move between sellable and a state; the
-- same as p_state_delta when units arrive in or leave from a state). Units
-- that become sellable fill the row's waiting backorders first, as arriving
-- stock does (_record_movement).
create or replace function inventory._record_state_movement(
  p_row inventory.stock_levels,
  p_kind text,
  p_on_hand_delta integer,
  p_state text,
  p_state_delta integer,
  p_reason text,
  p_reference text,
  p_idempotency_key text
) returns inventory.stock_levels
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_row inventory.stock_levels;
begin
  update inventory.stock_levels s
  set on_hand = s.on_hand + p_on_hand_delta, unavailable = s.unavailable + p_state_delta,
      version = s.version + 1, last_movement_at = clock_timestamp()
  where s.product_id = p_row.product_id and s.warehouse_id = p_row.warehouse_id
  returning * into v_row;
  if p_state_delta > 0 then
    insert into inventory.stock_level_states as t (product_id, warehouse_id, state, qty)
    values (v_row.product_id, v_row.warehouse_id, p_state, p_state_delta)
    on conflict (product_id, warehouse_id, state) do update set qty = t.qty + excluded.qty;
  else
    -- The caller checked the state holds the units; the CHECK (qty >= 0) stands behind it.
    update inventory.stock_level_states t set qty = t.qty + p_state_delta
    where t.product_id = v_row.product_id and t.warehouse_id = v_row.warehouse_id and t.state = p_state;
  end if;
  insert into inventory.movements (
    product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
    reason, reference, idempotency_key, actor, state, state_delta)
  values (v_row.product_id, v_row.warehouse_id, p_kind, p_on_hand_delta, 0, v_row.on_hand, v_row.reserved,
    p_reason, p_reference, p_idempotency_key, inventory._actor(), p_state, p_state_delta);
  if p_on_hand_delta - p_state_delta > 0 and v_row.backordered > 0
     and inventory._fill_backorders(v_row.product_id, v_row.warehouse_id) > 0 then
    select * into v_row from inventory.stock_levels s where s.product_id = p_row.product_id and s.warehouse_id = p_row.warehouse_id;
  end if;
  return v_row;
end
$$;
comment on function inventory._record_state_movement(inventory.stock_levels, text, integer, text, integer, text, text, text) is
  'Internal: change a quantity state (and on_hand) of a locked stock row and write its movement';
