-- Who may call what. Re-applied after every migration run, with the functions.
-- The public (the API's callers without a token) reads the catalog: products,
-- warehouses, stock levels. Readers also read reservations and the ledger;
-- writers also change stock and reservations; admins also run maintenance.
-- Each role is a member of the one before. Internal helpers (inventory._*)
-- are callable by nobody but the owner.
revoke execute on all functions in schema inventory from public;

grant execute on function
  inventory.stock(text[]),
  inventory.kit_stock(text[]),
  inventory.channels(),
  inventory.channel_stock(text[], text),
  inventory.recently_updated(timestamptz, text, text, integer),
  inventory.stock_levels_available(inventory.stock_levels),
  inventory.available_to_promise(text, text, timestamptz)
to stockroom_public;

grant execute on function
  inventory.movement_history(text, text, text, timestamptz, timestamptz),
  inventory.reservation_holds(uuid),
  inventory.backorder_position(uuid),
  inventory.in_transit(text, text, text),
  inventory.inbound(text, text, boolean),
  inventory.stock_states(text[])
to stockroom_reader;

grant execute on function
  inventory.reserve(text, jsonb, interval, text),
  inventory.reserve_many(jsonb),
  inventory.confirm(uuid),
  inventory.release(uuid, text),
  inventory.extend(uuid, interval),
  inventory.edit_reservation(uuid, jsonb, text),
  inventory.confirm_lines(uuid, jsonb, text),
  inventory.release_lines(uuid, jsonb, text, text),
  inventory.adjust(text, text, integer, text, text),
  inventory.set_count(text, text, integer, text, integer),
  inventory.transfer(text, text, text, integer, text, text),
  inventory.ship_transfer(text, text, text, integer, text, text),
  inventory.receive_transfer(uuid, integer, text, text),
  inventory.write_off_transfer(uuid, text, integer, text),
  inventory.upsert_product(text, text),
  inventory.set_policy(text, text, integer, integer),
  inventory.set_kit(text, jsonb, integer),
  inventory.set_backorder_policy(text, text, text, integer, timestamptz),
  inventory.create_inbound(text, jsonb, text, text, timestamptz),
  inventory.receive_inbound(uuid, jsonb, text, boolean, text),
  inventory.close_inbound(uuid, text, text, text),
  inventory.cancel_inbound(uuid, text),
  inventory.move_stock_state(text, text, integer, text, text, text, text),
  inventory.adjust_state(text, text, text, integer, text, text)
to stockroom_writer;

grant execute on function
  inventory.upsert_warehouse(text, text, text, integer),
  inventory.define_quantity_state(text, text),
  inventory.set_warehouse_region(text, text),
  inventory.upsert_channel(text, text, text, text),
  inventory.set_channel_warehouses(text, jsonb),
  inventory.expire_due(integer),
  inventory.end_preorders(),
  inventory.verify_counters(boolean)
to stockroom_admin;
