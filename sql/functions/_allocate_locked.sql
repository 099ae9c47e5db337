-- reserve()'s allocation when the fast path does not apply (a line leaves its
-- warehouse open, or is short). Allocates over the rows the caller has locked;
-- when short, first takes in rows that became visible after the lock
-- statement's snapshot (a concurrent transfer() or adjust() created them:
-- READ COMMITTED re-reads locked rows but never finds new ones), then expires
-- due HELD reservations on the rows, allocating again after each step.
-- Returns the take per row and, if still short, every short line.
create or replace function inventory._allocate_locked(
  p_lines inventory._line[],
  inout p_slot_products uuid[],
  inout p_slot_warehouses uuid[],
  out take inventory._line[],
  out short jsonb
)
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_new_products uuid[];
  v_new_warehouses uuid[];
begin
  select a.take, a.short into take, short
  from inventory._allocate(p_lines, p_slot_products, p_slot_warehouses) a;
  if short is null then
    return;
  end if;

  -- Rows this statement's fresh snapshot sees that the lock statement did not.
  -- SKIP LOCKED: we hold rows already, so waiting here could break key order;
  -- a row busy right now counts as unavailable for this call.
  select array_agg(s.product_id), array_agg(s.warehouse_id)
  into v_new_products, v_new_warehouses
  from (
    select s.product_id, s.warehouse_id from inventory.stock_levels s
    where (s.product_id, s.warehouse_id) in (
        select l.product_id, l.warehouse_id from unnest(p_lines) l where l.warehouse_id is not null
        union
        select s2.product_id, s2.warehouse_id
        from unnest(p_lines) l join inventory.stock_levels s2 on s2.product_id = l.product_id
        where l.warehouse_id is null
        except
        select * from unnest(coalesce(p_slot_products, '{}'), coalesce(p_slot_warehouses, '{}')))
    order by s.product_id, s.warehouse_id
    for update of s skip locked
  ) s;
  if v_new_products is not null then
    p_slot_products := coalesce(p_slot_products, '{}') || v_new_products;
    p_slot_warehouses := coalesce(p_slot_warehouses, '{}') || v_new_warehouses;
    select a.take, a.short into take, short
    from inventory._allocate(p_lines, p_slot_products, p_slot_warehouses) a;
    if short is null then
      return;
    end if;
  end if;

  if inventory._expire_due_on_rows(p_slot_products, p_slot_warehouses) > 0 then
    select a.take, a.short into take, short
    from inventory._allocate(p_lines, p_slot_products, p_slot_warehouses) a;
  end if;
end
$$;
comment on function inventory._allocate_locked(inventory._line[], uuid[], uuid[]) is
  'Internal: reserve() allocation over locked rows, taking in new rows and expiring due reservations when short';
