// Who may do what through the API, and what no one may ask: the token matrix
// (none, reader, writer, admin, expired, forged, alg:none, a role outside the
// allow-list, a malformed header), over HTTP and websockets; depth and cost
// limits; the statement timeout; production mode (no introspection, no
// GraphiQL); persisted operations only.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { cacheKeys } from '../../src/cache/keys.ts';
import { CacheWriter } from '../../src/cache/writer.ts';
import { stockChannel } from '../../src/db/channels.ts';
import { testRedis } from '../helpers/cache.ts';
import { startTestApi, subscribe, token, unsignedToken, type GraphQLResponse, type TestApi } from '../helpers/api.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { assertInvariants } from '../helpers/invariants.ts';
import { setupCatalog, stockOf } from '../helpers/inventory.ts';

let db: Awaited<ReturnType<typeof openTestDatabase>>;
let api: TestApi;

test.before(async () => {
  db = await openTestDatabase('gql_security');
  await setupCatalog(db, { SEC: { WH1: 100 }, SLOW: { WH1: 10 } });
  api = await startTestApi(db.url, { label: 'gql_security' });
});

test.after.always(async (t) => {
  await api?.stop();
  if (db) await assertInvariants(t, db);
  await db?.close();
});

const READ = `{ productBySku(sku: "SEC") { sku } }`;
/** Orders (order refs, idempotency keys) and the ledger (actors): not the public catalog. */
const READ_PRIVATE = `{ allReservations { nodes { orderRef idempotencyKey } } allMovements(first: 5) { nodes { actor } } }`;
const RESERVE = `mutation { reserve(orderRef: "sec", lines: [{ sku: "SEC", warehouse: "WH1", qty: 1 }]) { status } }`;
const EXPIRE = `mutation { expireDue(input: {}) { clientMutationId } }`;

function codeOf(response: GraphQLResponse<unknown>): string | undefined {
  return response.errors?.[0]?.extensions?.code;
}

test('the token matrix: what each caller may read and write', async (t) => {
  const tokens: Record<string, string | undefined> = {
    none: undefined,
    public: await token('stockroom_public'),
    reader: await token('stockroom_reader'),
    writer: await token('stockroom_writer'),
    admin: await token('stockroom_admin'),
  };
  // [caller, read the catalog, read orders and the ledger, reserve, expireDue]: true = allowed, else the error code.
  const expected: Array<[string, true | string, true | string, true | string, true | string]> = [
    ['none', true, 'FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN'],
    ['public', true, 'FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN'],
    ['reader', true, true, 'FORBIDDEN', 'FORBIDDEN'],
    ['writer', true, true, true, 'FORBIDDEN'],
    ['admin', true, true, true, true],
  ];
  const reservedBefore = (await stockOf(db, 'SEC', 'WH1'))!.reserved;
  for (const [caller, read, readPrivate, reserve, expire] of expected) {
    for (const [query, want] of [[READ, read], [READ_PRIVATE, readPrivate], [RESERVE, reserve], [EXPIRE, expire]] as const) {
      const response = await api.graphql(query, {}, { token: tokens[caller] });
      t.is(response.status, 200, `${caller}: ${query}`);
      if (want === true) t.is(response.errors, undefined, `${caller} may: ${query} (${JSON.stringify(response.errors)})`);
      else {
        t.is(codeOf(response), want, `${caller} may not: ${query}`);
        t.regex(response.errors![0]!.message, /your role may not do this/);
      }
    }
  }
  t.is((await stockOf(db, 'SEC', 'WH1'))!.reserved, reservedBefore + 2, 'only the writer and the admin reserved');
});

test('refused before any SQL: expired, forged, unsigned (alg: none), a role outside the allow-list, no role, a malformed header', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const cases: Array<[string, Record<string, string>, number, string, RegExp]> = [
    ['expired', { authorization: `Bearer ${await token('stockroom_writer', { exp: now - 10 })}` }, 401, 'UNAUTHENTICATED', /expired/],
    ['forged', { authorization: `Bearer ${await token('stockroom_admin', { secret: 'another-secret-that-is-long-enough-12345' })}` }, 401, 'UNAUTHENTICATED', /not valid/],
    ['alg none', { authorization: `Bearer ${unsignedToken('stockroom_admin')}` }, 401, 'UNAUTHENTICATED', /not valid/],
    ['tampered', { authorization: `Bearer ${(await token('stockroom_reader')).replace(/\.([^.]+)\./, (_m, payload: string) => `.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), role: 'stockroom_admin' })).toString('base64url')}.`)}` }, 401, 'UNAUTHENTICATED', /not valid/],
    ['postgres role', { authorization: `Bearer ${await token('postgres')}` }, 403, 'FORBIDDEN', /may not use the API/],
    ['no role', { authorization: `Bearer ${await token('')}` }, 403, 'FORBIDDEN', /may not use the API/],
    ['basic auth', { authorization: 'Basic dXNlcjpwYXNz' }, 401, 'UNAUTHENTICATED', /Bearer/],
  ];
  const reservedBefore = (await stockOf(db, 'SEC', 'WH1'))!.reserved;
  for (const [name, headers, status, code, message] of cases) {
    const response = await api.graphql(RESERVE, {}, { headers });
    t.is(response.status, status, name);
    t.is(codeOf(response), code, name);
    t.regex(response.errors![0]!.message, message, name);
    t.is(response.data, undefined, name);
  }
  t.is((await stockOf(db, 'SEC', 'WH1'))!.reserved, reservedBefore, 'nothing was reserved');
});

test('a token accepted once is refused after it expires (verified tokens are remembered only until their exp)', async (t) => {
  const exp = Math.floor(Date.now() / 1000) + 5; // at least 4 s to use it while it is valid
  const shortLived = await token('stockroom_reader', { exp });
  t.is((await api.graphql(READ, {}, { token: shortLived })).errors, undefined);
  t.is((await api.graphql(READ, {}, { token: shortLived })).errors, undefined);
  await new Promise((resolve) => setTimeout(resolve, exp * 1000 - Date.now() + 500));
  const late = await api.graphql(READ, {}, { token: shortLived });
  t.is(late.status, 401);
  t.regex(late.errors?.[0]?.message ?? '', /expired/);
});

test('websockets: a forged token in connectionParams is refused; a valid one subscribes and receives what the cache holds', async (t) => {
  const forged = await token('stockroom_reader', { secret: 'another-secret-that-is-long-enough-12345' });
  const refused = await subscribe(api.url, `subscription { stockChanged(sku: "SEC") { version } }`, {}, { token: forged });
  const answer = await refused.next(5000);
  refused.close();
  t.is(answer.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  // The row as the consumer would have applied it (no consumer runs here).
  const redis = testRedis();
  const keys = cacheKeys(api.names.prefix);
  await new CacheWriter(redis, keys, { name: api.names.stream, maxLength: 1000 })
    .apply([{ sku: 'SEC', warehouse: 'WH1', version: '42', onHand: 100, reserved: 3, available: 97, lowStockThreshold: 0, room: 0, preorderUntil: 0, unavailable: 0 }], []);
  redis.disconnect();
  const accepted = await subscribe(api.url, `subscription { stockChanged(sku: "SEC") { warehouse onHand reserved available version } }`, {}, { token: await token('stockroom_reader') });
  try {
    await t.throwsAsync(accepted.next(300), { message: /no subscription payload/ }, 'no error: it waits for changes');
    // Any role may NOTIFY the channel. Made-up figures at the cached version, a version the
    // cache does not hold, another sku on this channel, and text that is no JSON: none is
    // passed on as sent. Then the consumer's own notification (sent again until the server's
    // LISTEN is in place: it starts with the first subscription, in the background).
    const forgeries = [
      { sku: 'SEC', warehouse: 'WH1', onHand: 1_000_000, reserved: 0, available: 1_000_000, version: '43' },
      { sku: 'OTHER', warehouse: 'WH1', onHand: 5, reserved: 0, available: 5, version: '42' },
    ].map((p) => JSON.stringify(p)).concat(['not json', JSON.stringify({ sku: 'SEC' })]);
    const genuine = JSON.stringify({ sku: 'SEC', warehouse: 'WH1', onHand: 1_000_000, reserved: 0, available: 1_000_000, version: '42' });
    let received: Awaited<ReturnType<typeof accepted.next>> | undefined;
    for (let attempt = 0; attempt < 50 && !received; attempt++) {
      for (const payload of forgeries) await db.query('select pg_notify($1, $2)', [stockChannel('SEC'), payload]);
      await db.query('select pg_notify($1, $2)', [stockChannel('SEC'), genuine]);
      received = await accepted.next(200).catch(() => undefined);
    }
    t.deepEqual(received?.data, { stockChanged: { warehouse: 'WH1', onHand: 100, reserved: 3, available: 97, version: '42' } },
      'the figures the cache holds, not those of the payload');
    // Every event delivered since is the cache's row: a forgery never got through.
    for (;;) {
      const next = await accepted.next(300).catch(() => undefined);
      if (!next) break;
      t.deepEqual(next.data, received?.data);
    }
  } finally {
    accepted.close();
  }
});

async function rejected(t: ExecutionContext, response: GraphQLResponse<unknown>, code: string, message: RegExp) {
  t.is(codeOf(response), code, JSON.stringify(response.errors));
  t.regex(response.errors?.[0]?.message ?? '', message);
  t.falsy(response.data);
}

test('depth: a query nested past the limit is refused before it runs', async (t) => {
  let selection = 'rowId';
  for (let i = 0; i < 7; i++) selection = `lines(first: 1) { nodes { reservation { ${selection} } } }`;
  const reader = { token: await token('stockroom_reader') };
  await rejected(t, await api.graphql(`{ allReservations(first: 1) { nodes { ${selection} } } }`, {}, reader), 'QUERY_TOO_DEEP', /depth \d+ exceeds the limit of 12/);
  const shallow = await api.graphql(`{ allReservations(first: 1) { nodes { lines(first: 1) { nodes { reservation { rowId } } } } } }`, {}, reader);
  t.is(shallow.errors, undefined);
});

test('cost: large pages multiplied through nesting are refused, page sizes in variables priced as given', async (t) => {
  await rejected(t, await api.graphql(`{ allProducts(first: 1000) { nodes { sku stockLevels(first: 1000) { nodes { onHand reserved } } } } }`),
    'QUERY_TOO_COMPLEX', /cost \d+ exceeds the limit of 50000/);
  // Without first, a connection is priced at 100 rows: 100 × 100 × 5 fields is too much.
  await rejected(t, await api.graphql(`{ allProducts { nodes { sku stockLevels { nodes { onHand reserved available version } } } } }`),
    'QUERY_TOO_COMPLEX', /cost/);
  const big = await api.graphql(`query ($n: Int) { allProducts(first: $n) { nodes { sku } } }`, { n: 100_000 });
  await rejected(t, big, 'INVALID_PAGE_SIZE', /allProducts\(first: 100000 \(\$n\)\): first must be an integer from 0 to 1000/);
  // Within the page limit, but multiplied through nesting: the variable's value is priced, not a default.
  const nested = `query ($n: Int) { allProducts(first: $n) { nodes { sku stockLevels(first: 1000) { nodes { onHand } } } } }`;
  const priced = await api.graphql(nested, { n: 1000 });
  await rejected(t, priced, 'QUERY_TOO_COMPLEX', /cost \d+ exceeds the limit of 50000/);
  t.is((await api.graphql(nested, { n: 2 })).errors, undefined, 'the same document with a small page runs');
  const fine = await api.graphql<{ allProducts: { nodes: unknown[] } }>(`query ($n: Int) { allProducts(first: $n) { nodes { sku } } }`, { n: 50 });
  t.is(fine.errors, undefined);
  t.is(fine.data!.allProducts.nodes.length, 2);
});

test('statement timeout: a request waiting on a lock is cancelled with TIMEOUT and writes nothing', async (t) => {
  const slow = await startTestApi(db.url, { label: 'gql_timeout', env: { STOCKROOM_STATEMENT_TIMEOUT: '300ms' } });
  const locker = await db.pool.connect();
  try {
    await locker.query('begin');
    await locker.query(`select 1 from inventory.stock_levels s join inventory.products p on p.id = s.product_id where p.sku = 'SLOW' for update of s`);
    const started = Date.now();
    const response = await slow.graphql(`mutation { adjust(sku: "SLOW", warehouse: "WH1", delta: 1, reason: "r") { onHand } }`, {}, { token: await token('stockroom_writer') });
    t.is(codeOf(response), 'TIMEOUT');
    t.true(Date.now() - started < 5000);
  } finally {
    await locker.query('rollback');
    locker.release();
    await slow.stop();
  }
  t.like(await stockOf(db, 'SLOW', 'WH1'), { on_hand: 10 });
});

test('production: no introspection, no GraphiQL, and no token-less start without JWT_SECRET', async (t) => {
  const production = await startTestApi(db.url, { label: 'gql_production', env: { NODE_ENV: 'production' } });
  try {
    const introspection = await production.graphql(`{ __schema { types { name } } }`);
    t.regex(introspection.errors?.[0]?.message ?? '', /introspection/i);
    t.falsy(introspection.data);
    t.is((await fetch(`${production.url}/graphiql`, { headers: { accept: 'text/html' } })).status, 404);
    t.is((await production.graphql(READ)).errors, undefined, 'queries still work');
  } finally {
    await production.stop();
  }
  await t.throwsAsync(startTestApi(db.url, { label: 'gql_nosecret', env: { NODE_ENV: 'production', JWT_SECRET: '' } }), { message: /JWT_SECRET must be set when NODE_ENV=production/ });
});

test('persisted operations only: a known document id runs, a raw query is refused', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stockroom-persisted-'));
  writeFileSync(path.join(dir, 'product_by_sku_v1.graphql'), `query ($sku: String!) { productBySku(sku: $sku) { sku } }`);
  const persisted = await startTestApi(db.url, { label: 'gql_persisted', env: { STOCKROOM_PERSISTED_OPERATIONS_DIR: dir } });
  try {
    const post = async (body: unknown) => {
      const response = await fetch(`${persisted.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: response.status, ...(await response.json()) as { data?: { productBySku?: { sku: string } }; errors?: Array<{ message: string; extensions?: { code?: string } }> } };
    };
    const known = await post({ documentId: 'product_by_sku_v1', variables: { sku: 'SEC' } });
    t.deepEqual(known.data, { productBySku: { sku: 'SEC' } });
    const raw = await post({ query: READ });
    t.is(raw.status, 400);
    t.is(raw.errors?.[0]?.extensions?.code, 'PERSISTED_OPERATION_REQUIRED');
    t.regex(raw.errors![0]!.message, /persisted operations only/);
    for (const documentId of ['nope', '../../etc/passwd']) {
      const unknown = await post({ documentId });
      t.is(unknown.errors?.[0]?.extensions?.code, 'PERSISTED_OPERATION_NOT_FOUND', documentId);
      t.falsy(unknown.data);
    }
  } finally {
    await persisted.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
