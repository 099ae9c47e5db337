-- The work of confirm_lines() (p_kind CONFIRM) and release_lines() (RELEASE):
-- settle part of a HELD reservation. p_lines is reserve()'s format and names
-- units the reservation holds: a line without a warehouse means the one
-- warehouse the reservation holds that sku in (IV005 when it holds it in
-- several, or nowhere); a kit line means its components, qty per kit each
-- (the kit's definition as it is now), and takes that many kits off the
-- reservation's kit lines. More units than the reservation holds on a row is
-- IV005, naming every such line: the request names units that are not there,
-- a wrong argument rather than short stock (IV001 would send a caller to
-- wait for stock that can never make it right).
-- The line's qty drops (and, confirmed, its `confirmed` grows). A reservation
-- left holding nothing ends: CONFIRMED when any of its units was confirmed,
-- else RELEASED with p_reason.
create or replace function inventory._settle_lines(
  p_reservation_id uuid,
  p_lines jsonb,
  p_kind text,
  p_reason text,
  p_idempotency_key text
) returns inventory.reservations
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_action text := case p_kind when 'CONFIRM' then 'confirm' else 'release' end;
  v_function text := case p_kind when 'CONFIRM' then 'confirm_lines' else 'release_lines' end;
  v_actor text := inventory._actor();
  v_request inventory._reserve_request;
  v_reservation inventory.reservations;
  v_problems jsonb;
  v_changes inventory._line[];
begin
  if p_reservation_id is null then
    perform inventory._raise('IV005', 'reservation_id must not be null', jsonb_build_object('argument', 'reservation_id'));
  end if;
  v_request := inventory._reserve_request(v_function, p_lines, interval '15 minutes', null, v_actor);
  perform inventory._raise_error(v_request.error);
  if v_request.ranks is not null then
    perform inventory._raise('IV005', format('%s takes a "channel" only on lines that name their warehouse', v_function),
      jsonb_build_object('argument', 'lines'), 'Name the warehouse, or leave out the channel: the lines are units the reservation holds.');
  end if;
  if v_request.kits is not null then
    perform inventory._lock_kits(v_request.kits);
    v_request := inventory._reserve_request(v_function, p_lines, interval '15 minutes', null, v_actor);
  end if;
  if p_idempotency_key is not null
     and not inventory._claim_operation_key(p_idempotency_key, v_function,
           concat_ws(chr(31), p_reservation_id, inventory._lines_digest(p_lines), p_reason)) then
    select * into v_reservation from inventory.reservations r where r.id = p_reservation_id;
    return v_reservation;
  end if;

  -- Only rows the reservation holds are touched: no other row is locked.
  v_reservation := inventory._locked_reservation_and_rows(p_reservation_id);
  if v_reservation.status <> 'HELD' then
    perform inventory._refuse_transition(v_reservation, v_action || ' lines of',
      format('it is %s%s', v_reservation.status, coalesce(' (' || inventory._clip(v_reservation.release_reason) || ')', '')),
      'Nothing is held any more. Retry with an idempotency key to make a repeated call safe.');
  elsif p_kind = 'CONFIRM' and v_reservation.expires_at <= now() then
    perform inventory._refuse_transition(v_reservation, 'confirm lines of',
      format('it expired at %s', v_reservation.expires_at),
      'Reserve again, and extend() a reservation while its payment is in flight.');
  end if;

  -- Lines without a warehouse: the one warehouse the reservation holds the sku in.
  select jsonb_agg(jsonb_build_object('sku', p.sku, 'requested', o.qty,
                     'held_in', coalesce((select jsonb_agg(w.code order by w.code)
                                          from inventory.reservation_lines l join inventory.warehouses w on w.id = l.warehouse_id
                                          where l.reservation_id = v_reservation.id and l.product_id = o.product_id and l.qty > 0), '[]'))
                   order by p.sku)
  into v_problems
  from unnest(v_request.lines) o
  join inventory.products p on p.id = o.product_id
  where o.warehouse_id is null
    and (select count(*) from inventory.reservation_lines l
         where l.reservation_id = v_reservation.id and l.product_id = o.product_id and l.qty > 0) <> 1;
  if v_problems is not null then
    perform inventory._raise('IV005',
      format('cannot %s lines of reservation %s: %s', v_action, v_reservation.id,
        (select string_agg(case jsonb_array_length(x -> 'held_in')
                             when 0 then format('it holds no %s', inventory._clip(x ->> 'sku'))
                             else format('it holds %s in %s warehouses (%s), say which', inventory._clip(x ->> 'sku'),
                                         jsonb_array_length(x -> 'held_in'),
                                         (select string_agg(inventory._clip(c), ', ') from jsonb_array_elements_text(x -> 'held_in') c))
                           end, '; ')
         from jsonb_array_elements(v_problems) x)),
      jsonb_build_object('argument', 'lines', 'reservation_id', v_reservation.id, 'lines', v_problems),
      format('Nothing was %s. Name the warehouse of each line; inventory.reservation_holds(reservation_id) shows what it holds where.',
             case p_kind when 'CONFIRM' then 'confirmed' else 'released' end));
  end if;

  -- The units asked for per row, against what the reservation holds there.
  with asked as (
    select a.product_id, a.warehouse_id, sum(a.qty)::bigint as qty
    from (
      select o.product_id,
             coalesce(o.warehouse_id, (select l.warehouse_id from inventory.reservation_lines l
                                       where l.reservation_id = v_reservation.id and l.product_id = o.product_id and l.qty > 0)) as warehouse_id,
             o.qty
      from unnest(v_request.lines) o
    ) a
    group by a.product_id, a.warehouse_id
  )
  select array_agg(row(a.product_id, a.warehouse_id, -a.qty)::inventory._line order by a.product_id, a.warehouse_id),
         jsonb_agg(jsonb_build_object('sku', p.sku, 'warehouse', w.code, 'requested', a.qty, 'held', coalesce(l.qty, 0))
                   order by p.sku, w.code) filter (where a.qty > coalesce(l.qty, 0))
  into v_changes, v_problems
  from asked a
  join inventory.products p on p.id = a.product_id
  join inventory.warehouses w on w.id = a.warehouse_id
  left join inventory.reservation_lines l
    on l.reservation_id = v_reservation.id and l.product_id = a.product_id and l.warehouse_id = a.warehouse_id;
  if v_problems is not null then
    perform inventory._raise('IV005',
      format('cannot %s more than reservation %s holds: %s', v_action, v_reservation.id,
        (select string_agg(format('%s at %s requested %s, held %s', inventory._clip(x ->> 'sku'), inventory._clip(x ->> 'warehouse'),
                                  x ->> 'requested', x ->> 'held'), '; ')
         from jsonb_array_elements(v_problems) x)),
      jsonb_build_object('argument', 'lines', 'reservation_id', v_reservation.id, 'lines', v_problems),
      format('Nothing was %s. inventory.reservation_holds(reservation_id) shows what it holds where.',
             case p_kind when 'CONFIRM' then 'confirmed' else 'released' end));
  end if;

  -- Kit lines: that many kits come off the reservation's kit lines (the
  -- warehouse asked first, then those left to allocation, then the others).
  if v_request.kits is not null then
    select jsonb_agg(jsonb_build_object('sku', p.sku, 'requested', n.qty, 'held', coalesce(h.qty, 0)) order by p.sku)
    into v_problems
    from (select k.product_id, sum(k.qty) as qty from unnest(v_request.kits) k group by 1) n
    join inventory.products p on p.id = n.product_id
    left join lateral (select sum(k.qty) as qty from inventory.reservation_kits k
                       where k.reservation_id = v_reservation.id and k.kit_id = n.product_id) h on true
    where n.qty > coalesce(h.qty, 0);
    if v_problems is not null then
      perform inventory._raise('IV005',
        format('cannot %s more kits than reservation %s holds: %s', v_action, v_reservation.id,
          (select string_agg(format('%s requested %s, held %s', inventory._clip(x ->> 'sku'), x ->> 'requested', x ->> 'held'), '; ')
           from jsonb_array_elements(v_problems) x)),
        jsonb_build_object('argument', 'lines', 'reservation_id', v_reservation.id, 'kits', v_problems),
        'Nothing was changed. Name the components instead of the kit, or fewer kits.');
    end if;
    -- Per kit, greedily over its kit lines: those in a warehouse the request
    -- names first, then those left to allocation, then the others.
    with wanted as (
      select k.product_id, sum(k.qty) as qty, array_agg(k.warehouse_id) filter (where k.warehouse_id is not null) as warehouses
      from unnest(v_request.kits) k group by k.product_id
    ),
    taken as (
      select r.kit_id, r.warehouse_id,
             least(r.qty, greatest(w.qty - coalesce(sum(r.qty) over (
               partition by r.kit_id
               order by coalesce(r.warehouse_id = any (w.warehouses), false) desc, (r.warehouse_id is null) desc, r.warehouse_id
               rows between unbounded preceding and 1 preceding), 0), 0)) as qty
      from wanted w
      join inventory.reservation_kits r on r.reservation_id = v_reservation.id and r.kit_id = w.product_id and r.qty > 0
    )
    update inventory.reservation_kits k
    set qty = k.qty - t.qty
    from taken t
    where k.reservation_id = v_reservation.id and k.kit_id = t.kit_id
      and k.warehouse_id is not distinct from t.warehouse_id and t.qty > 0;
  end if;

  perform inventory._change_holds(v_reservation, v_changes, p_kind, case when p_kind = 'RELEASE' then p_reason end, p_idempotency_key);

  -- Holding nothing (and waiting for nothing), the reservation ends.
  if not exists (select from inventory.reservation_lines l
                 where l.reservation_id = v_reservation.id and (l.qty > 0 or l.backordered > 0)) then
    update inventory.reservations r
    set status = case when exists (select from inventory.reservation_lines l
                                   where l.reservation_id = r.id and l.confirmed > 0) then 'CONFIRMED' else 'RELEASED' end,
        release_reason = case when exists (select from inventory.reservation_lines l
                                           where l.reservation_id = r.id and l.confirmed > 0) then null else p_reason end,
        updated_at = now()
    where r.id = v_reservation.id
    returning * into v_reservation;
  else
    update inventory.reservations r set updated_at = now() where r.id = v_reservation.id
    returning * into v_reservation;
  end if;
  return v_reservation;
end
$$;
comment on function inventory._settle_lines(uuid, jsonb, text, text, text) is
  'Internal: confirm or release part of a locked HELD reservation (confirm_lines, release_lines)';
