-- Allocation for reserve(): given the requested lines (summed per row; a null
-- warehouse_id means "any warehouse") and what each candidate stock row has
-- available for them, returns what to take from each row, or every line that
-- cannot be met. A line without a warehouse fills from lower priority number
-- first, then the row with the most left after the named lines, then
-- warehouse code; it splits across rows when one is not enough.
-- Beyond available, a row whose policy allows it (its slot's backorderable)
-- takes the rest as a backorder: a named line on its own row; a line without
-- a warehouse on the rows of its product in priority order, then code. A
-- line is short only when available and backorderable together fall short.
-- p_ranks (channel lines, README "Sales channels"): for a product in it, a
-- line without a warehouse takes only from the rows ranked there, in the
-- order of the ranks (grp, priority, most left, tiebreak, code) instead of
-- (warehouse priority, most left, code); backorders likewise.
-- The one owner of these rules: reserve() and reserve_many() both call it.
drop function if exists inventory._allocate(inventory._line[], inventory._slot[]);
create or replace function inventory._allocate(
  p_lines inventory._line[],
  p_slots inventory._slot[],
  p_ranks inventory._rank[] default null,
  out take inventory._line[],
  out short jsonb,
  out backorder inventory._line[]
)
language plpgsql stable
as $$
declare
  v_backordered boolean;
  v_scoped uuid[]; -- the products p_ranks ranks
begin
  -- Every line names its warehouse: met or not, line by line.
  if not exists (select from unnest(p_lines) l where l.warehouse_id is null) then
    select jsonb_agg(jsonb_build_object('sku', p.sku, 'warehouse', w.code, 'requested', r.qty, 'available', coalesce(s.available, 0))
                       || case when s.backorderable > 0 then jsonb_build_object('backorderable', s.backorderable) else '{}' end
                     order by p.sku, w.code)
             filter (where r.qty > coalesce(s.available, 0) + greatest(coalesce(s.backorderable, 0), 0)),
           bool_or(r.qty > coalesce(s.available, 0))
    into short, v_backordered
    from unnest(p_lines) r
    left join unnest(p_slots) s on s.product_id = r.product_id and s.warehouse_id = r.warehouse_id
    join inventory.products p on p.id = r.product_id
    join inventory.warehouses w on w.id = r.warehouse_id;
    if short is null and not v_backordered then
      take := p_lines;
    elsif short is null then
      select array_agg(row(r.product_id, r.warehouse_id, least(r.qty, coalesce(s.available, 0)))::inventory._line
                       order by r.product_id, r.warehouse_id) filter (where coalesce(s.available, 0) > 0),
             array_agg(row(r.product_id, r.warehouse_id, r.qty - coalesce(s.available, 0))::inventory._line
                       order by r.product_id, r.warehouse_id) filter (where r.qty > coalesce(s.available, 0))
      into take, backorder
      from unnest(p_lines) r
      left join unnest(p_slots) s on s.product_id = r.product_id and s.warehouse_id = r.warehouse_id;
    end if;
    return;
  end if;

  if p_ranks is not null then
    v_scoped := array(select distinct k.product_id from unnest(p_ranks) k);
  end if;
  with req as (
    select l.product_id, l.warehouse_id, l.qty from unnest(p_lines) l
  ),
  -- is_open: a line without a warehouse may take from the row (for a ranked
  -- product, only a ranked row).
  slot as (
    select s.product_id, s.warehouse_id, coalesce(k.grp, 0) as grp, coalesce(k.priority, w.priority) as priority,
           coalesce(k.tiebreak, 0) as tiebreak, w.code, greatest(s.available, 0) as available,
           greatest(coalesce(s.backorderable, 0), 0) as backorderable, coalesce(r.qty, 0) as named,
           (k.product_id is not null or v_scoped is null or s.product_id <> all (v_scoped)) as is_open
    from unnest(p_slots) s
    join inventory.warehouses w on w.id = s.warehouse_id
    left join unnest(p_ranks) k on k.product_id = s.product_id and k.warehouse_id = s.warehouse_id
    left join req r on r.product_id = s.product_id and r.warehouse_id = s.warehouse_id
  ),
  open_line as (
    select s.product_id, s.warehouse_id, greatest(s.available - s.named, 0) as free, r.qty as wanted,
           coalesce(sum(greatest(s.available - s.named, 0)) over (
             partition by s.product_id
             order by s.grp, s.priority, greatest(s.available - s.named, 0) desc, s.tiebreak, s.code
             rows between unbounded preceding and 1 preceding), 0) as filled_before
    from slot s
    join req r on r.product_id = s.product_id and r.warehouse_id is null
    where s.is_open
  ),
  -- What a line without a warehouse still wants once every row's available is
  -- taken, and what each row can backorder after its named line's backorder.
  open_rest as (
    select r.product_id, greatest(r.qty - coalesce(sum(o.free), 0), 0) as rest
    from req r left join open_line o on o.product_id = r.product_id
    where r.warehouse_id is null
    group by r.product_id, r.qty
  ),
  open_backorder as (
    select s.product_id, s.warehouse_id, x.rest, greatest(s.backorderable - greatest(s.named - s.available, 0), 0) as room,
           coalesce(sum(greatest(s.backorderable - greatest(s.named - s.available, 0), 0)) over (
             partition by s.product_id order by s.grp, s.priority, s.tiebreak, s.code
             rows between unbounded preceding and 1 preceding), 0) as room_before
    from slot s join open_rest x on x.product_id = s.product_id
    where s.is_open
  ),
  allocation as (
    select s.product_id, s.warehouse_id,
           least(s.named, s.available) + coalesce(least(o.free, greatest(o.wanted - o.filled_before, 0)), 0) as qty,
           greatest(s.named - s.available, 0) + coalesce(least(b.room, greatest(b.rest - b.room_before, 0)), 0) as back
    from slot s
    left join open_line o on o.product_id = s.product_id and o.warehouse_id = s.warehouse_id
    left join open_backorder b on b.product_id = s.product_id and b.warehouse_id = s.warehouse_id
  ),
  shortfall as (
    select p.sku, w.code as warehouse, r.qty as requested, coalesce(s.available, 0) as available, coalesce(s.backorderable, 0) as backorderable
    from req r
    join inventory.products p on p.id = r.product_id
    join inventory.warehouses w on w.id = r.warehouse_id
    left join slot s on s.product_id = r.product_id and s.warehouse_id = r.warehouse_id
    where r.qty > coalesce(s.available, 0) + coalesce(s.backorderable, 0)
    union all
    select p.sku, null, r.qty, f.free, f.room
    from req r
    join inventory.products p on p.id = r.product_id
    cross join lateral (
      select coalesce(sum(greatest(s.available - s.named, 0)), 0) as free,
             coalesce(sum(greatest(s.backorderable - greatest(s.named - s.available, 0), 0)), 0) as room
      from slot s where s.product_id = r.product_id and s.is_open
    ) f
    where r.warehouse_id is null and r.qty > f.free + f.room
  )
  select
    (select array_agg(row(a.product_id, a.warehouse_id, a.qty)::inventory._line order by a.product_id, a.warehouse_id)
     from allocation a where a.qty > 0),
    (select array_agg(row(a.product_id, a.warehouse_id, a.back)::inventory._line order by a.product_id, a.warehouse_id)
     from allocation a where a.back > 0),
    (select jsonb_agg(jsonb_build_object('sku', f.sku, 'warehouse', f.warehouse, 'requested', f.requested, 'available', f.available)
                        || case when f.backorderable > 0 then jsonb_build_object('backorderable', f.backorderable) else '{}' end
                      order by f.sku, f.warehouse nulls last)
     from shortfall f)
  into take, backorder, short;
  if short is not null then
    take := null;
    backorder := null;
  end if;
end
$$;
comment on function inventory._allocate(inventory._line[], inventory._slot[], inventory._rank[]) is
  'Internal: reserve() allocation over what candidate rows have available (and may backorder); returns the take and backorder per row, or every short line';
