-- What callers may pass, and how errors show what they passed (README
-- "Argument limits"). Every function of the SQL API checks its text arguments
-- against these maxima, before it looks anything up or writes anything, and
-- quotes arguments in its messages and details only through _clip and _quote.
--
-- Immutable SQL functions without SET: PostgreSQL inlines them into the
-- expression that calls them, and _max_length('sku') folds to the number
-- when that expression is planned, so a check costs one length() and one
-- comparison (reserve()'s lean path included). The functions of this file
-- are called by SQL functions, whose bodies are checked when they are
-- created: the file's name sorts before theirs (see src/db/migrate.ts).

-- The longest text, in characters, each kind of argument may be: the one
-- place these numbers live. Beyond it: IV005 with detail {"argument",
-- "max_length"}. An unknown kind fails loudly (a cast error naming it).
create or replace function inventory._max_length(p_kind text) returns integer
language sql immutable
as $$
  select case p_kind
    when 'sku' then 128             -- products.sku; its CHECK says the same
    when 'warehouse' then 64        -- warehouses.code; likewise
    when 'channel' then 64          -- channels.code; likewise
    when 'order_ref' then 200
    when 'reference' then 200       -- an inbound shipment's reference (a PO or RMA number)
    when 'idempotency_key' then 200
    when 'reason' then 500          -- adjust, set_count, transfer, the inbound functions (release takes one of a set)
    when 'name' then 200            -- product, warehouse and channel name, region
    when 'actor' then 200           -- reserve_many()'s per-request actor
    when 'cursor' then 128          -- recently_updated()'s after (its own cursors have about 100)
    else ('inventory._max_length: unknown kind ' || p_kind)::integer
  end
$$;
comment on function inventory._max_length(text) is 'Internal: the maximum length of a kind of text argument';

-- IV005 for a text argument longer than its kind allows, or null when it is
-- within it (or null). The message gives its length, never its text.
create or replace function inventory._length_error(p_value text, p_argument text, p_kind text) returns inventory._error
language sql immutable
as $$
  select case when length(p_value) > inventory._max_length(p_kind) then
    row('IV005',
      format('%s must be at most %s characters, got %s', p_argument, inventory._max_length(p_kind), length(p_value)),
      jsonb_build_object('argument', p_argument, 'max_length', inventory._max_length(p_kind)),
      null)::inventory._error
  end
$$;
comment on function inventory._length_error(text, text, text) is 'Internal: IV005 for a text argument over its maximum length, else null';

-- An argument as error details show it: itself when at most 64 characters,
-- else its first 64 and "…". The one owner of that bound: a 10 MB argument
-- must not put 10 MB into a message, a detail or the server log.
create or replace function inventory._clip(p_value text) returns text
language sql immutable
as $$
  select case when length(p_value) > 64 then left(p_value, 64) || '…' else p_value end
$$;
comment on function inventory._clip(text) is 'Internal: an argument cut to 64 characters (then …) for error messages and details';

-- An argument as messages quote it: _clip's text as an SQL literal ('A-1',
-- 'very long…'), NULL for null.
create or replace function inventory._quote(p_value text) returns text
language sql immutable
as $$
  select quote_nullable(inventory._clip(p_value))
$$;
comment on function inventory._quote(text) is 'Internal: an argument quoted for an error message, at most 64 characters of it';
