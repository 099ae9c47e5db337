-- A quantity state's code, checked: null stays null (the sellable units),
-- IV005 for a blank or malformed code (named as p_argument), IV004 when no
-- such state is defined.
create or replace function inventory._quantity_state(p_code text, p_argument text) returns text
language plpgsql stable
set search_path = pg_catalog, inventory, pg_temp
as $$
begin
  if p_code is null then
    return null;
  end if;
  if p_code !~ '^[A-Z][A-Z0-9_]{0,39}$' then
    perform inventory._raise('IV005', format('%s must be a state code (capital letters, digits and _, at most 40), got %s',
        p_argument, inventory._quote(p_code)), jsonb_build_object('argument', p_argument));
  end if;
  if not exists (select from inventory.quantity_states q where q.code = p_code) then
    perform inventory._raise('IV004', format('unknown quantity state %s', inventory._quote(p_code)),
      jsonb_build_object('state', p_code),
      'See inventory.quantity_states; define one with inventory.define_quantity_state(code, name).');
  end if;
  return p_code;
end
$$;
comment on function inventory._quantity_state(text, text) is 'Internal: a quantity state code, IV005 when malformed, IV004 when undefined';
