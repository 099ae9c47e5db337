// The expiry job of each reservation: scheduled in the reserving transaction,
// moved by extend(), deleted when the reservation is settled.
import anyTest, { type TestFn } from 'ava';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import { queryOne, setupCatalog } from '../helpers/inventory.ts';
import type { Queryable } from '../helpers/invariants.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

async function expiryJob(db: Queryable, reservationId: string) {
  const { rows } = await db.query<{ task: string; run_at: Date; payload: { reservation_id: string }; attempts: number }>(`
    select t.identifier as task, j.run_at, j.payload, j.attempts
    from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
    where j.key = $1`, [`expire:${reservationId}`]);
  return rows[0];
}

async function reserve(db: Queryable, lines: string, ttl = '15 minutes') {
  return queryOne<{ id: string; expires_at: Date }>(db, 'select id, expires_at from inventory.reserve($1, $2::jsonb, $3::interval)', ['o', lines, ttl]);
}

test('reserve schedules an expire_reservation job at expires_at, keyed by the reservation', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10, WH2: 10 } });
  for (const lines of ['[{"sku":"A","warehouse":"WH1","qty":1}]', '[{"sku":"A","qty":15}]']) {
    const r = await reserve(db, lines);
    const job = await expiryJob(db, r.id);
    t.like(job, { task: 'expire_reservation', payload: { reservation_id: r.id }, attempts: 0 });
    t.is(job?.run_at.getTime(), r.expires_at.getTime());
  }
});

test('a reserve that fails schedules nothing, and an idempotent retry schedules nothing twice', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 1 } });
  await t.throwsAsync(reserve(db, '[{"sku":"A","warehouse":"WH1","qty":5}]'));
  const first = await queryOne<{ id: string }>(db, `select id from inventory.reserve('o', '[{"sku":"A","warehouse":"WH1","qty":1}]', '15 minutes', 'k1')`);
  await db.query(`select inventory.reserve('o', '[{"sku":"A","warehouse":"WH1","qty":1}]', '15 minutes', 'k1')`);
  const { rows } = await db.query(`select key from graphile_worker._private_jobs`);
  t.deepEqual(rows, [{ key: `expire:${first.id}` }]);
});

test('extend moves the job to the new expires_at', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, '[{"sku":"A","warehouse":"WH1","qty":1}]');
  const extended = await queryOne<{ expires_at: Date }>(db, `select expires_at from inventory.extend($1, '2 hours')`, [r.id]);
  t.is((await expiryJob(db, r.id))?.run_at.getTime(), extended.expires_at.getTime());
});

test('confirm, release and expiry delete the job', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const confirmed = await reserve(db, '[{"sku":"A","warehouse":"WH1","qty":1}]');
  const released = await reserve(db, '[{"sku":"A","warehouse":"WH1","qty":1}]');
  const expired = await reserve(db, '[{"sku":"A","warehouse":"WH1","qty":1}]', '10 milliseconds');
  await db.query('select inventory.confirm($1)', [confirmed.id]);
  await db.query('select inventory.release($1)', [released.id]);
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.is(await queryOne(db, 'select inventory.expire_due() as n').then((r) => r.n), 1);
  for (const r of [confirmed, released, expired]) t.is(await expiryJob(db, r.id), undefined);
});

test('a job a worker is running right now is left alone by extend and settle', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const r = await reserve(db, '[{"sku":"A","warehouse":"WH1","qty":1}]');
  await db.query(`update graphile_worker._private_jobs set locked_at = now(), locked_by = 'pool-test' where key = $1`, [`expire:${r.id}`]);
  const before = await expiryJob(db, r.id);
  await db.query(`select inventory.extend($1, '1 hour')`, [r.id]);
  t.is((await expiryJob(db, r.id))?.run_at.getTime(), before?.run_at.getTime(), 'not moved under a running worker');
  await db.query('select inventory.release($1)', [r.id]);
  t.truthy(await expiryJob(db, r.id), 'not deleted under a running worker: it finds nothing due and completes');
});
