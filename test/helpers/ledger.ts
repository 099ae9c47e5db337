// What the SQL API tests read back: reservations, ledger movements (with the
// columns a test asserts on), and a snapshot of everything a call can write,
// to show a refused or replayed call wrote nothing.
import type { TestDatabase } from './database.ts';
import type { Queryable } from './invariants.ts';
import { queryOne } from './inventory.ts';

export interface Reservation {
  id: string;
  order_ref: string;
  status: string;
  expires_at: Date;
  release_reason: string | null;
  updated_at: Date;
}

/** inventory.reserve(order_ref, lines, ttl, idempotency_key), the reservation row it returns. */
export function reserve(db: Queryable, orderRef: string, lines: unknown, ttl = '15 minutes', key: string | null = null): Promise<Reservation> {
  return queryOne<Reservation>(db, 'select * from inventory.reserve($1, $2::jsonb, $3::interval, $4)',
    [orderRef, JSON.stringify(lines), ttl, key]);
}

export interface Movement {
  id: string; kind: string; sku: string; warehouse: string; on_hand_delta: number; reserved_delta: number;
  on_hand_after: number; reserved_after: number; reason: string | null; reference: string | null;
  reservation_id: string | null; idempotency_key: string | null; actor: string;
}
export type MovementColumn = keyof Movement;

const COLUMN_SQL: Record<MovementColumn, string> = {
  id: 'm.id', kind: 'm.kind', sku: 'p.sku', warehouse: 'w.code as warehouse', on_hand_delta: 'm.on_hand_delta',
  reserved_delta: 'm.reserved_delta', on_hand_after: 'm.on_hand_after', reserved_after: 'm.reserved_after',
  reason: 'm.reason', reference: 'm.reference', reservation_id: 'm.reservation_id', idempotency_key: 'm.idempotency_key',
  actor: 'm.actor',
};

/** Movements, oldest first, with id above `after` and/or of the given kinds; only the columns asked for. */
export async function movements<C extends MovementColumn>(
  db: Queryable, where: { after?: number; kinds?: readonly string[] }, columns: readonly C[],
): Promise<Array<Pick<Movement, C>>> {
  const { rows } = await db.query<Pick<Movement, C>>(
    `select ${columns.map((c) => COLUMN_SQL[c]).join(', ')}
     from inventory.movements m
     join inventory.products p on p.id = m.product_id
     join inventory.warehouses w on w.id = m.warehouse_id
     where m.id > $1 and ($2::text[] is null or m.kind = any ($2)) order by m.id`, [where.after ?? 0, where.kinds ?? null]);
  return rows;
}

export async function lastMovementId(db: Queryable): Promise<number> {
  return (await queryOne<{ id: number }>(db, 'select coalesce(max(id), 0)::int as id from inventory.movements')).id;
}

/** Who the ledger's actor is for calls on this connection. */
export async function sessionUser(db: Queryable): Promise<string> {
  return (await queryOne<{ user: string }>(db, 'select session_user as "user"')).user;
}

/** Everything an SQL API call can write: compare before and after a call that must write nothing. */
export async function snapshotOfWrites(db: Queryable): Promise<Record<string, unknown>> {
  return queryOne(db, `
    select (select count(*) from inventory.movements)::int as movements,
           (select count(*) from inventory.operation_keys)::int as operation_keys,
           (select count(*) from inventory.reservation_lines)::int as reservation_lines,
           (select coalesce(jsonb_agg(r order by r.id), '[]'::jsonb) from inventory.reservations r) as reservations,
           (select coalesce(jsonb_agg(s order by s.product_id, s.warehouse_id), '[]'::jsonb) from inventory.stock_levels s) as stock_levels`);
}

/** Runs body in one transaction on its own client: now() stays the same for every call in it. */
export async function inTransaction<T>(db: TestDatabase, body: (client: Queryable) => Promise<T>): Promise<T> {
  const client = await db.pool.connect();
  try {
    await client.query('begin');
    const result = await body(client);
    await client.query('commit');
    return result;
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
