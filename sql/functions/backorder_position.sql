-- backorder_position(reservation_id): where each waiting line of a
-- reservation stands in its stock row's queue (filled first come first
-- served): queue_position 1 is filled next; units_ahead are the units the lines
-- before it wait for. A line with nothing waiting has no row.
-- expected_at: when the inbound stock that fills it is expected
-- (_backorder_expected_at: the line's place in the queue against the row's
-- open inbound, cumulated by date); without such inbound, for a PREORDER
-- row its preorder_until; else null.
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
    select p.sku, w.code, mine.backordered, q.lines_ahead + 1, q.units_ahead,
           coalesce(inventory._backorder_expected_at(s, q.units_ahead + mine.backordered),
                    case when s.backorder_policy = 'PREORDER' then s.preorder_until end)
    from inventory.reservation_lines mine
    join inventory.products p on p.id = mine.product_id
    join inventory.warehouses w on w.id = mine.warehouse_id
    join inventory.stock_levels s on s.product_id = mine.product_id and s.warehouse_id = mine.warehouse_id
    cross join lateral (
      select count(*) as lines_ahead, coalesce(sum(ahead.backordered), 0)::bigint as units_ahead
      from inventory.reservation_lines ahead
      where ahead.product_id = mine.product_id and ahead.warehouse_id = mine.warehouse_id
        and ahead.backordered > 0 and ahead.backorder_seq < mine.backorder_seq
    ) q
    where mine.reservation_id = backorder_position.reservation_id and mine.backordered > 0
    order by p.sku, w.code;
end
$$;
comment on function inventory.backorder_position(uuid) is
  'Where each waiting (backordered) line of a reservation stands in its stock row''s queue: queue_position 1 is filled next';
