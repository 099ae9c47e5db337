-- Allocation for reserve(): given the requested lines (summed per row; a null
-- warehouse_id means "any warehouse") and what each candidate stock row has
-- available for them, returns what to take from each row, or every line that
-- cannot be met. A line without a warehouse fills from lower priority number
-- first, then the row with the most left after the named lines, then
-- warehouse code; it splits across rows when one is not enough.
-- The one owner of these rules: reserve() and reserve_many() both call it.
create or replace function inventory._allocate(
  p_lines inventory._line[],
  p_slots inventory._slot[],
  out take inventory._line[],
  out short jsonb
)
language plpgsql stable
as $$
begin
  -- Every line names its warehouse: met or not, line by line.
  if not exists (select from unnest(p_lines) l where l.warehouse_id is null) then
    select jsonb_agg(jsonb_build_object('sku', p.sku, 'warehouse', w.code, 'requested', r.qty, 'available', coalesce(s.available, 0))
                     order by p.sku, w.code)
    into short
    from unnest(p_lines) r
    left join unnest(p_slots) s on s.product_id = r.product_id and s.warehouse_id = r.warehouse_id
    join inventory.products p on p.id = r.product_id
    join inventory.warehouses w on w.id = r.warehouse_id
    where r.qty > coalesce(s.available, 0);
    if short is null then
      take := p_lines;
    end if;
    return;
  end if;

  with req as (
    select l.product_id, l.warehouse_id, l.qty from unnest(p_lines) l
  ),
  slot as (
    select s.product_id, s.warehouse_id, w.priority, w.code, greatest(s.available, 0) as available,
           coalesce(r.qty, 0) as named
    from unnest(p_slots) s
    join inventory.warehouses w on w.id = s.warehouse_id
    left join req r on r.product_id = s.product_id and r.warehouse_id = s.warehouse_id
  ),
  open_line as (
    select s.product_id, s.warehouse_id, greatest(s.available - s.named, 0) as free, r.qty as wanted,
           coalesce(sum(greatest(s.available - s.named, 0)) over (
             partition by s.product_id
             order by s.priority, greatest(s.available - s.named, 0) desc, s.code
             rows between unbounded preceding and 1 preceding), 0) as filled_before
    from slot s
    join req r on r.product_id = s.product_id and r.warehouse_id is null
  ),
  allocation as (
    select s.product_id, s.warehouse_id,
           s.named + coalesce(least(o.free, greatest(o.wanted - o.filled_before, 0)), 0) as qty
    from slot s
    left join open_line o on o.product_id = s.product_id and o.warehouse_id = s.warehouse_id
  ),
  shortfall as (
    select p.sku, w.code as warehouse, r.qty as requested, coalesce(s.available, 0) as available
    from req r
    join inventory.products p on p.id = r.product_id
    join inventory.warehouses w on w.id = r.warehouse_id
    left join slot s on s.product_id = r.product_id and s.warehouse_id = r.warehouse_id
    where r.qty > coalesce(s.available, 0)
    union all
    select p.sku, null, r.qty, f.free
    from req r
    join inventory.products p on p.id = r.product_id
    cross join lateral (
      select coalesce(sum(greatest(s.available - s.named, 0)), 0) as free
      from slot s where s.product_id = r.product_id
    ) f
    where r.warehouse_id is null and r.qty > f.free
  )
  select
    (select array_agg(row(a.product_id, a.warehouse_id, a.qty)::inventory._line order by a.product_id, a.warehouse_id)
     from allocation a where a.qty > 0),
    (select jsonb_agg(jsonb_build_object('sku', f.sku, 'warehouse', f.warehouse, 'requested', f.requested, 'available', f.available)
                      order by f.sku, f.warehouse nulls last)
     from shortfall f)
  into take, short;
  if short is not null then
    take := null;
  end if;
end
$$;
comment on function inventory._allocate(inventory._line[], inventory._slot[]) is
  'Internal: reserve() allocation over what candidate rows have available; returns the take per row or every short line';
