-- The request of a call that names lines (edit_reservation, confirm_lines,
-- release_lines) as its idempotency key records it: the lines summed per
-- (sku, warehouse or none), in that order, so a retry that lists the same
-- lines in another order, or splits one, is the same request. Taken from the
-- lines as written, not as resolved: a kit's definition changed between the
-- first call and its retry does not make the retry another request.
-- (Called after _reserve_request has checked the lines.)
create or replace function inventory._lines_digest(p_lines jsonb) returns text
language sql immutable
as $$
  select coalesce(jsonb_agg(jsonb_build_array(l.sku, l.warehouse, l.qty) order by l.sku, l.warehouse nulls first)::text, '[]')
  from (
    select e ->> 'sku' as sku, e ->> 'warehouse' as warehouse, sum((e ->> 'qty')::numeric)::bigint as qty
    from jsonb_array_elements(p_lines) e
    group by 1, 2
  ) l
$$;
comment on function inventory._lines_digest(jsonb) is 'Internal: checked request lines in one canonical text, for idempotency keys';
