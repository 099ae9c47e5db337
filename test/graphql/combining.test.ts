// Request combining through the API: concurrent reserve mutations ride in
// reserve_many calls, and each caller still gets exactly its own answer.
// 64 clients racing for the last 100 units reserve exactly 100; mixed
// outcomes in one batch stay each caller's own; a call that fails whole (one
// request waited past the statement timeout) is retried request by request,
// so the others go through; a lone request rides alone.
import test from 'ava';
import { startTestApi, token, type GraphQLResponse, type TestApi } from '../helpers/api.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { waitFor } from '../helpers/cache.ts';
import { assertInvariants } from '../helpers/invariants.ts';
import { queryOne, setupCatalog, stockOf } from '../helpers/inventory.ts';
import { histogramSum } from '../helpers/metrics.ts';

let db: Awaited<ReturnType<typeof openTestDatabase>>;
let api: TestApi;
let writer: string;

test.before(async () => {
  db = await openTestDatabase('gql_combining');
  await setupCatalog(db, { LAST: { WH1: 60, WH2: 40 }, MIX: { WH1: 10 }, SHORT: { WH1: 1 }, ALONE: { WH1: 10 }, LOCKED: { WH1: 10 }, FREE: { WH1: 10 } });
  api = await startTestApi(db.url, { label: 'gql_combining' });
  writer = await token('stockroom_writer', { sub: 'shopper' });
});

test.after.always(async (t) => {
  await api?.stop();
  if (db) await assertInvariants(t, db);
  await db?.close();
});

const RESERVE = `mutation ($orderRef: String!, $lines: [ReserveLineInput!]!, $key: String) {
  reserve(orderRef: $orderRef, lines: $lines, idempotencyKey: $key) { rowId orderRef status lines { nodes { qty } } }
}`;
type Reserved = { reserve: { rowId: string; orderRef: string; status: string; lines: { nodes: Array<{ qty: number }> } } };

function reserve(target: TestApi, orderRef: string, lines: unknown[], key?: string): Promise<GraphQLResponse<Reserved>> {
  return target.graphql<Reserved>(RESERVE, { orderRef, lines, key }, { token: writer });
}
const codeOf = (response: GraphQLResponse<unknown>) => response.errors?.[0]?.extensions?.code ?? 'OK';

/** Batches and requests the combiner has sent so far. */
async function batches(target: TestApi): Promise<{ calls: number; requests: number }> {
  return { calls: await target.metric('stockroom_reserve_batch_size'), requests: await histogramSum(target.registry, 'stockroom_reserve_batch_size') };
}

test.serial('64 concurrent clients racing for the last 100 units of one sku reserve exactly 100', async (t) => {
  const before = await batches(api);
  const won: string[] = [];
  const codes = new Map<string, number>();
  await Promise.all(Array.from({ length: 64 }, async (_, client) => {
    for (let n = 0; ; n++) {
      const response = await reserve(api, `last-${client}-${n}`, [{ sku: 'LAST', qty: 1 }]);
      const code = codeOf(response);
      codes.set(code, (codes.get(code) ?? 0) + 1);
      if (code !== 'OK') return;
      won.push(response.data!.reserve.rowId);
    }
  }));
  t.deepEqual([...codes.keys()].sort(), ['INSUFFICIENT_STOCK', 'OK'], `only sold out: ${JSON.stringify([...codes])}`);
  t.is(won.length, 100, 'exactly the 100 units');
  t.is(new Set(won).size, 100, 'each its own reservation');
  t.like(await stockOf(db, 'LAST', 'WH1'), { reserved: 60, available: 0 });
  t.like(await stockOf(db, 'LAST', 'WH2'), { reserved: 40, available: 0 });
  const after = await batches(api);
  t.true(after.requests - before.requests > after.calls - before.calls, `requests were combined: ${after.requests - before.requests} in ${after.calls - before.calls} calls`);
  const { actor } = await queryOne<{ actor: string }>(db, `select actor from inventory.movements where reservation_id = $1`, [won[0]]);
  t.is(actor, 'shopper', 'each reservation records its caller as the actor');
});

test.serial('requests combined in one call keep their own answers: reserved, short, unknown, invalid, key reused', async (t) => {
  const first = await reserve(api, 'keyed', [{ sku: 'MIX', warehouse: 'WH1', qty: 1 }], 'mix-key');
  t.is(codeOf(first), 'OK');
  const before = await batches(api);
  // Enough concurrent requests that they queue behind each other and share calls.
  const kinds = ['ok', 'short', 'unknown', 'invalid', 'reused', 'retry'] as const;
  const responses = await Promise.all(Array.from({ length: 48 }, (_, i) => {
    const kind = kinds[i % kinds.length]!;
    switch (kind) {
      case 'ok': return reserve(api, `mix-${i}`, [{ sku: 'MIX', warehouse: 'WH1', qty: 1 }]).then((r) => ({ kind, r }));
      case 'short': return reserve(api, `mix-${i}`, [{ sku: 'SHORT', warehouse: 'WH1', qty: 5 }]).then((r) => ({ kind, r }));
      case 'unknown': return reserve(api, `mix-${i}`, [{ sku: 'NO-SUCH-SKU', qty: 1 }]).then((r) => ({ kind, r }));
      case 'invalid': return reserve(api, `mix-${i}`, [{ sku: 'MIX', warehouse: 'NO-SUCH-WH', qty: 1 }]).then((r) => ({ kind, r }));
      case 'reused': return reserve(api, 'other-order', [{ sku: 'MIX', warehouse: 'WH1', qty: 1 }], 'mix-key').then((r) => ({ kind, r }));
      case 'retry': return reserve(api, 'keyed', [{ sku: 'MIX', warehouse: 'WH1', qty: 1 }], 'mix-key').then((r) => ({ kind, r }));
    }
  }));
  const expected = { ok: 'OK', short: 'INSUFFICIENT_STOCK', unknown: 'NOT_FOUND', invalid: 'NOT_FOUND', reused: 'IDEMPOTENCY_CONFLICT', retry: 'OK' };
  for (const { kind, r } of responses) t.is(codeOf(r), expected[kind], `${kind}: ${r.errors?.[0]?.message ?? 'reserved'}`);
  const short = responses.find((x) => x.kind === 'short')!;
  t.deepEqual(short.r.errors![0]!.extensions?.detail, { order_ref: 'mix-1', lines: [{ sku: 'SHORT', warehouse: 'WH1', requested: 5, available: 1, inputLines: [1] }] },
    'the detail names its own order and line');
  t.true(responses.filter((x) => x.kind === 'retry').every((x) => x.r.data?.reserve.rowId === first.data!.reserve.rowId), 'a retry gets the first reservation');
  t.like(await stockOf(db, 'MIX', 'WH1'), { reserved: 9 }, 'the first keyed one and the 8 ok ones');
  t.like(await stockOf(db, 'SHORT', 'WH1'), { reserved: 0 });
  const after = await batches(api);
  t.true(after.requests - before.requests > after.calls - before.calls, `requests were combined: ${after.requests - before.requests} in ${after.calls - before.calls} calls`);
});

test.serial('a lone request rides alone: one call per request when nobody else is asking', async (t) => {
  const before = await batches(api);
  for (let i = 0; i < 5; i++) t.is(codeOf(await reserve(api, `alone-${i}`, [{ sku: 'ALONE', warehouse: 'WH1', qty: 1 }])), 'OK');
  const after = await batches(api);
  t.deepEqual({ calls: after.calls - before.calls, requests: after.requests - before.requests }, { calls: 5, requests: 5 });
});

test.serial('a call that fails whole is retried request by request: one caller stuck on a lock times out, the others are reserved', async (t) => {
  // One connection and a short statement timeout, so a stuck request is quick to see.
  const slow = await startTestApi(db.url, { label: 'gql_combining_slow', env: { STOCKROOM_RESERVE_CONNECTIONS: '1', STOCKROOM_STATEMENT_TIMEOUT: '1s' } });
  const locker = await db.pool.connect();
  try {
    await locker.query('begin');
    await locker.query(`select 1 from inventory.stock_levels s join inventory.products p on p.id = s.product_id where p.sku = 'LOCKED' for update of s`);
    // The first request takes the one connection and waits for the lock...
    const first = reserve(slow, 'stuck-1', [{ sku: 'LOCKED', warehouse: 'WH1', qty: 1 }]);
    t.true(await waitFor(async () => (await db.query(`select 1 from pg_stat_activity where application_name = 'stockroom api (reserve)' and wait_event_type = 'Lock'`)).rowCount === 1, 5_000),
      'the first call waits for the row');
    // ... so these queue and go in the next call together: one of them stuck too.
    const rest = Promise.all([
      reserve(slow, 'stuck-2', [{ sku: 'LOCKED', warehouse: 'WH1', qty: 1 }]),
      ...Array.from({ length: 5 }, (_, i) => reserve(slow, `free-${i}`, [{ sku: 'FREE', warehouse: 'WH1', qty: 1 }])),
    ]);
    const [stuck, ...free] = await rest;
    t.is(codeOf(await first), 'TIMEOUT');
    t.is(codeOf(stuck!), 'TIMEOUT', 'the stuck caller gets its own timeout');
    t.deepEqual(free.map(codeOf), ['OK', 'OK', 'OK', 'OK', 'OK'], 'the others are not failed by it');
    const { calls, requests } = await batches(slow);
    t.true(requests > calls, `the queued requests shared a call before the retry (${requests} requests in ${calls} calls)`);
  } finally {
    await locker.query('rollback');
    locker.release();
    await slow.stop();
  }
  t.like(await stockOf(db, 'FREE', 'WH1'), { reserved: 5 });
  t.like(await stockOf(db, 'LOCKED', 'WH1'), { reserved: 0 }, 'nothing of the stuck requests was written');
});
