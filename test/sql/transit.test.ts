// Transfers in transit: ship_transfer (TRANSIT_OUT at the source),
// receive_transfer (TRANSIT_IN at the destination, in parts), write_off_transfer
// (TRANSIT_LOST on the source, on_hand unchanged), in_transit() per route.
// useDatabase checks after every test that each shipment agrees with its
// movements and in_transit() with the ledger (transitViolations).
import anyTest, { type TestFn } from 'ava';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import { transitViolations, type Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog, stockOf } from '../helpers/inventory.ts';
import { lastMovementId, sessionUser, snapshotOfWrites } from '../helpers/ledger.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

interface Shipment {
  id: string; reference: string; qty_shipped: number; qty_received: number; qty_lost: number; qty_in_transit: number;
  status: string; reason: string; idempotency_key: string | null; closed_at: Date | null;
}

const ship = (db: Queryable, sku: string, from: string, to: string, qty: number | null, reason: string | null = 'rebalance', key: string | null = null) =>
  queryOne<Shipment>(db, 'select * from inventory.ship_transfer($1, $2, $3, $4, $5, $6)', [sku, from, to, qty, reason, key]);
const receive = (db: Queryable, id: string | null, qty: number | null, reason: string | null = 'arrived', key: string | null = null) =>
  queryOne<Shipment>(db, 'select * from inventory.receive_transfer($1, $2, $3, $4)', [id, qty, reason, key]);
const writeOff = (db: Queryable, id: string | null, reason: string | null, qty: number | null = null, key: string | null = null) =>
  queryOne<Shipment>(db, 'select * from inventory.write_off_transfer($1, $2, $3, $4)', [id, reason, qty, key]);

/** Every call's writes, plus the shipments: a refused or replayed call changes none of them. */
async function snapshot(db: Queryable) {
  return {
    ...(await snapshotOfWrites(db)),
    shipments: (await db.query('select * from inventory.transit_shipments order by id')).rows,
  };
}

/** The movements after `mark`, with their shipment-relevant columns. */
async function movementsAfter(db: Queryable, mark: number) {
  const { rows } = await db.query(`
    select m.kind, p.sku, w.code as warehouse, m.on_hand_delta, m.reserved_delta, m.transit_delta, m.on_hand_after, m.reason, m.reference, m.idempotency_key, m.actor
    from inventory.movements m join inventory.products p on p.id = m.product_id join inventory.warehouses w on w.id = m.warehouse_id
    where m.id > $1 order by m.id`, [mark]);
  return rows;
}

const inTransit = async (db: Queryable, filter: { sku?: string; from?: string; to?: string } = {}) =>
  (await db.query('select sku, from_warehouse, to_warehouse, shipments, qty_in_transit::int as qty from inventory.in_transit($1, $2, $3)',
    [filter.sku ?? null, filter.from ?? null, filter.to ?? null])).rows;

test('ship takes the units off the source now and puts them in transit; the destination is untouched', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 1 } });
  const mark = await lastMovementId(db);
  const shipment = await ship(db, 'A', 'WH1', 'WH2', 4, 'rebalance', 'ship-1');
  t.like(shipment, { qty_shipped: 4, qty_received: 0, qty_lost: 0, qty_in_transit: 4, status: 'IN_TRANSIT', reason: 'rebalance', idempotency_key: 'ship-1', closed_at: null });
  t.is(shipment.reference, `transit:${shipment.id}`);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 6, reserved: 0 });
  t.is(await stockOf(db, 'A', 'WH2'), undefined, 'no destination row until something arrives');
  t.deepEqual(await movementsAfter(db, mark), [
    { kind: 'TRANSIT_OUT', sku: 'A', warehouse: 'WH1', on_hand_delta: -4, reserved_delta: 0, transit_delta: 4, on_hand_after: 6,
      reason: 'rebalance', reference: shipment.reference, idempotency_key: 'ship-1', actor: await sessionUser(db) },
  ]);
  t.deepEqual(await inTransit(db), [{ sku: 'A', from_warehouse: 'WH1', to_warehouse: 'WH2', shipments: 1, qty: 4 }]);
});

test('a partial receipt moves that part to the destination; the rest stays in transit', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 2 } });
  const shipment = await ship(db, 'A', 'WH1', 'WH2', 6);
  const mark = await lastMovementId(db);
  const after = await receive(db, shipment.id, 2, 'pallet 1 of 3');
  t.like(after, { qty_received: 2, qty_lost: 0, qty_in_transit: 4, status: 'PARTIAL', closed_at: null });
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 4 });
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 4 });
  t.like((await movementsAfter(db, mark))[0], { kind: 'TRANSIT_IN', warehouse: 'WH2', on_hand_delta: 2, transit_delta: -2, on_hand_after: 4,
    reason: 'pallet 1 of 3', reference: shipment.reference });
  t.deepEqual(await inTransit(db), [{ sku: 'A', from_warehouse: 'WH1', to_warehouse: 'WH2', shipments: 1, qty: 4 }]);
});

test('receiving the rest closes the shipment as RECEIVED and it leaves in_transit(); the destination row is made when missing', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 0 } });
  const shipment = await ship(db, 'A', 'WH1', 'WH2', 5);
  await receive(db, shipment.id, 3);
  const done = await receive(db, shipment.id, 2);
  t.like(done, { qty_received: 5, qty_in_transit: 0, status: 'RECEIVED' });
  t.truthy(done.closed_at);
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 5, available: 5 });
  t.deepEqual(await inTransit(db), []);
  const error = await rejectsWithCode(t, receive(db, shipment.id, 1), 'IV003');
  t.regex(error.message, /is RECEIVED, nothing of it is in transit/);
  t.like(JSON.parse(error.detail!), { shipment_id: shipment.id, status: 'RECEIVED', qty_in_transit: 0 });
  t.truthy(error.hint);
});

test('a write-off takes all that is left out of transit by default, on the source row with on_hand unchanged: CLOSED', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 0 } });
  const shipment = await ship(db, 'A', 'WH1', 'WH2', 5);
  await receive(db, shipment.id, 2);
  const source = (await stockOf(db, 'A', 'WH1'))!;
  const mark = await lastMovementId(db);
  const closed = await writeOff(db, shipment.id, 'carrier lost a box', null, 'lost-1');
  t.like(closed, { qty_received: 2, qty_lost: 3, qty_in_transit: 0, status: 'CLOSED' });
  t.truthy(closed.closed_at);
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: source.on_hand, version: source.version + 1 });
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 2 });
  t.deepEqual((await movementsAfter(db, mark)).map((m) => [m.kind, m.warehouse, m.on_hand_delta, m.transit_delta, m.reason, m.reference, m.idempotency_key]),
    [['TRANSIT_LOST', 'WH1', 0, -3, 'carrier lost a box', shipment.reference, 'lost-1']]);
  t.deepEqual(await inTransit(db), []);
  await rejectsWithCode(t, writeOff(db, shipment.id, 'again'), 'IV003');
});

test('a partial write-off leaves the rest in transit to be received', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 0 } });
  const shipment = await ship(db, 'A', 'WH1', 'WH2', 5);
  t.like(await writeOff(db, shipment.id, 'damaged on the way', 1), { qty_lost: 1, qty_in_transit: 4, status: 'PARTIAL' });
  t.like(await receive(db, shipment.id, 4), { qty_received: 4, qty_lost: 1, qty_in_transit: 0, status: 'CLOSED' });
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 4 });
});

test('receiving or writing off more than is in transit is IV005 naming what is left; nothing written', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 0 } });
  const shipment = await ship(db, 'A', 'WH1', 'WH2', 5);
  await receive(db, shipment.id, 3);
  const before = await snapshot(db);
  const error = await rejectsWithCode(t, receive(db, shipment.id, 3), 'IV005');
  t.regex(error.message, /cannot receive 3 units of shipment .*: only 2 are in transit/);
  t.deepEqual(JSON.parse(error.detail!), { argument: 'qty', requested: 3, shipment_id: shipment.id, status: 'PARTIAL',
    qty_shipped: 5, qty_received: 3, qty_lost: 0, qty_in_transit: 2 });
  t.regex(error.hint!, /Receive at most 2; what never arrives is written off with write_off_transfer/);
  const writeOffError = await rejectsWithCode(t, writeOff(db, shipment.id, 'lost', 3), 'IV005');
  t.regex(writeOffError.message, /cannot write off 3 units/);
  t.deepEqual(await snapshot(db), before);
});

test('bad input is IV005 or IV004, before anything is written', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 0 } });
  await db.query(`select inventory.upsert_product('KIT'); select inventory.set_kit('KIT', '[{"sku": "A", "qty": 1}]')`);
  const shipment = await ship(db, 'A', 'WH1', 'WH2', 5);
  const before = await snapshot(db);
  const cases: Array<[Promise<unknown>, string, Record<string, unknown>]> = [
    [ship(db, 'A', 'WH1', 'WH2', 0), 'IV005', { argument: 'qty' }],
    [ship(db, 'A', 'WH1', 'WH2', -1), 'IV005', { argument: 'qty' }],
    [ship(db, 'A', 'WH1', 'WH2', null), 'IV005', { argument: 'qty' }],
    [ship(db, 'A', 'WH1', 'WH1', 1), 'IV005', { argument: 'to_warehouse' }],
    [ship(db, 'A', 'WH1', 'WH2', 1, ' '), 'IV005', { argument: 'reason' }],
    [ship(db, 'A', 'WH1', 'WH2', 1, 'r', ' '), 'IV005', { argument: 'idempotency_key' }],
    [ship(db, 'KIT', 'WH1', 'WH2', 1), 'IV005', { argument: 'sku', sku: 'KIT' }],
    [ship(db, 'NOPE', 'WH1', 'WH2', 1), 'IV004', { sku: 'NOPE' }],
    [ship(db, 'A', 'WH9', 'WH2', 1), 'IV004', { warehouse: 'WH9' }],
    [ship(db, 'A', 'WH1', 'WH9', 1), 'IV004', { warehouse: 'WH9' }],
    [receive(db, shipment.id, 0), 'IV005', { argument: 'qty' }],
    [receive(db, shipment.id, null), 'IV005', { argument: 'qty' }],
    [receive(db, shipment.id, 1, null), 'IV005', { argument: 'reason' }],
    [receive(db, null, 1), 'IV005', { argument: 'shipment_id' }],
    [receive(db, '00000000-0000-7000-8000-000000000000', 1), 'IV004', { shipment_id: '00000000-0000-7000-8000-000000000000' }],
    [writeOff(db, shipment.id, 'lost', 0), 'IV005', { argument: 'qty' }],
    [writeOff(db, shipment.id, ''), 'IV005', { argument: 'reason' }],
    [writeOff(db, null, 'lost'), 'IV005', { argument: 'shipment_id' }],
    [writeOff(db, '00000000-0000-7000-8000-000000000000', 'lost'), 'IV004', { shipment_id: '00000000-0000-7000-8000-000000000000' }],
  ];
  for (const [call, code, detail] of cases) {
    const error = await rejectsWithCode(t, call, code);
    t.deepEqual(JSON.parse(error.detail!), detail, error.message);
  }
  await rejectsWithCode(t, inTransit(db, { sku: 'NOPE' }), 'IV004');
  await rejectsWithCode(t, inTransit(db, { to: 'WH9' }), 'IV004');
  t.deepEqual(await snapshot(db), before);
});

test('shipping below reserved is IV002, as transfer; nothing written', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 0 } });
  await db.query(`select inventory.reserve('o-1', '[{"sku":"A","warehouse":"WH1","qty":7}]')`);
  const before = await snapshot(db);
  const error = await rejectsWithCode(t, ship(db, 'A', 'WH1', 'WH2', 4), 'IV002');
  t.deepEqual(JSON.parse(error.detail!), { sku: 'A', warehouse: 'WH1', on_hand: 10, reserved: 7, qty: 4 });
  t.regex(error.message, /shipping 4 of A out of WH1 would take on_hand to 6, below the 7 reserved/);
  t.regex(error.hint!, /Nothing was shipped/);
  await rejectsWithCode(t, ship(db, 'A', 'WH2', 'WH1', 1), 'IV002'); // no row at all
  t.deepEqual(await snapshot(db), before);
  t.like(await ship(db, 'A', 'WH1', 'WH2', 3), { qty_in_transit: 3 });
});

test('retries with the same key apply once and return the shipment as it is now; another request with the key is IV006', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 0 } });
  const first = await ship(db, 'A', 'WH1', 'WH2', 5, 'rebalance', 'k-ship');
  await receive(db, first.id, 2, 'arrived', 'k-recv');
  await writeOff(db, first.id, 'broken', 1, 'k-lost');
  const before = await snapshot(db);
  const again = await ship(db, 'A', 'WH1', 'WH2', 5, 'rebalance', 'k-ship');
  t.is(again.id, first.id);
  t.like(again, { qty_received: 2, qty_lost: 1, qty_in_transit: 2 }, 'as it is now');
  t.like(await receive(db, first.id, 2, 'arrived', 'k-recv'), { qty_received: 2 });
  t.like(await writeOff(db, first.id, 'broken', 1, 'k-lost'), { qty_lost: 1 });
  t.deepEqual(await snapshot(db), before, 'no second change');
  for (const call of [ship(db, 'A', 'WH1', 'WH2', 4, 'rebalance', 'k-ship'), receive(db, first.id, 1, 'arrived', 'k-recv'),
    writeOff(db, first.id, 'broken', null, 'k-lost'), receive(db, first.id, 1, 'arrived', 'k-ship')]) {
    await rejectsWithCode(t, call, 'IV006');
  }
  t.deepEqual(await snapshot(db), before);
  // A refused call does not use up its key.
  await rejectsWithCode(t, receive(db, first.id, 9, 'arrived', 'k-late'), 'IV005');
  t.like(await receive(db, first.id, 2, 'arrived', 'k-late'), { status: 'CLOSED' });
});

test('in_transit sums open shipments per route and filters by sku, source and destination', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 20, WH2: 20 }, B: { WH1: 20, WH3: 0 } });
  await ship(db, 'A', 'WH1', 'WH2', 2);
  await ship(db, 'A', 'WH1', 'WH2', 3);
  await ship(db, 'A', 'WH2', 'WH1', 4);
  const b = await ship(db, 'B', 'WH1', 'WH3', 5);
  const closed = await ship(db, 'B', 'WH1', 'WH2', 1);
  await receive(db, closed.id, 1);
  await receive(db, b.id, 1);
  t.deepEqual(await inTransit(db), [
    { sku: 'A', from_warehouse: 'WH1', to_warehouse: 'WH2', shipments: 2, qty: 5 },
    { sku: 'A', from_warehouse: 'WH2', to_warehouse: 'WH1', shipments: 1, qty: 4 },
    { sku: 'B', from_warehouse: 'WH1', to_warehouse: 'WH3', shipments: 1, qty: 4 },
  ]);
  t.deepEqual((await inTransit(db, { sku: 'B' })).map((r) => r.qty), [4]);
  t.deepEqual((await inTransit(db, { from: 'WH1' })).map((r) => `${r.sku}:${r.to_warehouse}`), ['A:WH2', 'B:WH3']);
  t.deepEqual((await inTransit(db, { to: 'WH1' })).map((r) => `${r.sku}:${r.from_warehouse}`), ['A:WH2']);
  const { rows } = await db.query(`select kind from inventory.movement_history(kind => 'TRANSIT_IN')`);
  t.is(rows.length, 2, 'movement_history knows the new kinds');
});

test('receipts fill waiting backorders at the destination, as any receipt does', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 0 } });
  await db.query(`select inventory.set_backorder_policy('A', 'WH2', 'BACKORDER', backorder_limit => 5)`);
  const { id } = await queryOne<{ id: string }>(db, `select id from inventory.reserve('o-b', '[{"sku":"A","warehouse":"WH2","qty":3}]')`);
  const shipment = await ship(db, 'A', 'WH1', 'WH2', 5);
  await receive(db, shipment.id, 5);
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 5, reserved: 3 });
  const { rows } = await db.query(`select kind from inventory.movements where reservation_id = $1 order by id`, [id]);
  t.deepEqual(rows.map((r) => r.kind), ['BACKORDER', 'FILL']);
});

test('nobody deletes a shipment: the ledger points at it', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 0 } });
  await ship(db, 'A', 'WH1', 'WH2', 5);
  await rejectsWithCode(t, db.query('delete from inventory.transit_shipments'), '42501');
  await rejectsWithCode(t, db.query('truncate inventory.transit_shipments'), '42501');
  t.is((await db.query('select 1 from inventory.transit_shipments')).rowCount, 1);
});

test('32 clients receiving parts of one shipment at once never receive more than was shipped', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 100 }, B: { WH2: 0 } });
  const shipment = await ship(db, 'A', 'WH1', 'WH2', 50);
  // 32 × 2 = 64 units asked for, 50 in transit: 25 receipts succeed, 7 are refused.
  const results = await Promise.allSettled(Array.from({ length: 32 }, () => receive(db, shipment.id, 2)));
  const refused = results.filter((r) => r.status === 'rejected').map((r) => (r.reason as { code: string }).code);
  t.is(results.filter((r) => r.status === 'fulfilled').length, 25);
  t.true(refused.every((code) => code === 'IV003' || code === 'IV005'), refused.join(', '));
  t.is(refused.length, 7);
  t.like(await queryOne<Shipment>(db, 'select * from inventory.transit_shipments where id = $1', [shipment.id]),
    { qty_received: 50, qty_in_transit: 0, status: 'RECEIVED' });
  t.like(await stockOf(db, 'A', 'WH2'), { on_hand: 50 });
});

test('concurrent receipts and write-offs of one shipment together never exceed what was shipped', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 100 }, B: { WH2: 0 } });
  const shipment = await ship(db, 'A', 'WH1', 'WH2', 40);
  const calls = Array.from({ length: 32 }, (_, i) => (i % 2 === 0 ? receive(db, shipment.id, 3) : writeOff(db, shipment.id, 'lost', 2)));
  await Promise.allSettled(calls);
  const after = await queryOne<Shipment>(db, 'select * from inventory.transit_shipments where id = $1', [shipment.id]);
  t.true(after.qty_received + after.qty_lost <= 40);
  t.is(after.qty_received + after.qty_lost + after.qty_in_transit, 40);
  t.true(after.qty_in_transit < 2, `in transit ${after.qty_in_transit}: every call that fit went through`);
});

test('concurrent ships from the last units never take on_hand below reserved', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 20 }, B: { WH2: 0, WH3: 0 } });
  await db.query(`select inventory.reserve('o-1', '[{"sku":"A","warehouse":"WH1","qty":5}]')`);
  // 15 units may leave; 32 clients ship 1 each, to two destinations.
  const results = await Promise.allSettled(Array.from({ length: 32 }, (_, i) => ship(db, 'A', 'WH1', i % 2 ? 'WH2' : 'WH3', 1)));
  t.is(results.filter((r) => r.status === 'fulfilled').length, 15);
  t.true(results.every((r) => r.status === 'fulfilled' || (r.reason as { code: string }).code === 'IV002'));
  t.like(await stockOf(db, 'A', 'WH1'), { on_hand: 5, reserved: 5 });
  const total = (await inTransit(db, { sku: 'A' })).reduce((sum, r) => sum + r.qty, 0);
  t.is(total, 15);
});

test('the ledger conserves units: source, destination and transit add up to what there was', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 30, WH2: 10 } });
  const s1 = await ship(db, 'A', 'WH1', 'WH2', 12);
  const s2 = await ship(db, 'A', 'WH2', 'WH1', 6);
  await receive(db, s1.id, 5);
  await writeOff(db, s1.id, 'lost', 2);
  await receive(db, s2.id, 6);
  const { on_hand } = await queryOne<{ on_hand: number }>(db,
    `select sum(on_hand)::int as on_hand from inventory.stock_levels s join inventory.products p on p.id = s.product_id where p.sku = 'A'`);
  const transit = (await inTransit(db, { sku: 'A' })).reduce((sum, r) => sum + r.qty, 0);
  const { lost } = await queryOne<{ lost: number }>(db, `select -sum(transit_delta)::int as lost from inventory.movements where kind = 'TRANSIT_LOST'`);
  t.is(transit, 5);
  t.is(lost, 2);
  t.is(on_hand + transit + lost, 40, 'on hand + in transit + written off = received');
  // Per shipment, Σ transit_delta of its movements is what is in transit.
  const { rows } = await db.query(`select reference, sum(transit_delta)::int as n from inventory.movements where reference like 'transit:%' group by 1 order by 2`);
  t.deepEqual(rows, [{ reference: s2.reference, n: 0 }, { reference: s1.reference, n: 5 }]);
});

test('the transit invariants catch a shipment or a movement that disagrees with the ledger', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 }, B: { WH2: 0 } });
  const shipment = await ship(db, 'A', 'WH1', 'WH2', 5);
  await receive(db, shipment.id, 2);
  t.deepEqual(await transitViolations(db), []);
  // The tests run as a superuser, who may write the table directly: a counter the ledger does not back.
  await db.query('update inventory.transit_shipments set qty_received = 3 where id = $1', [shipment.id]);
  const problems = await transitViolations(db);
  t.true(problems.some((p) => p.startsWith(`shipment ${shipment.id}: shipped 5 received 3`)), problems.join('\n'));
  t.true(problems.some((p) => /route A WH1 -> WH2: in_transit\(\) says 2, the ledger 3/.test(p)), problems.join('\n'));
  await db.query('update inventory.transit_shipments set qty_received = 2 where id = $1', [shipment.id]);
  t.deepEqual(await transitViolations(db), []);
});
