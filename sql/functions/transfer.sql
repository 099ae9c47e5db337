-- transfer(sku, from_warehouse, to_warehouse, qty, reason, idempotency_key):
-- moves on_hand between warehouses as a TRANSFER_OUT / TRANSFER_IN pair sharing
-- one reference. Never takes the source below its reserved units (IV002).
-- Returns the source row, then the destination row.
create or replace function inventory.transfer(
  sku text,
  from_warehouse text,
  to_warehouse text,
  qty integer,
  reason text,
  idempotency_key text default null
) returns setof inventory.stock_levels
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
set plan_cache_mode = force_generic_plan -- see reserve.sql
as $$
#variable_conflict use_column
declare
  v_product_id uuid := inventory._stocked_product_id(transfer.sku);
  v_from_id uuid := inventory._warehouse_id(transfer.from_warehouse, 'from_warehouse');
  v_to_id uuid := inventory._warehouse_id(transfer.to_warehouse, 'to_warehouse');
  v_from inventory.stock_levels;
  v_to inventory.stock_levels;
  v_reference text := 'transfer:' || gen_random_uuid();
begin
  if transfer.qty is null or transfer.qty <= 0 then
    perform inventory._raise('IV005', format('qty must be a positive integer, got %s', coalesce(transfer.qty::text, 'null')),
      jsonb_build_object('argument', 'qty'));
  end if;
  if v_from_id = v_to_id then
    perform inventory._raise('IV005', format('cannot transfer from %s to itself', inventory._clip(transfer.from_warehouse)),
      jsonb_build_object('argument', 'to_warehouse'));
  end if;
  perform inventory._require_text(transfer.reason, 'reason', 'reason');
  if transfer.idempotency_key is not null
     and not inventory._claim_operation_key(transfer.idempotency_key, 'transfer',
           concat_ws(chr(31), v_product_id, v_from_id, v_to_id, transfer.qty, transfer.reason)) then
    return query
      select s.* from inventory.stock_levels s
      where s.product_id = v_product_id and s.warehouse_id in (v_from_id, v_to_id)
      order by s.warehouse_id = v_to_id;
    return;
  end if;

  -- Both rows in key order, as everywhere.
  if v_from_id < v_to_id then
    v_from := inventory._locked_stock_row(v_product_id, v_from_id, false);
    v_to := inventory._locked_stock_row(v_product_id, v_to_id, true);
  else
    v_to := inventory._locked_stock_row(v_product_id, v_to_id, true);
    v_from := inventory._locked_stock_row(v_product_id, v_from_id, false);
  end if;
  if coalesce(v_from.on_hand, 0) - transfer.qty < coalesce(v_from.reserved, 0) + coalesce(v_from.unavailable, 0) then
    perform inventory._raise('IV002',
      format('transferring %s of %s out of %s would take on_hand to %s, below the %s reserved and in quantity states',
             transfer.qty, inventory._clip(transfer.sku), inventory._clip(transfer.from_warehouse), coalesce(v_from.on_hand, 0) - transfer.qty,
             coalesce(v_from.reserved, 0) + coalesce(v_from.unavailable, 0)),
      inventory._stock_row_json(transfer.sku, transfer.from_warehouse, v_from) || jsonb_build_object('qty', transfer.qty),
      'Nothing was moved. Transfer at most on_hand - reserved - unavailable (units in a quantity state stay).');
  end if;
  if v_to.on_hand::bigint + transfer.qty > 2147483647 then
    perform inventory._raise('IV005', format('on_hand of %s at %s would exceed 2147483647', inventory._clip(transfer.sku), inventory._clip(transfer.to_warehouse)),
      jsonb_build_object('argument', 'qty'));
  end if;
  v_from := inventory._record_movement(v_from, 'TRANSFER_OUT', -transfer.qty, transfer.reason, v_reference, transfer.idempotency_key);
  v_to := inventory._record_movement(v_to, 'TRANSFER_IN', transfer.qty, transfer.reason, v_reference, transfer.idempotency_key);
  return next v_from;
  return next v_to;
  return;
end
$$;
comment on function inventory.transfer(text, text, text, integer, text, text) is
  'Move on_hand between warehouses (TRANSFER_OUT/TRANSFER_IN with one reference); returns source then destination row';
