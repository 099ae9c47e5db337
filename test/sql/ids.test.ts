// Reservation ids are time-ordered (UUID version 7): consecutive reservations
// land on neighbouring index pages. PostgreSQL 18 has uuidv7(); on 15 to 17
// migration 000003 builds the same layout itself. Both are checked here: the
// one this server uses, and the fallback's text taken from the migration and
// run as a function of its own.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { MIGRATIONS_DIR } from '../../src/db/migrate.ts';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { setupCatalog } from '../helpers/inventory.ts';
import { reserve } from '../helpers/ledger.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

/** Version, variant and the Unix milliseconds in its first 48 bits. */
function layout(uuid: string): { version: string; variant: string; ms: number } {
  const hex = uuid.replaceAll('-', '');
  return { version: hex[12]!, variant: (parseInt(hex[16]!, 16) >> 2).toString(2), ms: parseInt(hex.slice(0, 12), 16) };
}

async function assertTimeOrdered(t: ExecutionContext, db: Queryable, call: string): Promise<void> {
  const ids: string[] = [];
  const started = Date.now();
  for (let i = 0; i < 5; i++) {
    ids.push((await db.query<{ id: string }>(`select ${call} as id`)).rows[0]!.id);
    await new Promise((resolve) => setTimeout(resolve, 3));
  }
  for (const id of ids) {
    const { version, variant, ms } = layout(id);
    t.is(version, '7', `${id} is version 7`);
    t.is(variant, '10', `${id} has the RFC 9562 variant`);
    t.true(Math.abs(ms - started) < 5_000, `${id} carries the time it was made`);
  }
  t.deepEqual([...ids].sort(), ids, 'later ids sort after earlier ones');
}

test('reservations get time-ordered version 7 ids', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 10 } });
  const first = await reserve(db, 'o1', [{ sku: 'A', warehouse: 'WH1', qty: 1 }]);
  await new Promise((resolve) => setTimeout(resolve, 3));
  const second = await reserve(db, 'o2', [{ sku: 'A', warehouse: 'WH1', qty: 1 }]);
  t.is(layout(first.id).version, '7');
  t.true(second.id > first.id);
  await assertTimeOrdered(t, db, 'inventory._new_id()');
});

test('the fallback for PostgreSQL before 18 makes the same layout', async (t) => {
  const { db } = t.context;
  const migration = readFileSync(path.join(MIGRATIONS_DIR, '000003_lean_reserve.sql'), 'utf8');
  const body = /as \$body\$([\s\S]*?)\$body\$/.exec(migration)?.[1];
  t.truthy(body, 'the migration holds the fallback');
  const client = await db.pool.connect(); // pg_temp is per session: use the session that made it
  try {
    await client.query(`create function pg_temp.fallback_id() returns uuid language sql volatile as $body$${body}$body$`);
    await assertTimeOrdered(t, client, 'pg_temp.fallback_id()');
  } finally {
    client.release();
  }
});
