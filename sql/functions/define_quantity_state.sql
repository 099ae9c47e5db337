-- define_quantity_state(code, name): a state of unsellable on-hand units an
-- operator needs beside DAMAGED and QUALITY_CONTROL (RETURNED, EXPIRED, ...),
-- or a new name for one. Codes are capital letters, digits and _; a state is
-- never removed (the ledger names it).
create or replace function inventory.define_quantity_state(code text, name text) returns inventory.quantity_states
language plpgsql volatile security definer
set search_path = pg_catalog, inventory, pg_temp
as $$
#variable_conflict use_column
declare
  v_state inventory.quantity_states;
begin
  if define_quantity_state.code is null or define_quantity_state.code !~ '^[A-Z][A-Z0-9_]{0,39}$' then
    perform inventory._raise('IV005', format('code must be capital letters, digits and _ (at most 40, a letter first), got %s',
        coalesce(inventory._quote(define_quantity_state.code), 'null')), jsonb_build_object('argument', 'code'));
  end if;
  perform inventory._require_text(define_quantity_state.name, 'name', 'name');
  insert into inventory.quantity_states as q (code, name) values (define_quantity_state.code, define_quantity_state.name)
  on conflict (code) do update set name = excluded.name
  returning * into v_state;
  return v_state;
end
$$;
comment on function inventory.define_quantity_state(text, text) is
  'Define (or rename) a quantity state of unsellable on-hand units';
