-- Takes the shared lock of each kit's definition (_kit_lock_key), in kit id
-- order, until the transaction ends: set_kit() cannot change them meanwhile.
-- Shared advisory locks, not FOR SHARE on the kit rows: many concurrent
-- reserves of one kit would turn a row lock into a growing MultiXact.
create or replace function inventory._lock_kits(p_kits inventory._line[]) returns void
language plpgsql volatile
as $$
begin
  perform pg_advisory_xact_lock_shared(inventory._kit_lock_key(k.id))
  from (select distinct k.product_id as id from unnest(p_kits) k) k
  order by k.id;
end
$$;
comment on function inventory._lock_kits(inventory._line[]) is 'Internal: hold kits'' definitions (shared) for this transaction';
