// What a hostile or unlucky client can no longer do through the API: cancel
// the cost of a query with a negative page, multiply work with aliases or long
// sku lists, use a token that never expires or lives too long, use a role the
// server disabled, learn the schema from "Did you mean" in production; and
// what it gets while Redis is down (cachedStock from PostgreSQL, saying so).
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { SignJWT } from 'jose';
import { startPrivateRedis, type RunningRedis } from '../../src/harness/redis.ts';
import { createLogger } from '../../src/log.ts';
import { JWT_SECRET, startTestApi, token, type GraphQLResponse, type TestApi } from '../helpers/api.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { waitFor } from '../helpers/cache.ts';
import { assertInvariants } from '../helpers/invariants.ts';
import { setupCatalog } from '../helpers/inventory.ts';
import { tempDir, waitUntilDead } from '../listener/consumer-process.ts';

let db: Awaited<ReturnType<typeof openTestDatabase>>;
let api: TestApi;

test.before(async () => {
  db = await openTestDatabase('gql_hardening');
  await setupCatalog(db, { H1: { WH1: 10, WH2: 5 }, H2: { WH1: 3 } });
  api = await startTestApi(db.url, { label: 'gql_hardening' });
});

test.after.always(async (t) => {
  await api?.stop();
  if (db) await assertInvariants(t, db);
  await db?.close();
});

function refused(t: ExecutionContext, response: GraphQLResponse<unknown>, code: string, message: RegExp, label = '') {
  // (200 with errors: the tests ask for application/json, GraphQL-over-HTTP's legacy form.)
  t.is(response.status, 200, `${label} ${JSON.stringify(response.errors)}`);
  t.is(response.errors?.[0]?.extensions?.code, code, `${label} ${JSON.stringify(response.errors)}`);
  t.regex(response.errors?.[0]?.message ?? '', message, label);
  t.falsy(response.data, label);
}

test('a page size outside 0..1000 is refused, written in the query or passed in a variable, first, last or offset', async (t) => {
  // The attack: a negative page cancelling the cost of its sibling.
  refused(t, await api.graphql(`{ a: allProducts(first: 1000) { nodes { sku } } b: allWarehouses(first: -1000000) { nodes { code } } }`),
    'INVALID_PAGE_SIZE', /allWarehouses\(first: -1000000\): first must be an integer from 0 to 1000/);
  const cases: Array<[string, string, Record<string, unknown>]> = [
    ['negative variable', `query ($n: Int) { allProducts(first: $n) { nodes { sku } } }`, { n: -5 }],
    ['negative last', `{ allProducts(last: -1) { nodes { sku } } }`, {}],
    ['last beyond the limit', `query ($n: Int) { allProducts(last: $n) { nodes { sku } } }`, { n: 1001 }],
    ['negative offset', `{ allProducts(first: 1, offset: -1) { nodes { sku } } }`, {}],
    ['offset beyond the limit', `{ allProducts(first: 1, offset: 10000001) { nodes { sku } } }`, {}],
    ['a variable default', `query ($n: Int = -7) { allProducts(first: $n) { nodes { sku } } }`, {}],
    ['in a fragment', `query ($n: Int) { ...F } fragment F on Query { allProducts(first: $n) { nodes { sku } } }`, { n: -1 }],
  ];
  for (const [label, query, variables] of cases) refused(t, await api.graphql(query, variables), 'INVALID_PAGE_SIZE', /must be an integer from 0 to \d+/, label);
  const edge = await api.graphql<{ allProducts: { nodes: unknown[] } }>(`query ($n: Int) { allProducts(first: $n) { nodes { sku } } }`, { n: 0 });
  t.is(edge.errors, undefined, '0 is a page size');
  t.deepEqual(edge.data?.allProducts.nodes, []);
});

test('aliases are capped, and each costs its statement: many cheap fields cannot add up to a lot of work', async (t) => {
  const aliased = (n: number, field: string) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join(' ')} }`;
  refused(t, await api.graphql(aliased(490, 'cachedStock(skus: ["H1"]) { sku }')), 'TOO_MANY_ALIASES', /490 aliased fields, more than 20/);
  refused(t, await api.graphql(aliased(1000, 'productBySku(sku: "H1") { sku }')), 'TOO_MANY_ALIASES', /1000 aliased fields/);
  const fine = await api.graphql<Record<string, { sku: string }>>(aliased(20, 'productBySku(sku: "H1") { sku }'));
  t.is(fine.errors, undefined);
  t.is(Object.keys(fine.data ?? {}).length, 20);
  // Within the alias cap, fields that each run a statement still add up: 20 movement pages of 1000 × 3 fields.
  refused(t, await api.graphql(aliased(20, 'allMovements(first: 1000) { nodes { kind actor reason } }'), {}, { token: await token('stockroom_reader') }),
    'QUERY_TOO_COMPLEX', /cost \d+ exceeds the limit/);
});

test('cachedStock is priced by the skus it is given, in the query or in a variable', async (t) => {
  const skus = Array.from({ length: 1000 }, (_, i) => `UNKNOWN-${i}`);
  const query = `query ($skus: [String!]!) { cachedStock(skus: $skus) { sku total available status warehouses { warehouse available } } }`;
  const one = await api.graphql<{ cachedStock: unknown[] }>(query, { skus });
  t.is(one.errors, undefined, 'one call of 1000 skus is fine');
  t.is(one.data?.cachedStock.length, 1000);
  // Two aliases of it, the same document with its skus written in: each 1000 skus.
  const twice = `query ($skus: [String!]!) { a: cachedStock(skus: $skus) { sku total available status warehouses { warehouse available } } b: cachedStock(skus: $skus) { sku total available status warehouses { warehouse available } } }`;
  refused(t, await api.graphql(twice, { skus }), 'QUERY_TOO_COMPLEX', /cost \d+ exceeds the limit of 50000/);
  const written = `{ a: cachedStock(skus: ${JSON.stringify(skus)}) { sku total available status warehouses { warehouse available } } b: cachedStock(skus: ${JSON.stringify(skus)}) { sku total available status warehouses { warehouse available } } }`;
  refused(t, await api.graphql(written), 'QUERY_TOO_COMPLEX', /cost \d+ exceeds the limit of 50000/);
  t.is((await api.graphql(twice, { skus: skus.slice(0, 10) })).errors, undefined, 'the same document with 10 skus runs');
});

const signed = (claims: Record<string, unknown>, build: (jwt: SignJWT) => SignJWT = (jwt) => jwt) =>
  build(new SignJWT(claims).setProtectedHeader({ alg: 'HS256' })).sign(new TextEncoder().encode(JWT_SECRET));

test('a token must carry exp, and live no longer than STOCKROOM_JWT_MAX_LIFETIME', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const query = `{ productBySku(sku: "H1") { sku } }`;
  const noExp = await api.graphql(query, {}, { token: await signed({ role: 'stockroom_reader' }, (j) => j.setIssuedAt()) });
  t.is(noExp.status, 401);
  t.is(noExp.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  t.regex(noExp.errors?.[0]?.message ?? '', /no exp/);
  const tooLong = await api.graphql(query, {}, { token: await signed({ role: 'stockroom_reader' }, (j) => j.setIssuedAt(now).setExpirationTime(now + 25 * 3600)) });
  t.is(tooLong.status, 401);
  t.regex(tooLong.errors?.[0]?.message ?? '', /lives 90000 s .* longer than this server accepts \(86400 s\)/);
  // Without iat, the lifetime counts from now.
  const noIat = await api.graphql(query, {}, { token: await signed({ role: 'stockroom_reader', exp: now + 30 * 86_400 }) });
  t.is(noIat.status, 401);
  const fine = await api.graphql(query, {}, { token: await signed({ role: 'stockroom_reader' }, (j) => j.setIssuedAt(now).setExpirationTime(now + 23 * 3600)) });
  t.is(fine.errors, undefined);
  // The subject is the ledger's actor: no longer than the SQL API records.
  const longSub = await api.graphql(query, {}, { token: await token('stockroom_writer', { sub: 'x'.repeat(201) }) });
  t.is(longSub.status, 401);
  t.regex(longSub.errors?.[0]?.message ?? '', /sub is 201 characters long, more than 200/);

  const strict = await startTestApi(db.url, { label: 'gql_lifetime', env: { STOCKROOM_JWT_MAX_LIFETIME: '15min' } });
  try {
    const hour = await strict.graphql(query, {}, { token: await token('stockroom_reader', { exp: '1h' }) });
    t.is(hour.status, 401);
    t.regex(hour.errors?.[0]?.message ?? '', /\(900 s\)/);
    t.is((await strict.graphql(query, {}, { token: await token('stockroom_reader', { exp: '10min' }) })).errors, undefined);
  } finally {
    await strict.stop();
  }
});

test('STOCKROOM_API_ROLES: a disabled role is refused, and without stockroom_public so is a caller without a token', async (t) => {
  const query = `{ productBySku(sku: "H1") { sku } }`;
  const internal = await startTestApi(db.url, { label: 'gql_roles', env: { STOCKROOM_API_ROLES: 'stockroom_reader,stockroom_writer' } });
  try {
    const admin = await internal.graphql(query, {}, { token: await token('stockroom_admin') });
    t.is(admin.status, 403);
    t.is(admin.errors?.[0]?.extensions?.code, 'FORBIDDEN');
    t.regex(admin.errors?.[0]?.message ?? '', /stockroom_admin is disabled on this server/);
    const anonymous = await internal.graphql(query);
    t.is(anonymous.status, 401);
    t.regex(anonymous.errors?.[0]?.message ?? '', /serves no anonymous callers/);
    t.is((await internal.graphql(query, {}, { token: await token('stockroom_writer') })).errors, undefined);
  } finally {
    await internal.stop();
  }
  await t.throwsAsync(startTestApi(db.url, { label: 'gql_badroles', env: { STOCKROOM_API_ROLES: 'stockroom_reader,postgres' } }),
    { message: /STOCKROOM_API_ROLES must be a comma-separated list of .*"postgres" is none of them/ });
});

test('production: validation errors suggest no field names; development keeps the suggestions', async (t) => {
  const typo = `{ productBySkuu(sku: "H1") { sku } }`;
  const development = await api.graphql(typo);
  t.regex(development.errors?.[0]?.message ?? '', /Did you mean "productBySku"/);
  const production = await startTestApi(db.url, { label: 'gql_prod_suggest', env: { NODE_ENV: 'production' } });
  try {
    for (const query of [typo, `{ productBySku(skuu: "H1") { sku } }`, `{ productBySku(sku: "H1") { skuu } }`]) {
      const response = await production.graphql(query);
      t.truthy(response.errors?.[0]?.message, query);
      t.notRegex(response.errors![0]!.message, /Did you mean/, query);
    }
  } finally {
    await production.stop();
  }
});

test.serial('cachedStock while Redis is down or hung: answered from PostgreSQL, marked database, and from the cache again once Redis is back', async (t) => {
  const log = createLogger('silent', 'test');
  const temp = tempDir('gql_redis_down');
  const servers: RunningRedis[] = [await startPrivateRedis({ dir: path.join(temp.dir, 'redis'), persistent: false, log })];
  const own = await startTestApi(db.url, { label: 'gql_redis_down', redisUrl: servers[0]!.url });
  t.teardown(async () => {
    await own.stop();
    for (const server of servers) {
      try {
        process.kill(server.pid, 'SIGCONT');
      } catch { /* gone */ }
      await server.stop();
    }
    temp.remove();
  });
  type Answer = { cachedStock: Array<{ sku: string; available: number; source: string; warehouses: Array<{ warehouse: string; available: number }> } | null> };
  const query = `{ cachedStock(skus: ["H1", "H2", "NOPE"]) { sku available source warehouses { warehouse available } } }`;
  const read = () => own.graphql<Answer>(query);
  const expected = (source: string) => [
    { sku: 'H1', available: 15, source, warehouses: [{ warehouse: 'WH1', available: 10 }, { warehouse: 'WH2', available: 5 }] },
    { sku: 'H2', available: 3, source, warehouses: [{ warehouse: 'WH1', available: 3 }] },
    null,
  ];
  t.deepEqual((await read()).data?.cachedStock, expected('database'), 'a miss, written back');
  t.deepEqual((await read()).data?.cachedStock, expected('cache'));

  // Hung: connected, but not answering.
  process.kill(servers[0]!.pid, 'SIGSTOP');
  let started = Date.now();
  const hung = await read();
  t.is(hung.errors, undefined, JSON.stringify(hung.errors));
  t.deepEqual(hung.data?.cachedStock, expected('database'));
  t.true(Date.now() - started < 5_000, `answered in ${Date.now() - started} ms`);
  process.kill(servers[0]!.pid, 'SIGCONT');

  // Down: the server gone.
  const old = servers[0]!;
  process.kill(old.pid, 'SIGKILL');
  t.true(await waitUntilDead(old.pid, 10_000));
  started = Date.now();
  for (let i = 0; i < 3; i++) {
    const down = await read();
    t.is(down.errors, undefined, JSON.stringify(down.errors));
    t.deepEqual(down.data?.cachedStock, expected('database'));
  }
  t.true(Date.now() - started < 5_000, `three answers in ${Date.now() - started} ms`);
  t.true(await own.metric('stockroom_cache_unavailable_total') >= 4);

  // Back (empty: no persistence): misses are written back, then hits.
  servers.push(await startPrivateRedis({ dir: path.join(temp.dir, 'redis'), persistent: false, log }));
  t.is(servers[1]!.port, old.port, 'redis-server came back on the same port');
  t.true(await waitFor(async () => (await read()).data?.cachedStock[0]?.source === 'cache', 20_000), 'answered from the cache again');
  t.deepEqual((await read()).data?.cachedStock, expected('cache'));
});
