-- The advisory lock of one kit's definition: set_kit() takes it exclusive,
-- reserve() shared for every kit it expands (in kit id order, before any
-- stock row), so a reserve expands one definition, whole.
create or replace function inventory._kit_lock_key(p_kit_id uuid) returns bigint
language sql immutable parallel safe
as $$ select uuid_hash_extended(p_kit_id, 1414) $$;
comment on function inventory._kit_lock_key(uuid) is 'Internal: advisory lock key of a kit''s definition';
