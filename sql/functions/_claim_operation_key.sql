-- Idempotency for adjust() and transfer(): IV005 for a blank or over-long
-- key (checked here, where the key is used); true when this call claims the key
-- and should do the work; false when the key was used before for the same
-- request (the caller returns the current result); IV006 when it was used for
-- another request. A concurrent call with the same key waits for the first.
create or replace function inventory._claim_operation_key(p_key text, p_operation text, p_request text)
returns boolean
language plpgsql volatile
set search_path = pg_catalog, inventory, pg_temp
as $$
declare
  v_hash text := md5(p_operation || chr(31) || p_request);
  v_existing inventory.operation_keys;
begin
  if btrim(p_key) = '' then
    perform inventory._raise('IV005', 'idempotency_key must be null or a non-empty text',
      jsonb_build_object('argument', 'idempotency_key'));
  end if;
  perform inventory._check_length(p_key, 'idempotency_key', 'idempotency_key');
  insert into inventory.operation_keys (idempotency_key, operation, request_hash)
  values (p_key, p_operation, v_hash)
  on conflict (idempotency_key) do nothing;
  if found then
    return true;
  end if;
  select * into v_existing from inventory.operation_keys where idempotency_key = p_key;
  if v_existing.request_hash <> v_hash then
    perform inventory._raise('IV006',
      format('idempotency key %s was already used for another %s request', inventory._quote(p_key), v_existing.operation),
      jsonb_build_object('idempotency_key', inventory._clip(p_key), 'operation', v_existing.operation, 'first_used_at', v_existing.created_at),
      'Use a new idempotency key for a different request.');
  end if;
  return false;
end
$$;
comment on function inventory._claim_operation_key(text, text, text) is
  'Internal: claim an idempotency key for adjust()/transfer(); IV006 on reuse with another payload';
