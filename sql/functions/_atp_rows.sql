-- Available-to-promise per stock row of the given (non-kit) products, the one
-- statement of the rule (README "Inbound stock and available-to-promise"):
--   available  now, as stock() says: greatest(on_hand - reserved - safety_stock, 0)
--   backordered  units already sold beyond stock and waiting on the row
--   inbound    units of OPEN and PARTIAL inbound lines expected by p_at
--              (expected_at <= p_at) not received yet
--   atp        greatest(on_hand - reserved - safety_stock - backordered + inbound, 0):
--              what arrives first fills the row's safety stock and its
--              waiting backorders, as _fill_backorders will; the rest can be
--              promised.
-- A warehouse where only inbound is expected (no stock row yet) has a row.
-- One statement: stock rows and inbound lines are read in one snapshot, and
-- a receipt changes both in one transaction, so a unit is never counted both
-- as on hand and as still inbound.
create or replace function inventory._atp_rows(p_product_ids uuid[], p_at timestamptz)
returns table (product_id uuid, warehouse_id uuid, available integer, backordered integer, inbound integer, atp integer)
language sql stable
as $$
  with due as (
    select l.product_id, l.warehouse_id, sum(greatest(l.qty_expected - l.qty_received, 0)) as inbound
    from inventory.inbound_lines l
    where l.product_id = any (p_product_ids) and l.status in ('OPEN', 'PARTIAL') and l.expected_at <= p_at
    group by 1, 2
  ),
  open_rows as (
    select distinct l.product_id, l.warehouse_id
    from inventory.inbound_lines l
    where l.product_id = any (p_product_ids) and l.status in ('OPEN', 'PARTIAL')
  ),
  rows as (
    select s.product_id, s.warehouse_id, s.on_hand::bigint - s.reserved - s.safety_stock as free, s.backordered
    from inventory.stock_levels s where s.product_id = any (p_product_ids)
    union all
    select o.product_id, o.warehouse_id, 0, 0
    from open_rows o
    where not exists (select from inventory.stock_levels s where s.product_id = o.product_id and s.warehouse_id = o.warehouse_id)
  )
  select r.product_id, r.warehouse_id, greatest(r.free, 0)::integer, r.backordered, coalesce(d.inbound, 0)::integer,
         least(greatest(r.free - r.backordered + coalesce(d.inbound, 0), 0), 2147483647)::integer
  from rows r
  left join due d on d.product_id = r.product_id and d.warehouse_id = r.warehouse_id
$$;
comment on function inventory._atp_rows(uuid[], timestamptz) is
  'Internal: available-to-promise per stock row by a date: available now - backordered + inbound expected by then';
