-- IV006 when an idempotency key already names a reservation made from another
-- request (see _request_hash); null when the request is a retry of it.
create or replace function inventory._idempotency_error(p_existing inventory.reservations, p_request_hash text) returns inventory._error
language sql immutable
as $$
  select case when p_existing.request_hash is distinct from p_request_hash then
    row('IV006',
      format('idempotency key %s was already used for reservation %s with a different request',
        inventory._quote(p_existing.idempotency_key), p_existing.id),
      jsonb_build_object('idempotency_key', inventory._clip(p_existing.idempotency_key), 'reservation_id', p_existing.id,
                         'order_ref', inventory._clip(p_existing.order_ref)),
      'Use a new idempotency key for a different request; retry with the same lines, order_ref and ttl to get the first result.'
    )::inventory._error
  end
$$;
comment on function inventory._idempotency_error(inventory.reservations, text) is
  'Internal: IV006 when a reservation''s idempotency key is reused with another request, else null';
