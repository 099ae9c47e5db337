-- What each given stock row has available for a request: available less what
-- this transaction has already taken from it but not written yet (p_pending:
-- the earlier requests of a reserve_many() batch). The caller holds the rows'
-- locks, so the figures stay true until it commits.
-- backorderable: the units the row may still sell beyond what it has
-- (_backorderable), less backorders taken but not yet written
-- (p_pending_backorders).
drop function if exists inventory._slots(uuid[], uuid[], inventory._line[]);
create or replace function inventory._slots(p_products uuid[], p_warehouses uuid[], p_pending inventory._line[],
                                            p_pending_backorders inventory._line[] default null)
returns inventory._slot[]
language sql stable
as $$
  select array_agg(row(s.product_id, s.warehouse_id,
                       greatest(s.on_hand - s.reserved - s.safety_stock - s.unavailable, 0) - coalesce(p.qty, 0),
                       inventory._backorderable(s) - coalesce(b.qty, 0))::inventory._slot
                   order by s.product_id, s.warehouse_id)
  from unnest(p_products, p_warehouses) k(product_id, warehouse_id)
  join inventory.stock_levels s on s.product_id = k.product_id and s.warehouse_id = k.warehouse_id
  left join (
    select l.product_id, l.warehouse_id, sum(l.qty) as qty from unnest(p_pending) l group by 1, 2
  ) p on p.product_id = s.product_id and p.warehouse_id = s.warehouse_id
  left join (
    select l.product_id, l.warehouse_id, sum(l.qty) as qty from unnest(p_pending_backorders) l group by 1, 2
  ) b on b.product_id = s.product_id and b.warehouse_id = s.warehouse_id
$$;
comment on function inventory._slots(uuid[], uuid[], inventory._line[], inventory._line[]) is
  'Internal: what locked stock rows have available and may backorder, less what was taken but not yet written';
