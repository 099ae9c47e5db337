// Quantity states: on-hand units that cannot be sold (damaged, quality
// control, states an operator defines), moved with STATE_MOVE movements,
// received into or written off from a state, excluded from available, and
// conserved against the ledger (stateViolations) under concurrency.
import anyTest, { type TestFn } from 'ava';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import { assertInvariants, stateViolations, type Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

const move = (db: Queryable, qty: number, from: string | null, to: string | null, options: { sku?: string; key?: string } = {}) =>
  queryOne(db, `select * from inventory.move_stock_state($1, $2, $3, 'inspection', from_state => $4, to_state => $5, idempotency_key => $6)`,
    [options.sku ?? 'TV', 'WH1', qty, from, to, options.key ?? null]);

async function stockOf(db: Queryable, sku = 'TV') {
  return queryOne<{ on_hand: number; reserved: number; available: number; unavailable: number }>(db,
    `select on_hand, reserved, available, unavailable from inventory.stock(array[$1]) where warehouse = 'WH1'`, [sku]);
}
const statesOf = async (db: Queryable, sku = 'TV') =>
  (await db.query('select warehouse, state, qty from inventory.stock_states(array[$1])', [sku])).rows;
const movementCount = async (db: Queryable) => Number((await queryOne(db, 'select count(*) as n from inventory.movements')).n);

test('units moved into a state stay on hand, leave available, and show in stock() and stock_states()', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { TV: { WH1: 10 } });
  await db.query(`select inventory.set_policy('TV', 'WH1', safety_stock => 1)`);
  await move(db, 3, null, 'DAMAGED');
  t.deepEqual(await stockOf(db), { on_hand: 10, reserved: 0, available: 6, unavailable: 3 });
  t.deepEqual(await statesOf(db), [{ warehouse: 'WH1', state: 'DAMAGED', qty: 3 }]);
  const m = await queryOne(db, `select kind, on_hand_delta, state, state_delta, reason from inventory.movements order by id desc limit 1`);
  t.deepEqual(m, { kind: 'STATE_MOVE', on_hand_delta: 0, state: 'DAMAGED', state_delta: 3, reason: 'inspection' });
  await rejectsWithCode(t, db.query(`select inventory.reserve('o1', '[{"sku": "TV", "warehouse": "WH1", "qty": 7}]')`), 'IV001');
  await db.query(`select inventory.reserve('o1', '[{"sku": "TV", "warehouse": "WH1", "qty": 6}]')`);
  t.like(await stockOf(db), { available: 0, reserved: 6 });
  // Safety stock is physical stock: it may be damaged too, but never reserved units.
  await move(db, 1, null, 'QUALITY_CONTROL');
  await rejectsWithCode(t, move(db, 1, null, 'DAMAGED'), 'IV002');
  t.deepEqual(await stockOf(db), { on_hand: 10, reserved: 6, available: 0, unavailable: 4 });
  await assertInvariants(t, db);
});

test('between two states is a pair of movements with one reference; back to sellable fills waiting backorders first', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { TV: { WH1: 4 } });
  await move(db, 4, null, 'QUALITY_CONTROL');
  await move(db, 1, 'QUALITY_CONTROL', 'DAMAGED');
  const pair = (await db.query(`select state, state_delta, reference from inventory.movements where kind = 'STATE_MOVE' order by id desc limit 2`)).rows;
  t.deepEqual(pair.map((m) => [m.state, m.state_delta]), [['DAMAGED', 1], ['QUALITY_CONTROL', -1]]);
  t.truthy(pair[0]!.reference);
  t.is(pair[0]!.reference, pair[1]!.reference);
  await db.query(`select inventory.set_backorder_policy('TV', 'WH1', 'BACKORDER', 5)`);
  const { rows: [order] } = await db.query(`select id from inventory.reserve('o1', '[{"sku": "TV", "warehouse": "WH1", "qty": 2}]')`);
  t.like(await queryOne(db, `select backordered from inventory.stock_levels`), { backordered: 2 });
  await move(db, 3, 'QUALITY_CONTROL', null); // passed inspection
  t.like(await queryOne(db, `select backordered, reserved from inventory.stock_levels`), { backordered: 0, reserved: 2 }, 'the waiting order took two');
  t.like(await queryOne(db, `select sum(qty)::int as qty from inventory.reservation_lines where reservation_id = $1`, [order!.id]), { qty: 2 });
  t.deepEqual(await stockOf(db), { on_hand: 4, reserved: 2, available: 1, unavailable: 1 });
  await assertInvariants(t, db, { reservationLedger: true });
});

test('adjust_state receives into a state (a return to inspect) and writes off from one; adjust, set_count and transfer leave states alone', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { TV: { WH1: 5 }, OTHER: { WH2: 1 } });
  await db.query(`select inventory.adjust_state('TV', 'WH1', 'QUALITY_CONTROL', 2, 'customer return RMA-7')`);
  t.deepEqual(await stockOf(db), { on_hand: 7, reserved: 0, available: 5, unavailable: 2 });
  t.like(await queryOne(db, `select kind, on_hand_delta, state_delta from inventory.movements order by id desc limit 1`), { kind: 'RECEIVE', on_hand_delta: 2, state_delta: 2 });
  await move(db, 1, 'QUALITY_CONTROL', 'DAMAGED');
  await db.query(`select inventory.adjust_state('TV', 'WH1', 'DAMAGED', -1, 'scrapped')`);
  t.deepEqual(await stockOf(db), { on_hand: 6, reserved: 0, available: 5, unavailable: 1 });
  t.like(await queryOne(db, `select kind, on_hand_delta, state_delta from inventory.movements order by id desc limit 1`), { kind: 'ADJUST', on_hand_delta: -1, state_delta: -1 });
  // Sellable units only: the one in QUALITY_CONTROL stays wherever stock moves.
  await rejectsWithCode(t, db.query(`select inventory.adjust('TV', 'WH1', -6, 'shrinkage')`), 'IV002');
  await rejectsWithCode(t, db.query(`select inventory.set_count('TV', 'WH1', 0, 'count')`), 'IV002');
  await rejectsWithCode(t, db.query(`select inventory.transfer('TV', 'WH1', 'WH2', 6, 'move')`), 'IV002');
  await rejectsWithCode(t, db.query(`select inventory.ship_transfer('TV', 'WH1', 'WH2', 6, 'move')`), 'IV002');
  await db.query(`select inventory.transfer('TV', 'WH1', 'WH2', 5, 'move')`);
  t.deepEqual(await stockOf(db), { on_hand: 1, reserved: 0, available: 0, unavailable: 1 });
  await db.query(`select inventory.set_count('TV', 'WH1', 1, 'count: the one in QC')`);
  await assertInvariants(t, db);
});

test('bad input is refused with its SQLSTATE and writes nothing', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { TV: { WH1: 5 }, KITPART: { WH1: 5 }, BUNDLE: {} });
  await db.query(`select inventory.set_kit('BUNDLE', '[{"sku": "KITPART", "qty": 1}]')`);
  await move(db, 1, null, 'DAMAGED');
  const before = await movementCount(db);
  const cases: Array<[string, () => Promise<unknown>, string]> = [
    ['unknown state', () => move(db, 1, null, 'LOST_IN_SPACE'), 'IV004'],
    ['malformed state', () => move(db, 1, null, 'damaged'), 'IV005'],
    ['sellable to sellable', () => move(db, 1, null, null), 'IV005'],
    ['state to itself', () => move(db, 1, 'DAMAGED', 'DAMAGED'), 'IV005'],
    ['zero qty', () => move(db, 0, null, 'DAMAGED'), 'IV005'],
    ['more than the state holds', () => move(db, 2, 'DAMAGED', null), 'IV002'],
    ['more than is sellable', () => move(db, 5, null, 'DAMAGED'), 'IV002'],
    ['unknown sku', () => move(db, 1, null, 'DAMAGED', { sku: 'NOPE' }), 'IV004'],
    ['a kit', () => move(db, 1, null, 'DAMAGED', { sku: 'BUNDLE' }), 'IV005'],
    ['adjust_state without a state', () => db.query(`select inventory.adjust_state('TV', 'WH1', null, 1, 'x')`), 'IV005'],
    ['adjust_state below zero', () => db.query(`select inventory.adjust_state('TV', 'WH1', 'DAMAGED', -2, 'x')`), 'IV002'],
    ['adjust_state without a reason', () => db.query(`select inventory.adjust_state('TV', 'WH1', 'DAMAGED', 1, ' ')`), 'IV005'],
    ['a state code of lower case', () => db.query(`select inventory.define_quantity_state('returned', 'Returned')`), 'IV005'],
  ];
  for (const [label, call, code] of cases) {
    const error = await t.throwsAsync(call()) as { code?: string; message: string };
    t.is(error?.code, code, `${label}: ${error?.message}`);
  }
  t.is(await movementCount(db), before, 'nothing written');
  const refused = await t.throwsAsync(move(db, 5, null, 'DAMAGED')) as { message: string };
  t.regex(refused.message, /it holds 4/, 'the message says how many could move');
});

test('an operator defines a state; a retried move with its key moves once, another request with the key is IV006', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { TV: { WH1: 5 } });
  t.like(await queryOne(db, `select * from inventory.define_quantity_state('RETURNED', 'Returned, not inspected')`), { code: 'RETURNED' });
  t.like(await queryOne(db, `select * from inventory.define_quantity_state('RETURNED', 'Returned')`), { name: 'Returned' }, 'renamed');
  await move(db, 2, null, 'RETURNED', { key: 'k1' });
  await move(db, 2, null, 'RETURNED', { key: 'k1' });
  t.like(await stockOf(db), { unavailable: 2 });
  await rejectsWithCode(t, move(db, 3, null, 'RETURNED', { key: 'k1' }), 'IV006');
  t.is(await movementCount(db), 2, 'the receipt of setupCatalog and one move');
});

test('32 clients damaging, restoring and reserving the last units never let reserved + unavailable pass on_hand; every state agrees with the ledger', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { TV: { WH1: 12 } });
  const results = await Promise.allSettled(Array.from({ length: 32 }, async (_, i) => {
    const client = await db.pool.connect();
    try {
      for (let n = 0; n < 6; n++) {
        const pick = (i + n) % 4;
        try {
          if (pick === 0) await move(client, 1, null, 'DAMAGED');
          else if (pick === 1) await move(client, 1, 'DAMAGED', null);
          else if (pick === 2) await client.query(`select inventory.reserve($1, '[{"sku": "TV", "warehouse": "WH1", "qty": 1}]')`, [`o${i}-${n}`]);
          else await move(client, 1, 'DAMAGED', 'QUALITY_CONTROL');
        } catch (error) {
          const code = (error as { code?: string }).code;
          if (code !== 'IV001' && code !== 'IV002') throw error;
        }
      }
    } finally {
      client.release();
    }
  }));
  t.deepEqual(results.filter((r) => r.status === 'rejected'), [], 'only IV001/IV002 refusals');
  const row = await stockOf(db);
  t.true(row.reserved + row.unavailable <= row.on_hand, JSON.stringify(row));
  t.true(row.reserved > 0 && row.unavailable > 0, `both happened: ${JSON.stringify(row)}`);
  t.deepEqual(await stateViolations(db), []);
  await assertInvariants(t, db, { reservationLedger: true });
});
