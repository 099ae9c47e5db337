-- (Its first form took no transit delta; an overload would make calls ambiguous.)
drop function if exists inventory._record_movement(inventory.stock_levels, text, integer, text, text, text);

-- Applies one on_hand change to a locked stock row and writes its movement:
-- the single path of adjust(), set_count(), transfer() and the transit
-- functions (which also say how many units the movement put into transit or
-- took out of it: p_transit_delta). Units added fill the row's waiting
-- backorders (_fill_backorders).
create or replace function inventory._record_movement(
  p_row inventory.stock_levels,
  p_kind text,
  p_on_hand_delta integer,
  p_reason text,
  p_reference text,
  p_idempotency_key text,
  p_transit_delta integer default 0
) returns inventory.stock_levels
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_row inventory.stock_levels;
begin
  update inventory.stock_levels s
  set on_hand = s.on_hand + p_on_hand_delta, version = s.version + 1, last_movement_at = clock_timestamp()
  where s.product_id = p_row.product_id and s.warehouse_id = p_row.warehouse_id
  returning * into v_row;
  insert into inventory.movements (
    product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
    reason, reference, idempotency_key, actor, transit_delta)
  values (v_row.product_id, v_row.warehouse_id, p_kind, p_on_hand_delta, 0, v_row.on_hand, v_row.reserved,
    p_reason, p_reference, p_idempotency_key, inventory._actor(), p_transit_delta);
  -- Stock that arrives goes to waiting backorders first.
  if p_on_hand_delta > 0 and v_row.backordered > 0 and inventory._fill_backorders(v_row.product_id, v_row.warehouse_id) > 0 then
    select * into v_row from inventory.stock_levels s where s.product_id = p_row.product_id and s.warehouse_id = p_row.warehouse_id;
  end if;
  return v_row;
end
$$;
comment on function inventory._record_movement(inventory.stock_levels, text, integer, text, text, text, integer) is
  'Internal: change on_hand of a locked stock row and write its movement (with what it moved into or out of transit)';
