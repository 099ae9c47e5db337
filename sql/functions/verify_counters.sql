-- verify_counters(fix): recompute reserved from HELD reservation lines and
-- return each row where it drifted, (sku, warehouse, stored reserved,
-- expected). With fix, sets reserved to the expected value with an ADJUST
-- movement (reason VERIFY_COUNTERS) whose delta is taken from the ledger, not
-- from the drifted column, so the ledger adds up again whichever of the two was
-- edited behind the API's back. A row whose HELD lines exceed on_hand is
-- reported but not fixed: that needs a person.
create or replace function inventory.verify_counters(fix boolean default false)
returns table (sku text, warehouse text, reserved integer, expected integer)
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
set plan_cache_mode = force_generic_plan -- see reserve.sql
as $$
#variable_conflict use_column
declare
  v_drift record;
  v_row inventory.stock_levels;
  v_expected integer;
  v_ledger record;
begin
  if verify_counters.fix is null then
    perform inventory._raise('IV005', 'fix must be true or false', jsonb_build_object('argument', 'fix'));
  end if;
  -- One statement, one snapshot: reserved and HELD lines change together.
  for v_drift in
    select p.sku, w.code, s.product_id, s.warehouse_id, s.reserved, coalesce(h.qty, 0)::integer as expected
    from inventory.stock_levels s
    left join (
      select l.product_id, l.warehouse_id, sum(l.qty) as qty
      from inventory.reservation_lines l
      join inventory.reservations r on r.id = l.reservation_id and r.status = 'HELD'
      group by l.product_id, l.warehouse_id
    ) h on h.product_id = s.product_id and h.warehouse_id = s.warehouse_id
    join inventory.products p on p.id = s.product_id
    join inventory.warehouses w on w.id = s.warehouse_id
    where s.reserved <> coalesce(h.qty, 0)
    order by s.product_id, s.warehouse_id
  loop
    sku := v_drift.sku;
    warehouse := v_drift.code;
    reserved := v_drift.reserved;
    expected := v_drift.expected;
    return next;
    if verify_counters.fix then
      -- Recheck under the row lock: every reservation change locks the row first.
      v_row := inventory._locked_stock_row(v_drift.product_id, v_drift.warehouse_id, false);
      select coalesce(sum(l.qty), 0)::integer into v_expected
      from inventory.reservation_lines l
      join inventory.reservations r on r.id = l.reservation_id and r.status = 'HELD'
      where l.product_id = v_drift.product_id and l.warehouse_id = v_drift.warehouse_id;
      if v_expected <> v_row.reserved and v_expected <= v_row.on_hand then
        select m.on_hand_after, m.reserved_after into v_ledger
        from inventory.movements m
        where m.product_id = v_row.product_id and m.warehouse_id = v_row.warehouse_id
        order by m.id desc limit 1;
        update inventory.stock_levels s
        set reserved = v_expected, version = s.version + 1, last_movement_at = clock_timestamp()
        where s.product_id = v_row.product_id and s.warehouse_id = v_row.warehouse_id;
        insert into inventory.movements (
          product_id, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after, reason, actor)
        values (v_row.product_id, v_row.warehouse_id, 'ADJUST', 0, v_expected - coalesce(v_ledger.reserved_after, 0),
          coalesce(v_ledger.on_hand_after, 0), v_expected, 'VERIFY_COUNTERS', inventory._actor());
      end if;
    end if;
  end loop;
end
$$;
comment on function inventory.verify_counters(boolean) is
  'Rows whose reserved differs from their HELD lines; with fix, correct them with an ADJUST movement';
