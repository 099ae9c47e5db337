-- backorder_position(reservation_id): where each waiting line of a
-- reservation stands in its stock row's queue (filled first come first
-- served): queue_position 1 is filled next; units_ahead are the units the lines
-- before it wait for. A line with nothing waiting has no row.
create or replace function inventory.backorder_position(reservation_id uuid)
returns table (sku text, warehouse text, backordered integer, queue_position bigint, units_ahead bigint, expected_at timestamptz)
language plpgsql stable security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
begin
  if backorder_position.reservation_id is null then
    perform inventory._raise('IV005', 'reservation_id must not be null', jsonb_build_object('argument', 'reservation_id'));
  end if;
  if not exists (select from inventory.reservations r where r.id = backorder_position.reservation_id) then
    perform inventory._raise('IV004', format('unknown reservation %s', backorder_position.reservation_id),
      jsonb_build_object('reservation_id', backorder_position.reservation_id));
  end if;
  return query
    select p.sku, w.code, mine.backordered,
           (select count(*) + 1 from inventory.reservation_lines q
            where q.product_id = mine.product_id and q.warehouse_id = mine.warehouse_id
              and q.backordered > 0 and q.backorder_seq < mine.backorder_seq),
           (select coalesce(sum(q.backordered), 0) from inventory.reservation_lines q
            where q.product_id = mine.product_id and q.warehouse_id = mine.warehouse_id
              and q.backordered > 0 and q.backorder_seq < mine.backorder_seq)::bigint,
           case when s.backorder_policy = 'PREORDER' then s.preorder_until end
    from inventory.reservation_lines mine
    join inventory.products p on p.id = mine.product_id
    join inventory.warehouses w on w.id = mine.warehouse_id
    join inventory.stock_levels s on s.product_id = mine.product_id and s.warehouse_id = mine.warehouse_id
    where mine.reservation_id = backorder_position.reservation_id and mine.backordered > 0
    order by p.sku, w.code;
end
$$;
comment on function inventory.backorder_position(uuid) is
  'Where each waiting (backordered) line of a reservation stands in its stock row''s queue: queue_position 1 is filled next';
