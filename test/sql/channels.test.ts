// Sales channels (README "Sales channels"): a channel sells from its own
// warehouses in an order of its own (PRIORITY, MOST_STOCK, NEAREST). A
// reserve line naming a channel allocates only among them; a warehouse
// outside it, an unknown channel, an empty channel are refused and write
// nothing; reserve_many and kits and backorders keep to the channel; a line
// without a channel allocates as it always did. Under many clients taking
// the last units through a channel, nothing is oversold and nothing comes
// from a warehouse outside it.
import anyTest, { type TestFn } from 'ava';
import type pg from 'pg';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import { invariantViolations, type Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';
import { reserve, snapshotOfWrites } from '../helpers/ledger.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

type Entry = { warehouse: string; priority?: number };

async function channel(db: Queryable, code: string, strategy: string, warehouses: Entry[], region: string | null = null): Promise<void> {
  await db.query('select inventory.upsert_channel($1, $2, $3, $4)', [code, `Channel ${code}`, strategy, region]);
  await db.query('select inventory.set_channel_warehouses($1, $2::jsonb)', [code, JSON.stringify(warehouses)]);
}

/** What a reservation holds, per warehouse: "WH1:2" sorted, for one sku (or all). */
async function holds(db: Queryable, reservationId: string, sku?: string): Promise<string[]> {
  const { rows } = await db.query<{ hold: string }>(`
    select w.code || ':' || l.qty || case when l.backordered > 0 then '+' || l.backordered else '' end as hold
    from inventory.reservation_lines l
    join inventory.warehouses w on w.id = l.warehouse_id join inventory.products p on p.id = l.product_id
    where l.reservation_id = $1 and ($2::text is null or p.sku = $2) and (l.qty > 0 or l.backordered > 0)
    order by w.code`, [reservationId, sku ?? null]);
  return rows.map((r) => r.hold);
}

test('upsert_channel, set_channel_warehouses and set_warehouse_region define channels; channels() lists them in their order', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 1, WH2: 1, WH3: 1 } });
  const created = await queryOne(db, `select * from inventory.upsert_channel('web', 'Web shop', 'PRIORITY')`);
  t.like(created, { code: 'web', name: 'Web shop', strategy: 'PRIORITY', region: null });
  await db.query(`select inventory.set_channel_warehouses('web', '[{"warehouse": "WH3", "priority": 1}, {"warehouse": "WH1", "priority": 5}]')`);
  await db.query(`select inventory.upsert_channel('retail', null, 'NEAREST', 'EU')`);
  // Priority left out: the entry's position.
  await db.query(`select inventory.set_channel_warehouses('retail', '[{"warehouse": "WH2"}, {"warehouse": "WH1"}]')`);
  const region = await queryOne(db, `select * from inventory.set_warehouse_region('WH2', 'EU')`);
  t.like(region, { code: 'WH2', region: 'EU', priority: 20 }); // the priority stays
  const { rows } = await db.query('select * from inventory.channels()');
  t.deepEqual(rows, [
    { code: 'retail', name: null, strategy: 'NEAREST', region: 'EU', warehouses: [
      { warehouse: 'WH2', priority: 1, region: 'EU' }, { warehouse: 'WH1', priority: 2, region: null }] },
    { code: 'web', name: 'Web shop', strategy: 'PRIORITY', region: null, warehouses: [
      { warehouse: 'WH3', priority: 1, region: null }, { warehouse: 'WH1', priority: 5, region: null }] },
  ]);
  // Setting again replaces; upsert keeps a name and region given as null; the strategy takes the value given.
  await db.query(`select inventory.set_channel_warehouses('web', '[{"warehouse": "WH2", "priority": 7}]')`);
  t.like(await queryOne(db, `select * from inventory.upsert_channel('web', null, 'MOST_STOCK')`), { name: 'Web shop', strategy: 'MOST_STOCK' });
  t.like(await queryOne(db, `select * from inventory.upsert_channel('retail', 'Stores', 'NEAREST')`), { name: 'Stores', region: 'EU' });
  t.deepEqual((await queryOne(db, `select warehouses from inventory.channels() where code = 'web'`)).warehouses,
    [{ warehouse: 'WH2', priority: 7, region: 'EU' }]);
  t.like(await queryOne(db, `select * from inventory.set_warehouse_region('WH2', null)`), { region: null });
});

test('definitions are refused with SQLSTATEs: bad strategy, unknown channel or warehouse, malformed or repeated entries', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 1 } });
  const bad = await rejectsWithCode(t, db.query(`select inventory.upsert_channel('web', null, 'CHEAPEST')`), 'IV005');
  t.regex(bad.message, /strategy must be PRIORITY, MOST_STOCK or NEAREST, got 'CHEAPEST'/);
  await rejectsWithCode(t, db.query(`select inventory.upsert_channel('web', null, null)`), 'IV005');
  await rejectsWithCode(t, db.query(`select inventory.upsert_channel(' web', null, 'PRIORITY')`), 'IV005');
  await rejectsWithCode(t, db.query(`select inventory.upsert_channel(repeat('c', 65), null, 'PRIORITY')`), 'IV005');
  await db.query(`select inventory.upsert_channel('web')`);
  t.like(await queryOne(db, `select strategy from inventory.channels where code = 'web'`), { strategy: 'PRIORITY' });
  const unknown = await rejectsWithCode(t, db.query(`select inventory.set_channel_warehouses('nope', '[{"warehouse": "WH9"}]')`), 'IV004');
  t.deepEqual(JSON.parse(unknown.detail!), { unknown_channels: ['nope'], unknown_warehouses: ['WH9'] });
  await rejectsWithCode(t, db.query(`select inventory.set_channel_warehouses('web', '[{"warehouse": "WH1"}, {"warehouse": "WH1"}]')`), 'IV005');
  await rejectsWithCode(t, db.query(`select inventory.set_channel_warehouses('web', '[{"warehouse": "WH1", "priority": 1.5}]')`), 'IV005');
  await rejectsWithCode(t, db.query(`select inventory.set_channel_warehouses('web', '[{"warehouse": "WH1", "rank": 1}]')`), 'IV005');
  await rejectsWithCode(t, db.query(`select inventory.set_channel_warehouses('web', '{"warehouse": "WH1"}')`), 'IV005');
  await rejectsWithCode(t, db.query(`select inventory.set_warehouse_region('WH9', 'EU')`), 'IV004');
  t.is((await queryOne(db, `select count(*)::int as n from inventory.channel_warehouses`)).n, 0);
});

test('PRIORITY allocates in the channel\'s own order, splitting, and never from a warehouse outside it', async (t) => {
  const { db } = t.context;
  // Warehouse priorities WH1=10, WH2=20, WH3=30: a plain line takes WH1 first.
  await setupCatalog(db, { A: { WH1: 5, WH2: 100, WH3: 2 } });
  await channel(db, 'web', 'PRIORITY', [{ warehouse: 'WH3', priority: 1 }, { warehouse: 'WH1', priority: 2 }]);
  const r = await reserve(db, 'web-1', [{ sku: 'A', qty: 4, channel: 'web' }]);
  t.deepEqual(await holds(db, r.id), ['WH1:2', 'WH3:2']);
  t.is((await stockOf(db, 'A', 'WH2'))!.reserved, 0);
  // 3 left in the channel (WH1): 4 more is short, though WH2 has 100.
  const short = await rejectsWithCode(t, reserve(db, 'web-2', [{ sku: 'A', qty: 4, channel: 'web' }]), 'IV001');
  t.deepEqual(JSON.parse(short.detail!).lines, [{ sku: 'A', warehouse: null, requested: 4, available: 3 }]);
  // A line of the same request naming WH2 locks WH2's row: still none of it for the channel line.
  const named = await rejectsWithCode(t, reserve(db, 'web-3', [{ sku: 'A', warehouse: 'WH2', qty: 1 }, { sku: 'A', qty: 4, channel: 'web' }]), 'IV001');
  t.deepEqual(JSON.parse(named.detail!).lines, [{ sku: 'A', warehouse: null, requested: 4, available: 3 }]);
  // A plain line is as it was: the warehouses' priority, any warehouse.
  const plain = await reserve(db, 'plain', [{ sku: 'A', qty: 5 }]);
  t.deepEqual(await holds(db, plain.id), ['WH1:3', 'WH2:2']);
});

test('MOST_STOCK takes the warehouse with most available first; ties go by the channel\'s order', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 3, WH2: 7, WH3: 7, WH4: 50 } });
  await channel(db, 'mkt', 'MOST_STOCK', [
    { warehouse: 'WH1', priority: 1 }, { warehouse: 'WH2', priority: 3 }, { warehouse: 'WH3', priority: 2 }]);
  const r = await reserve(db, 'mkt-1', [{ sku: 'A', qty: 9, channel: 'mkt' }]);
  t.deepEqual(await holds(db, r.id), ['WH2:2', 'WH3:7']); // WH3 before WH2 (priority 2 < 3), WH1 (3) untouched
  // Now WH2 has 5, WH1 3: most available first again.
  const next = await reserve(db, 'mkt-2', [{ sku: 'A', qty: 6, channel: 'mkt' }]);
  t.deepEqual(await holds(db, next.id), ['WH1:1', 'WH2:5']);
  t.is((await stockOf(db, 'A', 'WH4'))!.reserved, 0);
});

test('NEAREST takes the customer\'s region first (the line\'s, else the channel\'s), then the channel\'s order; ties by most available', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2, WH2: 2, WH3: 2, WH4: 2, WH5: 2 } });
  for (const [code, region] of [['WH1', 'EU'], ['WH2', 'US'], ['WH3', 'EU'], ['WH4', 'US'], ['WH5', 'US']]) {
    await db.query('select inventory.set_warehouse_region($1, $2)', [code, region]);
  }
  await channel(db, 'retail', 'NEAREST', [
    { warehouse: 'WH1', priority: 3 }, { warehouse: 'WH2', priority: 1 }, { warehouse: 'WH3', priority: 2 }, { warehouse: 'WH4', priority: 4 }], 'EU');
  // The line's region: US warehouses in the channel's order (WH2, WH4), then the rest in it (WH3, WH1). WH5 is not the channel's.
  const us = await reserve(db, 'us', [{ sku: 'A', qty: 5, channel: 'retail', region: 'US' }]);
  t.deepEqual(await holds(db, us.id), ['WH2:2', 'WH3:1', 'WH4:2']);
  // No region on the line: the channel's (EU): WH3 (priority 2, 1 left), WH1 (3), then WH2 (none left), WH4 (none left).
  const eu = await reserve(db, 'eu', [{ sku: 'A', qty: 3, channel: 'retail' }]);
  t.deepEqual(await holds(db, eu.id), ['WH1:2', 'WH3:1']);
  t.is((await stockOf(db, 'A', 'WH5'))!.reserved, 0);

  // Ties within the region (same channel priority): most available first, then code.
  await setupCatalog(db, { B: { WH1: 2, WH2: 9, WH3: 4 } });
  await channel(db, 'tie', 'NEAREST', [
    { warehouse: 'WH1', priority: 1 }, { warehouse: 'WH3', priority: 1 }, { warehouse: 'WH2', priority: 0 }]);
  const tie = await reserve(db, 'tie', [{ sku: 'B', qty: 5, channel: 'tie', region: 'EU' }]);
  t.deepEqual(await holds(db, tie.id), ['WH1:1', 'WH3:4']);
  // No region anywhere (the channel has none): the channel's order alone, like PRIORITY.
  const none = await reserve(db, 'none', [{ sku: 'B', qty: 10, channel: 'tie' }]);
  t.deepEqual(await holds(db, none.id), ['WH1:1', 'WH2:9']);
});

test('refused reserves write nothing: unknown channel (IV004), warehouse outside the channel and empty channel (IV005 naming the line)', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5, WH2: 5 } });
  await channel(db, 'web', 'PRIORITY', [{ warehouse: 'WH1' }]);
  await channel(db, 'empty', 'PRIORITY', []);
  const before = await snapshotOfWrites(db);

  const unknown = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', qty: 1, channel: 'nope' }]), 'IV004');
  t.is(unknown.message, "unknown channel 'nope'");
  t.deepEqual(JSON.parse(unknown.detail!), { unknown_skus: [], unknown_warehouses: [], unknown_channels: ['nope'] });
  // Unknown names together in one IV004.
  const all = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'NOPE', qty: 1, channel: 'web' }, { sku: 'A', qty: 1, channel: 'gone' }]), 'IV004');
  t.deepEqual(JSON.parse(all.detail!), { unknown_skus: ['NOPE'], unknown_warehouses: [], unknown_channels: ['gone'] });

  // Outside: one line naming its warehouse (the lean path's shape) and the second of two lines.
  const outside = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', warehouse: 'WH2', qty: 1, channel: 'web' }]), 'IV005');
  t.is(outside.message, "invalid reservation line 1: warehouse 'WH2' is not one of channel 'web''s warehouses");
  t.deepEqual(JSON.parse(outside.detail!), { argument: 'lines', line: 1, channel: 'web', warehouse: 'WH2' });
  const second = await rejectsWithCode(t, reserve(db, 'o', [
    { sku: 'A', warehouse: 'WH1', qty: 1, channel: 'web' }, { sku: 'A', warehouse: 'WH2', qty: 1, channel: 'web' }]), 'IV005');
  t.like(JSON.parse(second.detail!), { line: 2 });

  const empty = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', qty: 1 }, { sku: 'A', qty: 1, channel: 'empty' }]), 'IV005');
  t.is(empty.message, "invalid reservation line 2: channel 'empty' has no warehouses");

  // Malformed channel fields.
  await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', qty: 1, channel: '' }]), 'IV005');
  await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', qty: 1, channel: 7 }]), 'IV005');
  const region = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', qty: 1, region: 'EU' }]), 'IV005');
  t.regex(region.message, /"region" .* needs a "channel"/);
  const field = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', qty: 1, chanel: 'web' }]), 'IV005');
  t.regex(field.message, /unknown field\(s\) chanel/);
  // One product left open under two scopes in one request.
  const mixed = await rejectsWithCode(t, reserve(db, 'o', [{ sku: 'A', qty: 1 }, { sku: 'A', qty: 1, channel: 'web' }]), 'IV005');
  t.like(JSON.parse(mixed.detail!), { line: 2, lines: [1, 2], sku: 'A' });

  t.deepEqual(await snapshotOfWrites(db), before);
});

test('a channel line naming one of the channel\'s warehouses holds there; idempotency keys cover the channel', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5, WH2: 5 } });
  await channel(db, 'web', 'PRIORITY', [{ warehouse: 'WH2' }]);
  await channel(db, 'app', 'PRIORITY', [{ warehouse: 'WH1' }, { warehouse: 'WH2' }]);
  const named = await reserve(db, 'n', [{ sku: 'A', warehouse: 'WH2', qty: 2, channel: 'web' }]);
  t.deepEqual(await holds(db, named.id), ['WH2:2']);

  const first = await reserve(db, 'k', [{ sku: 'A', qty: 1, channel: 'web' }], '15 minutes', 'key-1');
  const again = await reserve(db, 'k', [{ sku: 'A', qty: 1, channel: 'web' }], '15 minutes', 'key-1');
  t.is(again.id, first.id);
  t.is((await stockOf(db, 'A', 'WH2'))!.reserved, 3);
  // The same lines on another channel, or without one, are another request.
  await rejectsWithCode(t, reserve(db, 'k', [{ sku: 'A', qty: 1, channel: 'app' }], '15 minutes', 'key-1'), 'IV006');
  await rejectsWithCode(t, reserve(db, 'k', [{ sku: 'A', qty: 1 }], '15 minutes', 'key-1'), 'IV006');
  await rejectsWithCode(t, reserve(db, 'k', [{ sku: 'A', qty: 1, channel: 'web', region: 'EU' }], '15 minutes', 'key-1'), 'IV006');
});

test('a kit line on a channel takes its components from the channel\'s warehouses only', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { LENS: { WH1: 10, WH2: 1, WH3: 1 }, CAP: { WH1: 10, WH2: 1, WH3: 3 } });
  await db.query(`select inventory.upsert_product('KIT')`);
  await db.query(`select inventory.set_kit('KIT', '[{"sku": "LENS", "qty": 1}, {"sku": "CAP", "qty": 2}]')`);
  await channel(db, 'web', 'PRIORITY', [{ warehouse: 'WH3', priority: 1 }, { warehouse: 'WH2', priority: 2 }]);
  const r = await reserve(db, 'kit', [{ sku: 'KIT', qty: 2, channel: 'web' }]);
  t.deepEqual(await holds(db, r.id, 'LENS'), ['WH2:1', 'WH3:1']);
  t.deepEqual(await holds(db, r.id, 'CAP'), ['WH2:1', 'WH3:3']);
  // Nothing left in the channel; WH1 has plenty, but it is not the channel's.
  await rejectsWithCode(t, reserve(db, 'kit-2', [{ sku: 'KIT', qty: 1, channel: 'web' }]), 'IV001');
  // A kit line naming a warehouse outside the channel is refused.
  await rejectsWithCode(t, reserve(db, 'kit-3', [{ sku: 'KIT', warehouse: 'WH1', qty: 1, channel: 'web' }]), 'IV005');
  // A component asked on its own without a channel, next to the kit on a channel: two scopes for LENS.
  await rejectsWithCode(t, reserve(db, 'kit-4', [{ sku: 'KIT', qty: 1, channel: 'web' }, { sku: 'LENS', qty: 1 }]), 'IV005');
});

test('a channel line backorders only on the channel\'s rows', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 1, WH2: 1, WH3: 0 } });
  await db.query(`select inventory.adjust('A', 'WH3', 1, 'row'), inventory.adjust('A', 'WH3', -1, 'row')`);
  await db.query(`select inventory.set_backorder_policy('A', 'WH1', 'BACKORDER', 10)`); // outside the channel
  await db.query(`select inventory.set_backorder_policy('A', 'WH3', 'BACKORDER', 2)`);
  await channel(db, 'web', 'PRIORITY', [{ warehouse: 'WH2', priority: 1 }, { warehouse: 'WH3', priority: 2 }]);
  // 1 available (WH2) + 2 backorderable (WH3) in the channel: 4 is short, 3 fits.
  const short = await rejectsWithCode(t, reserve(db, 'b', [{ sku: 'A', qty: 4, channel: 'web' }]), 'IV001');
  t.deepEqual(JSON.parse(short.detail!).lines, [{ sku: 'A', warehouse: null, requested: 4, available: 1, backorderable: 2 }]);
  const r = await reserve(db, 'b', [{ sku: 'A', qty: 3, channel: 'web' }]);
  t.deepEqual(await holds(db, r.id), ['WH2:1', 'WH3:0+2']);
  t.is((await queryOne(db, `select backordered from inventory.stock_levels s join inventory.warehouses w on w.id = s.warehouse_id where w.code = 'WH1'`)).backordered, 0);
});

test('reserve_many: channel lines keep to their channel, each request on its own; later requests see what earlier ones took', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 3, WH2: 3, WH3: 3 } });
  await channel(db, 'web', 'PRIORITY', [{ warehouse: 'WH3', priority: 1 }, { warehouse: 'WH2', priority: 2 }]);
  const { rows } = await db.query<{ request: number; id: string | null; sqlstate: string | null; detail: any }>(`
    select r.request, (r.reservation).id, r.sqlstate, r.detail from inventory.reserve_many($1::jsonb) r`, [JSON.stringify([
    { order_ref: 'm1', lines: [{ sku: 'A', qty: 4, channel: 'web' }] },
    { order_ref: 'm2', lines: [{ sku: 'A', qty: 4 }] },
    { order_ref: 'm3', lines: [{ sku: 'A', qty: 3, channel: 'web' }] },
    { order_ref: 'm4', lines: [{ sku: 'A', warehouse: 'WH1', qty: 1, channel: 'web' }] },
    { order_ref: 'm5', lines: [{ sku: 'A', qty: 1, channel: 'nope' }] },
    { order_ref: 'm6', lines: [{ sku: 'A', qty: 1, channel: 'web' }] },
  ])]);
  t.deepEqual(rows.map((r) => r.sqlstate ?? 'HELD'), ['HELD', 'HELD', 'IV001', 'IV005', 'IV004', 'HELD']);
  t.deepEqual(await holds(db, rows[0]!.id!), ['WH2:1', 'WH3:3']);
  t.deepEqual(await holds(db, rows[1]!.id!), ['WH1:3', 'WH2:1']); // plain: the warehouses' priority
  t.deepEqual(rows[2]!.detail.lines, [{ sku: 'A', warehouse: null, requested: 3, available: 1 }]);
  t.deepEqual(await holds(db, rows[5]!.id!), ['WH2:1']);
  t.is((await stockOf(db, 'A', 'WH2'))!.reserved, 3);
});

test('channel_stock sums what a channel can sell, per warehouse in its order; an unknown channel is IV004', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 4, WH2: 5, WH3: 6 }, B: { WH1: 1 } });
  await reserve(db, 'o', [{ sku: 'A', warehouse: 'WH3', qty: 2 }]);
  await channel(db, 'web', 'PRIORITY', [{ warehouse: 'WH3', priority: 1 }, { warehouse: 'WH2', priority: 2 }]);
  const { rows } = await db.query(`select * from inventory.channel_stock(array['A', 'B', 'NOPE'], 'web')`);
  t.deepEqual(rows, [
    { sku: 'A', warehouse: null, priority: null, on_hand: 11, available: 9 },
    { sku: 'A', warehouse: 'WH3', priority: 1, on_hand: 6, available: 4 },
    { sku: 'A', warehouse: 'WH2', priority: 2, on_hand: 5, available: 5 },
    { sku: 'B', warehouse: null, priority: null, on_hand: 0, available: 0 },
  ]);
  await rejectsWithCode(t, db.query(`select * from inventory.channel_stock(array['A'], 'nope')`), 'IV004');
});

test('channel_stock of a kit: the kit rule per warehouse in the channel, and in total over the channel\'s warehouses only', async (t) => {
  const { db } = t.context;
  // LENS in WH1 and WH2, CAP in WH2 and WH3: the kit (1 LENS + 2 CAP) has 2 in WH2 alone, more across warehouses.
  await setupCatalog(db, { LENS: { WH1: 6, WH2: 2, WH3: 0 }, CAP: { WH2: 4, WH3: 10 }, KIT: {} });
  await db.query(`select inventory.set_kit('KIT', '[{"sku": "LENS", "qty": 1}, {"sku": "CAP", "qty": 2}]')`);
  await channel(db, 'web', 'PRIORITY', [{ warehouse: 'WH2', priority: 1 }, { warehouse: 'WH1', priority: 2 }]);
  const { rows } = await db.query(`select * from inventory.channel_stock(array['KIT'], 'web')`);
  t.deepEqual(rows, [
    // LENS 6 + 2 = 8, CAP 4 (WH3 is not the channel's): min(8 / 1, 4 / 2) = 2
    { sku: 'KIT', warehouse: null, priority: null, on_hand: 2, available: 2 },
    { sku: 'KIT', warehouse: 'WH2', priority: 1, on_hand: 2, available: 2 },
    { sku: 'KIT', warehouse: 'WH1', priority: 2, on_hand: 0, available: 0 },
  ]);
  // What the channel says can be sold, a kit line through it can take; one more is short.
  await reserve(db, 'k', [{ sku: 'KIT', qty: 2, channel: 'web' }]);
  await rejectsWithCode(t, reserve(db, 'k2', [{ sku: 'KIT', qty: 1, channel: 'web' }]), 'IV001');
});

test('edit_reservation and confirm_lines take a channel only on lines naming their warehouse', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  await channel(db, 'web', 'PRIORITY', [{ warehouse: 'WH1' }]);
  const r = await reserve(db, 'e', [{ sku: 'A', qty: 2, channel: 'web' }]);
  await rejectsWithCode(t, db.query(`select inventory.edit_reservation($1, '[{"sku": "A", "qty": 3, "channel": "web"}]')`, [r.id]), 'IV005');
  await db.query(`select inventory.edit_reservation($1, '[{"sku": "A", "warehouse": "WH1", "qty": 3, "channel": "web"}]')`, [r.id]);
  await rejectsWithCode(t, db.query(`select inventory.confirm_lines($1, '[{"sku": "A", "qty": 1, "channel": "web"}]')`, [r.id]), 'IV005');
  t.deepEqual(await holds(db, r.id), ['WH1:3']);
});

test('a channel line locks only the channel\'s rows: a row outside it, locked by another transaction, does not hold it up', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5, WH2: 5 } });
  await channel(db, 'web', 'PRIORITY', [{ warehouse: 'WH1' }]);
  const other = await db.pool.connect();
  try {
    await other.query('begin');
    await other.query(`select inventory.adjust('A', 'WH2', 1, 'held open')`); // WH2's row stays locked until rollback
    const client = await db.pool.connect();
    try {
      await client.query(`set statement_timeout = '3s'`);
      const { rows } = await client.query(`select id from inventory.reserve('o', '[{"sku": "A", "qty": 2, "channel": "web"}]')`);
      t.deepEqual(await holds(db, rows[0].id), ['WH1:2']);
      // (A plain line would wait for WH2's row: it is a candidate of every line without a warehouse.)
      await rejectsWithCode(t, client.query(`select inventory.reserve('p', '[{"sku": "A", "qty": 2}]')`), '57014');
      await client.query('reset statement_timeout');
    } finally {
      client.release();
    }
  } finally {
    await other.query('rollback');
    other.release();
  }
});

test('many clients taking the last units through a channel: none oversold, none from outside the channel', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 6, WH2: 50, WH3: 5 }, B: { WH1: 4, WH2: 50, WH3: 4 } });
  await channel(db, 'web', 'MOST_STOCK', [{ warehouse: 'WH1', priority: 1 }, { warehouse: 'WH3', priority: 2 }]);
  const CLIENTS = 24;
  const clients: pg.PoolClient[] = await Promise.all(Array.from({ length: CLIENTS }, () => db.pool.connect()));
  await Promise.all(clients.map((c) => c.query('select 1')));
  const unexpected: string[] = [];
  let held = 0;
  try {
    await Promise.all(clients.map(async (client, i) => {
      for (let round = 0; round < 4; round++) {
        const qty = 1 + ((i + round) % 2);
        const lines = i % 3 === 0
          ? [{ sku: 'A', qty, channel: 'web' }, { sku: 'B', qty: 1, channel: 'web' }]
          : [{ sku: i % 3 === 1 ? 'A' : 'B', qty, channel: 'web' }];
        try {
          if (i % 4 === 3) {
            const { rows } = await client.query(`select r.sqlstate from inventory.reserve_many($1::jsonb) r`,
              [JSON.stringify([{ order_ref: `c${i}-${round}`, lines }, { order_ref: `c${i}-${round}b`, lines: [{ sku: 'B', qty: 1, channel: 'web' }] }])]);
            for (const row of rows) {
              if (row.sqlstate === null) held++;
              else if (row.sqlstate !== 'IV001') unexpected.push(`reserve_many ${row.sqlstate}`);
            }
          } else {
            await client.query('select inventory.reserve($1, $2::jsonb)', [`c${i}-${round}`, JSON.stringify(lines)]);
            held++;
          }
        } catch (error) {
          const code = (error as { code?: string }).code;
          if (code !== 'IV001') unexpected.push(`${code}: ${(error as Error).message}`);
        }
      }
    }));
  } finally {
    for (const c of clients) c.release();
  }
  t.deepEqual(unexpected, []);
  t.true(held > 0);
  // Whatever the race left in the channel goes to one more reserve; then nothing is left, and WH2 gave nothing.
  for (const sku of ['A', 'B']) {
    const { available } = await queryOne<{ available: number }>(db,
      `select available from inventory.channel_stock(array[$1], 'web') where warehouse is null`, [sku]);
    if (available > 0) await reserve(db, `rest-${sku}`, [{ sku, qty: available, channel: 'web' }]);
    await rejectsWithCode(t, reserve(db, `more-${sku}`, [{ sku, qty: 1, channel: 'web' }]), 'IV001');
    for (const wh of ['WH1', 'WH3']) t.is((await stockOf(db, sku, wh))!.available, 0, `${sku} at ${wh}`);
    t.is((await stockOf(db, sku, 'WH2'))!.reserved, 0, `${sku} at WH2 (outside the channel)`);
  }
  // What the HELD reservations hold is exactly the channel's units: 11 of A and 8 of B.
  const total = await queryOne<{ a: number; b: number }>(db, `
    select coalesce(sum(l.qty) filter (where p.sku = 'A'), 0)::int as a, coalesce(sum(l.qty) filter (where p.sku = 'B'), 0)::int as b
    from inventory.reservation_lines l join inventory.products p on p.id = l.product_id
    join inventory.reservations r on r.id = l.reservation_id where r.status = 'HELD'`);
  t.deepEqual(total, { a: 11, b: 8 });
  t.deepEqual(await invariantViolations(db), []);
});
