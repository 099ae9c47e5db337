-- The bare baseline of bench/reserve: what a reservation costs with nothing
-- but the check-and-take and the record of the hold. One plpgsql function:
-- UPDATE … WHERE available >= qty, then INSERT the hold, on a copy of the
-- same stock rows addressed by ids (no sku lookup, no ledger, no JSON, no
-- idempotency). Created by the benchmark in the schema `bench`.
create schema bench;
create table bench.stock (
  product_id uuid, warehouse_id uuid, on_hand integer not null, reserved integer not null,
  primary key (product_id, warehouse_id), check (reserved <= on_hand));
insert into bench.stock select product_id, warehouse_id, on_hand, reserved from inventory.stock_levels;
create table bench.holds (
  id bigint generated always as identity primary key, product_id uuid not null, warehouse_id uuid not null,
  qty integer not null, order_ref text not null, created_at timestamptz not null default now());

create function bench.reserve(p_product_id uuid, p_warehouse_id uuid, p_qty integer, p_order_ref text)
returns bigint
language plpgsql volatile
as $$
declare
  v_id bigint;
begin
  update bench.stock set reserved = reserved + p_qty
  where product_id = p_product_id and warehouse_id = p_warehouse_id and on_hand - reserved >= p_qty;
  if not found then
    raise exception 'insufficient stock' using errcode = 'IV001';
  end if;
  insert into bench.holds (product_id, warehouse_id, qty, order_ref)
  values (p_product_id, p_warehouse_id, p_qty, p_order_ref)
  returning id into v_id;
  return v_id;
end
$$;

-- A basket: rows locked in key order first (as reserve does), then taken.
create function bench.reserve_basket(p_products uuid[], p_warehouses uuid[], p_qtys integer[], p_order_ref text)
returns void
language plpgsql volatile
as $$
begin
  perform 1 from (
    select 1 from bench.stock s
    join unnest(p_products, p_warehouses) r(product_id, warehouse_id) using (product_id, warehouse_id)
    order by s.product_id, s.warehouse_id for update of s) locked;
  with req as (select * from unnest(p_products, p_warehouses, p_qtys) r(product_id, warehouse_id, qty)),
  changed as (
    update bench.stock s set reserved = s.reserved + r.qty from req r
    where s.product_id = r.product_id and s.warehouse_id = r.warehouse_id and s.on_hand - s.reserved >= r.qty
    returning s.product_id, s.warehouse_id, r.qty)
  insert into bench.holds (product_id, warehouse_id, qty, order_ref)
  select product_id, warehouse_id, qty, p_order_ref from changed;
end
$$;
