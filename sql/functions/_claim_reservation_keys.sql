-- Idempotency keys of reserve() and reserve_many(): takes a transaction-level
-- advisory lock per key, in one order, and returns the reservations that
-- already hold any of the keys. A concurrent call with the same key waits
-- here, before it has locked any stock row, then finds the winner's row.
-- (The unique index alone would make the second caller wait only when it
-- inserts, and reserve_many() inserts after locking its stock rows: a
-- reserve() holding the key and waiting for one of those rows would deadlock
-- with it.)
create or replace function inventory._claim_reservation_keys(p_keys text[]) returns setof inventory.reservations
language plpgsql volatile
as $$
begin
  perform pg_advisory_xact_lock(hashtextextended(k, 7466001202413))
  from (select distinct k from unnest(p_keys) k where k is not null order by 1) keys;
  return query select r.* from inventory.reservations r where r.idempotency_key = any (p_keys);
end
$$;
comment on function inventory._claim_reservation_keys(text[]) is
  'Internal: lock idempotency keys of reservations (advisory, in key order) and return the reservations holding them';
