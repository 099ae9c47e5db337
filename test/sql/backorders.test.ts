import anyTest, { type TestFn } from 'ava';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

const reserve = (db: Queryable, ref: string, lines: unknown) =>
  queryOne(db, 'select * from inventory.reserve($1, $2::jsonb)', [ref, JSON.stringify(lines)]);

async function rowOf(db: Queryable, sku: string, warehouse: string) {
  return queryOne<{ on_hand: number; reserved: number; backordered: number }>(db, `
    select s.on_hand, s.reserved, s.backordered from inventory.stock_levels s
    join inventory.products p on p.id = s.product_id join inventory.warehouses w on w.id = s.warehouse_id
    where p.sku = $1 and w.code = $2`, [sku, warehouse]);
}

async function lineOf(db: Queryable, reservationId: string) {
  return queryOne<{ qty: number; backordered: number; confirmed: number }>(db,
    'select sum(qty)::int as qty, sum(backordered)::int as backordered, sum(confirmed)::int as confirmed from inventory.reservation_lines where reservation_id = $1',
    [reservationId]);
}

const position = async (db: Queryable, id: string) =>
  (await db.query('select sku, warehouse, backordered, queue_position::int, units_ahead::int from inventory.backorder_position($1)', [id])).rows;

test('DENY (the default) refuses beyond available as before; BACKORDER holds what there is and backorders the rest up to the limit', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 3 } });
  const denied = await rejectsWithCode(t, reserve(db, 'o0', [{ sku: 'A', warehouse: 'WH1', qty: 4 }]), 'IV001');
  t.deepEqual(JSON.parse(denied.detail!).lines, [{ sku: 'A', warehouse: 'WH1', requested: 4, available: 3 }]);
  await db.query(`select inventory.set_backorder_policy('A', 'WH1', 'BACKORDER', 5)`);
  const r1 = await reserve(db, 'o1', [{ sku: 'A', warehouse: 'WH1', qty: 8 }]);
  t.is(r1.status, 'HELD');
  t.deepEqual(await rowOf(db, 'A', 'WH1'), { on_hand: 3, reserved: 3, backordered: 5 });
  t.deepEqual(await lineOf(db, r1.id), { qty: 3, backordered: 5, confirmed: 0 });
  const { rows: kinds } = await db.query(`select kind, reserved_delta, backordered_delta, backordered_after from inventory.movements where reservation_id = $1 order by id`, [r1.id]);
  t.deepEqual(kinds, [
    { kind: 'RESERVE', reserved_delta: 3, backordered_delta: 0, backordered_after: null },
    { kind: 'BACKORDER', reserved_delta: 0, backordered_delta: 5, backordered_after: 5 },
  ]);
  const full = await rejectsWithCode(t, reserve(db, 'o2', [{ sku: 'A', warehouse: 'WH1', qty: 1 }, { sku: 'A', qty: 0 + 1 }]), 'IV001');
  t.regex(full.message, /insufficient stock/);
  t.deepEqual(await rowOf(db, 'A', 'WH1'), { on_hand: 3, reserved: 3, backordered: 5 }, 'nothing of the refused reserve was written');
  // The limit cannot drop below what waits.
  t.regex((await rejectsWithCode(t, db.query(`select inventory.set_backorder_policy('A', 'WH1', 'BACKORDER', 4)`), 'IV005')).message, /below the 5 units backordered/);
});

test('arriving stock fills waiting backorders first come first served: a confirmed order ships, a held one is held', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 0 } });
  await db.query(`select inventory.set_backorder_policy('A', 'WH1', 'BACKORDER', 10)`);
  const first = await reserve(db, 'first', [{ sku: 'A', warehouse: 'WH1', qty: 2 }]);
  const second = await reserve(db, 'second', [{ sku: 'A', warehouse: 'WH1', qty: 2 }]);
  const third = await reserve(db, 'third', [{ sku: 'A', warehouse: 'WH1', qty: 2 }]);
  t.deepEqual(await position(db, third.id), [{ sku: 'A', warehouse: 'WH1', backordered: 2, queue_position: 3, units_ahead: 4 }]);
  await db.query('select inventory.confirm($1)', [first.id]);
  t.deepEqual(await lineOf(db, first.id), { qty: 0, backordered: 2, confirmed: 0 }, 'a confirmed backorder keeps waiting');
  await db.query(`select inventory.adjust('A', 'WH1', 3, 'delivery')`);
  // 3 units: first (confirmed) gets 2 and they leave; second (held) gets 1.
  t.deepEqual(await rowOf(db, 'A', 'WH1'), { on_hand: 1, reserved: 1, backordered: 3 });
  t.deepEqual(await lineOf(db, first.id), { qty: 0, backordered: 0, confirmed: 2 });
  t.deepEqual(await lineOf(db, second.id), { qty: 1, backordered: 1, confirmed: 0 });
  t.deepEqual(await position(db, third.id), [{ sku: 'A', warehouse: 'WH1', backordered: 2, queue_position: 2, units_ahead: 1 }]);
  // Releasing the second cancels its backorder and gives its held unit to the third.
  await db.query(`select inventory.release($1, 'CUSTOMER_CANCELLED')`, [second.id]);
  t.deepEqual(await lineOf(db, third.id), { qty: 1, backordered: 1, confirmed: 0 });
  t.deepEqual(await rowOf(db, 'A', 'WH1'), { on_hand: 1, reserved: 1, backordered: 1 });
  const { rows: fills } = await db.query(`select reference, reason, on_hand_delta, reserved_delta, backordered_delta from inventory.movements where kind = 'FILL' order by id`);
  t.deepEqual(fills, [
    { reference: 'first', reason: 'CONFIRMED', on_hand_delta: -2, reserved_delta: 0, backordered_delta: -2 },
    { reference: 'second', reason: 'HELD', on_hand_delta: 0, reserved_delta: 1, backordered_delta: -1 },
    { reference: 'third', reason: 'HELD', on_hand_delta: 0, reserved_delta: 1, backordered_delta: -1 },
  ]);
});

test('PREORDER sells up to its limit until its date, then refuses; the date is validated', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { GAME: { WH1: 0 } });
  await rejectsWithCode(t, db.query(`select inventory.set_backorder_policy('GAME', 'WH1', 'PREORDER', 5)`), 'IV005');
  await rejectsWithCode(t, db.query(`select inventory.set_backorder_policy('GAME', 'WH1', 'PREORDER', 5, now() - interval '1 day')`), 'IV005');
  await rejectsWithCode(t, db.query(`select inventory.set_backorder_policy('GAME', 'WH1', 'LATER', 5)`), 'IV005');
  await db.query(`select inventory.set_backorder_policy('GAME', 'WH1', 'PREORDER', 5, now() + interval '30 days')`);
  const preorder = await reserve(db, 'p1', [{ sku: 'GAME', qty: 2 }]);
  const [waiting] = await db.query('select expected_at from inventory.backorder_position($1)', [preorder.id]).then((r) => r.rows);
  t.true(waiting?.expected_at instanceof Date);
  const over = await rejectsWithCode(t, reserve(db, 'p2', [{ sku: 'GAME', warehouse: 'WH1', qty: 4 }]), 'IV001');
  t.deepEqual(JSON.parse(over.detail!).lines, [{ sku: 'GAME', warehouse: 'WH1', requested: 4, available: 0, backorderable: 3 }]);
  // The preorder window closes (as the owner, to skip waiting for the date).
  await db.query(`update inventory.stock_levels set preorder_until = now() - interval '1 second'`);
  await rejectsWithCode(t, reserve(db, 'p3', [{ sku: 'GAME', warehouse: 'WH1', qty: 1 }]), 'IV001');
});

test('a line without a warehouse backorders on the first row by priority that allows it; reserve_many never passes the limit', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 1, WH2: 1 } });
  await db.query(`select inventory.set_backorder_policy('A', 'WH2', 'BACKORDER', 3)`);
  const open = await reserve(db, 'o1', [{ sku: 'A', qty: 4 }]);
  t.deepEqual(await lineOf(db, open.id), { qty: 2, backordered: 2, confirmed: 0 });
  t.is((await rowOf(db, 'A', 'WH2')).backordered, 2);
  const { rows } = await db.query(`select request, sqlstate from inventory.reserve_many($1::jsonb) order by request`, [JSON.stringify([
    { order_ref: 'm1', lines: [{ sku: 'A', qty: 1 }] },
    { order_ref: 'm2', lines: [{ sku: 'A', warehouse: 'WH2', qty: 1 }] },
  ])]);
  t.deepEqual(rows.map((r) => r.sqlstate), [null, 'IV001']);
  t.is((await rowOf(db, 'A', 'WH2')).backordered, 3);
});

test('64 concurrent reserves of the last units never hold more than on hand nor backorder more than the limit, and fills follow the queue', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { HOT: { WH1: 10 } });
  await db.query(`select inventory.set_backorder_policy('HOT', 'WH1', 'BACKORDER', 15)`);
  const outcomes = await Promise.all(Array.from({ length: 64 }, (_, i) =>
    reserve(db, `c${i}`, [{ sku: 'HOT', warehouse: 'WH1', qty: 1 + (i % 3) }]).then(() => 'held', (e: { code?: string }) => {
      if (e.code !== 'IV001') throw e;
      return 'short';
    })));
  t.true(outcomes.includes('short'));
  const row = await rowOf(db, 'HOT', 'WH1');
  t.is(row.reserved, 10, 'every unit on hand is held');
  t.true(row.backordered <= 15 && row.backordered >= 13, `backordered ${row.backordered} within the limit, and nearly all of it used`);
  // Stock arrives in small deliveries: at every point, a waiting line is filled only when every line before it in the queue is.
  for (let delivery = 0; delivery < 4; delivery++) {
    await db.query(`select inventory.adjust('HOT', 'WH1', 4, 'delivery')`);
    const { rows: queue } = await db.query<{ waiting: number; filled: number }>(`
      select l.backordered as waiting,
             (select -sum(m.backordered_delta)::int from inventory.movements m where m.reservation_id = l.reservation_id and m.kind = 'FILL') as filled
      from inventory.reservation_lines l where l.backorder_seq is not null order by l.backorder_seq`);
    const firstWaiting = queue.findIndex((l) => l.waiting > 0);
    if (firstWaiting >= 0) {
      t.true(queue.slice(firstWaiting + 1).every((l) => !l.filled), `delivery ${delivery}: nothing after the first waiting line was filled`);
    }
  }
  t.is((await rowOf(db, 'HOT', 'WH1')).backordered, 0);
});

test('expiry cancels waiting units and gives held ones to the queue; a transfer in and a lower safety stock fill it too', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2, WH2: 3 } });
  await db.query(`select inventory.set_backorder_policy('A', 'WH1', 'BACKORDER', 10)`);
  const expiring = await queryOne(db, `select * from inventory.reserve('exp', '[{"sku":"A","warehouse":"WH1","qty":3}]')`);
  const waiting = await reserve(db, 'wait', [{ sku: 'A', warehouse: 'WH1', qty: 4 }]);
  t.deepEqual(await rowOf(db, 'A', 'WH1'), { on_hand: 2, reserved: 2, backordered: 5 });
  // Due now (a short ttl raced the second reserve on a busy machine: reserve expires what is due on its rows).
  await db.query(`update inventory.reservations set expires_at = now() - interval '1 second' where id = $1`, [expiring.id]);
  t.is((await queryOne(db, 'select inventory.expire_due() as n')).n, 1);
  // The expired one's 2 held units go to the waiting one; its 1 waiting unit is cancelled.
  t.deepEqual(await lineOf(db, expiring.id), { qty: 2, backordered: 0, confirmed: 0 });
  t.deepEqual(await lineOf(db, waiting.id), { qty: 2, backordered: 2, confirmed: 0 });
  t.deepEqual(await rowOf(db, 'A', 'WH1'), { on_hand: 2, reserved: 2, backordered: 2 });
  await db.query(`select * from inventory.transfer('A', 'WH2', 'WH1', 1, 'rebalance')`);
  t.deepEqual(await lineOf(db, waiting.id), { qty: 3, backordered: 1, confirmed: 0 });
  await db.query(`select inventory.set_policy('A', 'WH1', safety_stock => 1)`);
  await db.query(`select inventory.adjust('A', 'WH1', 1, 'found one')`);
  t.deepEqual(await lineOf(db, waiting.id), { qty: 3, backordered: 1, confirmed: 0 }, 'the found unit is safety stock');
  await db.query(`select inventory.set_policy('A', 'WH1', safety_stock => 0)`);
  t.deepEqual(await lineOf(db, waiting.id), { qty: 4, backordered: 0, confirmed: 0 }, 'releasing the safety stock filled the queue');
});

test('a kit whose component allows backorders backorders that component only', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { BODY: { WH1: 5 }, LENS: { WH1: 1 } });
  await db.query(`select inventory.upsert_product('KIT')`);
  await db.query(`select inventory.set_kit('KIT', '[{"sku":"BODY","qty":1},{"sku":"LENS","qty":1}]')`);
  await rejectsWithCode(t, reserve(db, 'k0', [{ sku: 'KIT', warehouse: 'WH1', qty: 3 }]), 'IV001');
  await db.query(`select inventory.set_backorder_policy('LENS', 'WH1', 'BACKORDER', 2)`);
  const held = await reserve(db, 'k1', [{ sku: 'KIT', warehouse: 'WH1', qty: 3 }]);
  t.deepEqual(await rowOf(db, 'BODY', 'WH1'), { on_hand: 5, reserved: 3, backordered: 0 });
  t.deepEqual(await rowOf(db, 'LENS', 'WH1'), { on_hand: 1, reserved: 1, backordered: 2 });
  t.deepEqual(await lineOf(db, held.id), { qty: 4, backordered: 2, confirmed: 0 });
});

test('end_preorders turns rows past their preorder date to DENY, keeping the date and every waiting unit', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { GAME: { WH1: 0 }, OTHER: { WH1: 0 } });
  await db.query(`select inventory.set_backorder_policy('GAME', 'WH1', 'PREORDER', 5, now() + interval '1 day')`);
  await db.query(`select inventory.set_backorder_policy('OTHER', 'WH1', 'PREORDER', 5, now() + interval '1 day')`);
  await reserve(db, 'p1', [{ sku: 'GAME', warehouse: 'WH1', qty: 2 }]);
  t.is((await queryOne(db, 'select inventory.end_preorders() as n')).n, 0);
  await db.query(`update inventory.stock_levels s set preorder_until = now() - interval '1 second' from inventory.products p where p.id = s.product_id and p.sku = 'GAME'`);
  const before = await queryOne(db, `select version from inventory.stock_levels s join inventory.products p on p.id = s.product_id where p.sku = 'GAME'`);
  t.is((await queryOne(db, 'select inventory.end_preorders() as n')).n, 1);
  const after = await queryOne(db, `select backorder_policy, backordered, preorder_until < now() as ended, version from inventory.stock_levels s join inventory.products p on p.id = s.product_id where p.sku = 'GAME'`);
  t.like(after, { backorder_policy: 'DENY', backordered: 2, ended: true });
  t.true(Number(after.version) > Number(before.version), 'the cache sees the change');
  t.is((await queryOne(db, 'select inventory.end_preorders() as n')).n, 0, 'once');
});

test('a reservation waiting for backordered units cannot be edited (IV003); its held units can be confirmed in part', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 2 } });
  await db.query(`select inventory.set_backorder_policy('A', 'WH1', 'BACKORDER', 5)`);
  const held = await reserve(db, 'o1', [{ sku: 'A', warehouse: 'WH1', qty: 4 }]);
  const error = await rejectsWithCode(t, db.query(`select inventory.edit_reservation($1, '[{"sku":"A","warehouse":"WH1","qty":1}]')`, [held.id]), 'IV003');
  t.regex(error.message, /waits for 2 backordered unit/);
  await db.query(`select inventory.confirm_lines($1, '[{"sku":"A","qty":2}]')`, [held.id]);
  t.deepEqual(await lineOf(db, held.id), { qty: 0, backordered: 2, confirmed: 2 });
  t.is((await queryOne(db, 'select status from inventory.reservations where id = $1', [held.id])).status, 'HELD', 'still waiting');
});

test('units given back by release_lines or edit_reservation fill the waiting queue first', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 3 } });
  await db.query(`select inventory.set_backorder_policy('A', 'WH1', 'BACKORDER', 5)`);
  const first = await reserve(db, 'first', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  const waiting = await reserve(db, 'waiting', [{ sku: 'A', warehouse: 'WH1', qty: 3 }]);
  await db.query(`select inventory.release_lines($1, '[{"sku":"A","qty":1}]')`, [first.id]);
  t.deepEqual(await lineOf(db, waiting.id), { qty: 1, backordered: 2, confirmed: 0 });
  await db.query(`select inventory.edit_reservation($1, '[{"sku":"A","warehouse":"WH1","qty":1}]')`, [first.id]);
  t.deepEqual(await lineOf(db, waiting.id), { qty: 2, backordered: 1, confirmed: 0 });
  t.deepEqual(await rowOf(db, 'A', 'WH1'), { on_hand: 3, reserved: 3, backordered: 1 });
});
