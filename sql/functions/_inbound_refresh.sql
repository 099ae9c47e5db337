-- Sets a locked shipment's status from its lines' (the one statement of that
-- rule; README "Inbound stock and available-to-promise") and returns it:
--   CANCELLED     every line cancelled
--   RECEIVED      every line received in full
--   OPEN/PARTIAL  some line still expects units: PARTIAL once any unit came
--   CLOSED_SHORT  nothing expected any more, and not all of it came
create or replace function inventory._inbound_refresh(p_shipment_id uuid) returns inventory.inbound_shipments
language sql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
  update inventory.inbound_shipments s
  set status = x.status, updated_at = now()
  from (
    select case
             when bool_and(l.status = 'CANCELLED') then 'CANCELLED'
             when bool_and(l.status = 'RECEIVED') then 'RECEIVED'
             when bool_or(l.status in ('OPEN', 'PARTIAL')) then case when sum(l.qty_received) > 0 then 'PARTIAL' else 'OPEN' end
             else 'CLOSED_SHORT'
           end as status
    from inventory.inbound_lines l
    where l.shipment_id = p_shipment_id
  ) x
  where s.id = p_shipment_id
  returning s.*
$$;
comment on function inventory._inbound_refresh(uuid) is 'Internal: a shipment''s status from its lines''';
