-- Short lines of a request with kit lines: each short component row also
-- names the kits of the request that need it ("kits": [sku, ...]), since the
-- caller asked for the kit, not the component (a UI marks the kit's line).
create or replace function inventory._short_with_kits(p_short jsonb, p_kits inventory._line[]) returns jsonb
language sql stable
as $$
  select case when p_kits is null then p_short else (
    select jsonb_agg(s || coalesce((
        select jsonb_build_object('kits', jsonb_agg(distinct kp.sku))
        from unnest(p_kits) k
        join inventory.kit_components c on c.kit_id = k.product_id
        join inventory.products cp on cp.id = c.component_id and cp.sku = s ->> 'sku'
        join inventory.products kp on kp.id = k.product_id
        left join inventory.warehouses w on w.id = k.warehouse_id
        where (s ->> 'warehouse') is not distinct from w.code
        having count(*) > 0), '{}') order by n)
    from jsonb_array_elements(p_short) with ordinality x(s, n)) end
$$;
comment on function inventory._short_with_kits(jsonb, inventory._line[]) is 'Internal: IV001 short lines, each naming the request''s kits that need it';
