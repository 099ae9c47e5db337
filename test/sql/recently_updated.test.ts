// inventory.recently_updated(since, warehouse, after, max): stock rows changed at
// or after since, oldest first, keyset-paginated by cursor.
import anyTest, { type TestFn } from 'ava';
import { useDatabase, type DatabaseContext } from '../helpers/database.ts';
import type { Queryable } from '../helpers/invariants.ts';
import { queryOne, rejectsWithCode, setupCatalog } from '../helpers/inventory.ts';

const test = anyTest as TestFn<DatabaseContext>;
useDatabase(test);

interface Change {
  sku: string; warehouse: string; on_hand: number; reserved: number; safety_stock: number;
  available: number; version: string; last_movement_at: Date; cursor: string;
}

async function recentlyUpdated(db: Queryable, since: unknown, warehouse: string | null = null, after: string | null = null,
  max: number | null = 1000): Promise<Change[]> {
  return (await db.query<Change>('select * from inventory.recently_updated($1, $2, $3, $4)', [since, warehouse, after, max])).rows;
}

/** Sets a row's last_movement_at as a DBA would, bumping version itself so the trigger leaves the time alone. */
async function stamp(db: Queryable, sku: string, warehouse: string, at: string): Promise<void> {
  const { rowCount } = await db.query(
    `update inventory.stock_levels s set last_movement_at = $3, version = s.version + 1
     from inventory.products p, inventory.warehouses w
     where p.id = s.product_id and w.id = s.warehouse_id and p.sku = $1 and w.code = $2`, [sku, warehouse, at]);
  if (rowCount !== 1) throw new Error(`no stock row ${sku}/${warehouse}`);
}

const key = (r: { sku: string; warehouse: string }) => `${r.sku}/${r.warehouse}`;

/** A catalog of skus × warehouses, every row received once. */
async function grid(db: Queryable, skus: number, warehouses: number): Promise<void> {
  const stock: Record<string, Record<string, number>> = {};
  for (let s = 1; s <= skus; s++) {
    const rows: Record<string, number> = {};
    for (let w = 1; w <= warehouses; w++) rows[`WH${w}`] = s * 10 + w;
    stock[`S${String(s).padStart(3, '0')}`] = rows;
  }
  await setupCatalog(db, stock);
}

/** Pages through everything since `since`, running `between(page)` after each page. */
async function pageThrough(db: Queryable, since: unknown, max: number, between: (page: Change[]) => Promise<void> = async () => {}): Promise<Change[][]> {
  const pages: Change[][] = [];
  let after: string | null = null;
  for (;;) {
    const page = await recentlyUpdated(db, since, null, after, max);
    pages.push(page);
    if (page.length === 0) return pages;
    if (pages.length > 100) throw new Error('paging does not end');
    after = page.at(-1)!.cursor;
    await between(page);
  }
}

test('returns rows changed at or after since, oldest first, with all columns and a cursor', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5, WH2: 6 }, B: { WH1: 7 } });
  await stamp(db, 'A', 'WH1', '2020-01-01T00:00:01Z');
  await stamp(db, 'B', 'WH1', '2020-01-01T00:00:03Z');
  await stamp(db, 'A', 'WH2', '2020-01-01T00:00:02.000042Z');

  t.deepEqual((await recentlyUpdated(db, '2019-12-31T00:00:00Z')).map(key), ['A/WH1', 'A/WH2', 'B/WH1']);
  const rows = await recentlyUpdated(db, '2020-01-01T00:00:02.000042Z');
  t.deepEqual(rows.map(key), ['A/WH2', 'B/WH1'], 'since is inclusive');
  t.deepEqual((await recentlyUpdated(db, '2020-01-01T00:00:02.000043Z')).map(key), ['B/WH1']);
  t.deepEqual(await recentlyUpdated(db, '2020-01-01T00:00:03.000001Z'), []);

  const ids = await queryOne(db,
    `select s.product_id, s.warehouse_id, s.version::text as version from inventory.stock_levels s
     join inventory.products p on p.id = s.product_id join inventory.warehouses w on w.id = s.warehouse_id
     where p.sku = 'A' and w.code = 'WH2'`);
  t.deepEqual(rows[0], {
    sku: 'A', warehouse: 'WH2', on_hand: 6, reserved: 0, safety_stock: 0, available: 6, version: ids.version,
    last_movement_at: new Date('2020-01-01T00:00:02.000Z'),
    cursor: `2020-01-01T00:00:02.000042Z/${ids.product_id}/${ids.warehouse_id}`,
  });
});

test('rows changed at the same moment come in (product_id, warehouse_id) order', async (t) => {
  const { db } = t.context;
  await grid(db, 4, 3);
  await db.query(`update inventory.stock_levels set last_movement_at = '2020-01-01T00:00:00Z', version = version + 1`);
  const { rows: expected } = await db.query<{ k: string }>(
    `select p.sku || '/' || w.code as k from inventory.stock_levels s
     join inventory.products p on p.id = s.product_id join inventory.warehouses w on w.id = s.warehouse_id
     order by s.product_id, s.warehouse_id`);
  t.deepEqual((await recentlyUpdated(db, '2020-01-01T00:00:00Z')).map(key), expected.map((r) => r.k));
});

test('the warehouse argument keeps only that warehouse; an unknown one is IV004', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5, WH2: 6 }, B: { WH1: 7, WH2: 8 } });
  const rows = await recentlyUpdated(db, '2000-01-01T00:00:00Z', 'WH2');
  t.deepEqual(rows.map(key).sort(), ['A/WH2', 'B/WH2']);

  const error = await rejectsWithCode(t, recentlyUpdated(db, '2000-01-01T00:00:00Z', 'WH9'), 'IV004');
  t.deepEqual(JSON.parse(error.detail!), { warehouse: 'WH9' });
});

test('paging with the last cursor walks every row once, without gaps or repeats', async (t) => {
  const { db } = t.context;
  await grid(db, 10, 5); // 50 rows
  // Timestamps with ties (n % 13) and microsecond differences (n % 3).
  await db.query(`
    update inventory.stock_levels s
    set last_movement_at = timestamptz '2020-01-01T00:00:00Z' + (o.n % 13) * interval '1 second' + (o.n % 3) * interval '1 microsecond',
        version = s.version + 1
    from (select product_id, warehouse_id, row_number() over (order by product_id, warehouse_id) as n
          from inventory.stock_levels) o
    where o.product_id = s.product_id and o.warehouse_id = s.warehouse_id`);

  const all = await recentlyUpdated(db, '2020-01-01T00:00:00Z', null, null, 10000);
  t.is(all.length, 50);
  const pages = await pageThrough(db, '2020-01-01T00:00:00Z', 7);
  t.deepEqual(pages.map((p) => p.length), [7, 7, 7, 7, 7, 7, 7, 1, 0]);
  t.deepEqual(pages.flat(), all);

  // The same with a warehouse filter.
  const wh3 = await recentlyUpdated(db, '2020-01-01T00:00:00Z', 'WH3', null, 10000);
  t.is(wh3.length, 10);
  const wh3Pages: Change[] = [];
  for (let after: string | null = null; ;) {
    const page = await recentlyUpdated(db, '2020-01-01T00:00:00Z', 'WH3', after, 3);
    if (page.length === 0) break;
    wh3Pages.push(...page);
    after = page.at(-1)!.cursor;
  }
  t.deepEqual(wh3Pages, wh3);
});

test('paging is stable while rows ahead and behind the cursor change', async (t) => {
  const { db } = t.context;
  await grid(db, 10, 5); // 50 rows
  await db.query(`
    update inventory.stock_levels s
    set last_movement_at = timestamptz '2020-01-01T00:00:00Z' + (o.n % 17) * interval '1 second', version = s.version + 1
    from (select product_id, warehouse_id, row_number() over (order by product_id, warehouse_id) as n
          from inventory.stock_levels) o
    where o.product_id = s.product_id and o.warehouse_id = s.warehouse_id`);
  const original = (await recentlyUpdated(db, '2020-01-01T00:00:00Z', null, null, 10000)).map(key);
  t.is(original.length, 50);

  const seen = new Map<string, string[]>(); // key -> versions seen
  const passedAndChanged = new Set<string>();
  const aheadAndChanged = new Set<string>();
  const pages = await pageThrough(db, '2020-01-01T00:00:00Z', 7, async (page) => {
    for (const row of page) seen.set(key(row), [...(seen.get(key(row)) ?? []), row.version]);
    // One row already passed and one not reached yet change between pages.
    const passed = page[0]!;
    if (!passedAndChanged.has(key(passed)) && !aheadAndChanged.has(key(passed))) {
      passedAndChanged.add(key(passed));
      await db.query(`select inventory.adjust($1, $2, 1, 'behind the cursor')`, [passed.sku, passed.warehouse]);
    }
    const ahead = original.findLast((k) => !seen.has(k) && !aheadAndChanged.has(k));
    if (ahead) {
      aheadAndChanged.add(ahead);
      const [sku, warehouse] = ahead.split('/');
      await db.query(`select inventory.adjust($1, $2, 1, 'ahead of the cursor')`, [sku, warehouse]);
    }
  });
  t.true(passedAndChanged.size >= 5 && aheadAndChanged.size >= 5, 'rows on both sides of the cursor did change');
  t.is(pages.flat().length, original.length + passedAndChanged.size, 'only rows changed behind the cursor come twice');
  t.deepEqual(original.filter((k) => !seen.has(k)), [], 'no row that existed at the start is skipped');
  for (const k of passedAndChanged) t.true(seen.get(k)!.length >= 2, `${k} changed behind the cursor is seen again`);
  for (const [k, versions] of seen) t.is(new Set(versions).size, versions.length, `${k} is never returned twice in the same version`);
});

// last_movement_at is the clock time of the change, not the writer's
// transaction start: a change made after the reader passed the transaction's
// start lands ahead of the cursor, so the row is still returned.
test('a row changed by a transaction that began before the reader reached it is not skipped', async (t) => {
  const { db } = t.context;
  const writer = await db.pool.connect();
  try {
    await writer.query('begin');
    const { since } = (await writer.query(`select now() - interval '1 second' as since`)).rows[0];
    await grid(db, 4, 3); // 12 rows, each received after the writer's transaction began
    const original = (await recentlyUpdated(db, since, null, null, 10000)).map(key);
    t.is(original.length, 12);
    const last = original.at(-1)!;
    const [sku, warehouse] = last.split('/');

    const seen = new Set<string>();
    let changed = false;
    await pageThrough(db, since, 3, async (page) => {
      for (const row of page) seen.add(key(row));
      if (!changed) {
        changed = true; // the writer changes a row not reached yet, and commits
        await writer.query(`select inventory.adjust($1, $2, 1, 'slow writer')`, [sku, warehouse]);
        await writer.query('commit');
      }
    });
    t.deepEqual(original.filter((k) => !seen.has(k)), [], 'no row that existed at the start is skipped');
  } finally {
    await writer.query('rollback').catch(() => {});
    writer.release(true);
  }
});

test('a malformed cursor is IV005', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5 } });
  const [row] = await recentlyUpdated(db, '2000-01-01T00:00:00Z');
  const [at, product, warehouse] = row!.cursor.split('/');
  const malformed = [
    'garbage', '', '//', 'a/b/c',
    `${at}/${product}`, `${at}/${product}/${warehouse}/extra`,
    `not-a-time/${product}/${warehouse}`, `${at}/not-a-uuid/${warehouse}`, `${at}/${product}/not-a-uuid`,
  ];
  for (const after of malformed) {
    const error = await rejectsWithCode(t, recentlyUpdated(db, '2000-01-01T00:00:00Z', null, after), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), { argument: 'after' }, `after = ${JSON.stringify(after)}`);
    t.truthy(error.hint);
  }
  t.deepEqual(await recentlyUpdated(db, '2000-01-01T00:00:00Z', null, row!.cursor), [], 'a real cursor still works');
});

test('max must be between 1 and 10000', async (t) => {
  const { db } = t.context;
  await setupCatalog(db, { A: { WH1: 5, WH2: 5 } });
  for (const max of [0, -1, 10001, null]) {
    const error = await rejectsWithCode(t, recentlyUpdated(db, '2000-01-01T00:00:00Z', null, null, max), 'IV005');
    t.deepEqual(JSON.parse(error.detail!), { argument: 'max' });
  }
  t.is((await recentlyUpdated(db, '2000-01-01T00:00:00Z', null, null, 1)).length, 1);
  t.is((await recentlyUpdated(db, '2000-01-01T00:00:00Z', null, null, 10000)).length, 2);
  t.is((await db.query(`select * from inventory.recently_updated('2000-01-01')`)).rows.length, 2, 'max defaults to 1000');
});

test('a null since is IV005', async (t) => {
  const { db } = t.context;
  const error = await rejectsWithCode(t, recentlyUpdated(db, null), 'IV005');
  t.deepEqual(JSON.parse(error.detail!), { argument: 'since' });
});
