// A fresh database per test, cloned from the migrated template (cheap), with
// a pg pool; dropped when the test ends. useDatabase() also checks the ledger
// invariants after every test that passed.
import { randomBytes } from 'node:crypto';
import type { ExecutionContext, TestFn } from 'ava';
import pg from 'pg';
import { TEMPLATE_DATABASE, databaseUrl, testServers } from './environment.ts';
import { assertInvariants } from './invariants.ts';

export interface TestDatabase {
  name: string;
  url: string;
  pool: pg.Pool;
  /** One-off query on the pool. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

async function admin<T>(body: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: testServers().adminUrl });
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.end();
  }
}

export async function createDatabase(label: string, template = TEMPLATE_DATABASE): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const slug = label.toLowerCase().replace(/[^a-z0-9]+/g, '_').slice(0, 30);
  const name = `t_${slug}_${randomBytes(4).toString('hex')}`;
  await admin((client) => client.query(`create database ${name} template ${template}`));
  return {
    name,
    url: databaseUrl(testServers().adminUrl, name),
    drop: () => admin(async (client) => {
      // A database with a replication slot cannot be dropped: end the slots' sessions, drop the slots.
      await client.query(`select pg_terminate_backend(active_pid) from pg_replication_slots where database = $1 and active_pid is not null`, [name]);
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          await client.query(`select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1`, [name]);
          break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 100)); // still active for a moment after terminate
        }
      }
      await client.query(`drop database if exists ${name} with (force)`);
    }).then(() => {}),
  };
}

export async function openTestDatabase(label: string, options: { max?: number; template?: string } = {}): Promise<TestDatabase & { close(): Promise<void> }> {
  const database = await createDatabase(label, options.template);
  const pool = new pg.Pool({ connectionString: database.url, max: options.max ?? 80 });
  pool.on('error', () => {}); // a terminated idle client is not a test failure
  return {
    name: database.name,
    url: database.url,
    pool,
    query: (text, values) => pool.query(text, values),
    close: async () => {
      await pool.end();
      await database.drop();
    },
  };
}

export type DatabaseContext = { db: TestDatabase & { close(): Promise<void> } };

/**
 * Gives each test t.context.db, checks the invariants after it, and drops it.
 * The invariants include each reservation line against its own movements
 * (reservationLedgerViolations) unless reservationLedger is false: for tests
 * that damage reservations on purpose (verify_counters).
 */
export function useDatabase(test: TestFn<DatabaseContext>, options: { reservationLedger?: boolean } = {}): void {
  test.beforeEach(async (t) => {
    t.context.db = await openTestDatabase(t.title);
  });
  test.afterEach(async (t) => {
    await assertInvariants(t, t.context.db, { reservationLedger: options.reservationLedger ?? true });
  });
  test.afterEach.always(async (t) => {
    await t.context.db?.close();
  });
}

export type { ExecutionContext };

/** One statement on a connection of its own to a URL (a server a test started itself), closed after. */
export async function queryUrl(url: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}
