-- set_backorder_policy(sku, warehouse, policy, backorder_limit, preorder_until):
-- what a stock row may sell beyond what it has. See README "Backorders and
-- preorders".
--   DENY       never (the default): a reserve beyond available is IV001;
--   BACKORDER  up to backorder_limit units waiting at any time;
--   PREORDER   the same, until preorder_until (then as DENY): the date a
--              storefront shows ("ships from …").
-- A reserve beyond available then holds what there is and backorders the
-- rest; stock that arrives fills waiting backorders first come first served.
-- A null backorder_limit keeps the current one. Units already backordered
-- stay waiting whatever the policy becomes, so a limit below them is refused
-- (IV005). Creates the (empty) stock row if needed. No movement; version and
-- last_movement_at move, so the cache follows.
create or replace function inventory.set_backorder_policy(
  sku text,
  warehouse text,
  policy text,
  backorder_limit integer default null,
  preorder_until timestamptz default null
) returns inventory.stock_levels
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  c_policies constant text[] := array['DENY', 'BACKORDER', 'PREORDER'];
  v_product_id uuid := inventory._stocked_product_id(set_backorder_policy.sku);
  v_warehouse_id uuid := inventory._warehouse_id(set_backorder_policy.warehouse);
  v_row inventory.stock_levels;
  v_limit integer;
begin
  if set_backorder_policy.policy is null or not (set_backorder_policy.policy = any (c_policies)) then
    perform inventory._raise('IV005', format('policy must be one of DENY, BACKORDER, PREORDER; got %s', inventory._quote(set_backorder_policy.policy)),
      jsonb_build_object('argument', 'policy', 'accepted', to_jsonb(c_policies)));
  end if;
  if set_backorder_policy.backorder_limit < 0 then
    perform inventory._raise('IV005', format('backorder_limit must be zero or more, got %s', set_backorder_policy.backorder_limit),
      jsonb_build_object('argument', 'backorder_limit'));
  end if;
  if set_backorder_policy.policy = 'PREORDER' and (set_backorder_policy.preorder_until is null or not isfinite(set_backorder_policy.preorder_until)
                                                  or set_backorder_policy.preorder_until <= now()) then
    perform inventory._raise('IV005', format('a PREORDER policy needs preorder_until, a time in the future; got %s',
        coalesce(set_backorder_policy.preorder_until::text, 'null')),
      jsonb_build_object('argument', 'preorder_until'), 'preorder_until is when the preorder ends: the date stock is expected.');
  end if;
  if set_backorder_policy.policy <> 'PREORDER' and set_backorder_policy.preorder_until is not null then
    perform inventory._raise('IV005', 'preorder_until applies to the PREORDER policy only',
      jsonb_build_object('argument', 'preorder_until'));
  end if;
  v_row := inventory._locked_stock_row(v_product_id, v_warehouse_id, true);
  v_limit := coalesce(set_backorder_policy.backorder_limit, v_row.backorder_limit);
  if v_limit < v_row.backordered then
    perform inventory._raise('IV005',
      format('backorder_limit %s is below the %s units backordered at %s/%s, which stay waiting',
        v_limit, v_row.backordered, inventory._clip(set_backorder_policy.sku), inventory._clip(set_backorder_policy.warehouse)),
      jsonb_build_object('argument', 'backorder_limit', 'backordered', v_row.backordered),
      'Set the policy to DENY to stop new backorders; waiting ones are filled as stock arrives or cancelled with their reservations.');
  end if;
  update inventory.stock_levels s
  set backorder_policy = set_backorder_policy.policy,
      backorder_limit = v_limit,
      preorder_until = set_backorder_policy.preorder_until,
      version = s.version + 1,
      last_movement_at = clock_timestamp()
  where s.product_id = v_product_id and s.warehouse_id = v_warehouse_id
  returning * into v_row;
  return v_row;
end
$$;
comment on function inventory.set_backorder_policy(text, text, text, integer, timestamptz) is
  'What a stock row may sell beyond what it has: DENY (default), BACKORDER up to backorder_limit, PREORDER up to backorder_limit until preorder_until';
