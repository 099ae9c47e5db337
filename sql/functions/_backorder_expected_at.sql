-- When the units a backorder waits for are expected to arrive on its stock
-- row: the expected_at of the open inbound line (soonest first) by which the
-- row's inbound, cumulated by date, covers p_units (the units ahead in the
-- queue plus the line's own), after what the row lacks now: arrivals fill
-- safety stock and the queue, in that order, as _fill_backorders does. Null
-- when the row's open inbound does not cover them. A late line keeps its past
-- date until it is received or closed.
create or replace function inventory._backorder_expected_at(p_row inventory.stock_levels, p_units bigint) returns timestamptz
language sql stable
as $$
  select min(c.expected_at)
  from (
    select l.expected_at,
           sum(greatest(l.qty_expected - l.qty_received, 0)) over (order by l.expected_at, l.shipment_id) as cumulative
    from inventory.inbound_lines l
    where l.product_id = p_row.product_id and l.warehouse_id = p_row.warehouse_id and l.status in ('OPEN', 'PARTIAL')
  ) c
  where p_row.on_hand::bigint - p_row.reserved - p_row.safety_stock + c.cumulative >= p_units
$$;
comment on function inventory._backorder_expected_at(inventory.stock_levels, bigint) is
  'Internal: when a row''s open inbound, cumulated by date, covers a number of backordered units';
