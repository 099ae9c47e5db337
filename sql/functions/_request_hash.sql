-- Digest of a resolved reserve() request, stored with an idempotency key: a
-- retry with the same key must carry the same order_ref, ttl and lines (summed
-- per stock row, in key order). reserve() and reserve_many() share it, so a
-- key used through one is recognised through the other.
create or replace function inventory._request_hash(p_order_ref text, p_ttl interval, p_lines inventory._line[]) returns text
language sql immutable
as $$
  select md5(concat_ws(chr(31), p_order_ref, extract(epoch from p_ttl)::text, p_lines::text))
$$;
comment on function inventory._request_hash(text, interval, inventory._line[]) is 'Internal: digest of a reserve() request for its idempotency key';
