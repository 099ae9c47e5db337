// The first hour in GraphiQL: the page opens on Stockroom's example with a
// writer's token in its headers, and both operations of the example run as
// they are; every mutation argument says what it takes; the schema has none of
// PostGraphile's lookups by uuid pairs, nor reserve_many as a mutation.
import test from 'ava';
import { decodeJwt } from 'jose';
import { GRAPHIQL_EXAMPLE } from '../../src/graphql/preset.ts';
import { startTestApi, type TestApi } from '../helpers/api.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { assertInvariants } from '../helpers/invariants.ts';
import { setupCatalog } from '../helpers/inventory.ts';

let db: Awaited<ReturnType<typeof openTestDatabase>>;
let api: TestApi;

test.before(async () => {
  db = await openTestDatabase('gql_graphiql');
  // The skus `stockroom seed` makes, which the example names.
  await setupCatalog(db, { 'SKU-000001': { WH1: 10 }, 'SKU-000002': { WH1: 3 } });
  api = await startTestApi(db.url, { label: 'gql_graphiql' });
});

test.after.always(async (t) => {
  await api?.stop();
  if (db) await assertInvariants(t, db);
  await db?.close();
});

test('GraphiQL opens on the Stockroom example with a writer\'s token, and the example runs as it is', async (t) => {
  const page = await (await fetch(`${api.url}/graphiql`, { headers: { accept: 'text/html' } })).text();
  const config = JSON.parse(/const RURU_CONFIG = (\{[\s\S]*?\});\n/.exec(page)?.[1] ?? 'null') as { defaultQuery: string; defaultHeaders: string } | null;
  t.truthy(config, 'the page carries its configuration');
  t.is(config!.defaultQuery, GRAPHIQL_EXAMPLE);
  const headers = JSON.parse(config!.defaultHeaders) as { Authorization: string };
  const token = /^Bearer (.+)$/.exec(headers.Authorization)?.[1];
  t.like(decodeJwt(token!), { role: 'stockroom_writer', sub: 'graphiql' });

  const run = async (operationName: string) => {
    const response = await fetch(`${api.url}/graphql`, {
      method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
      body: JSON.stringify({ query: GRAPHIQL_EXAMPLE, operationName }),
    });
    return (await response.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
  };
  const stock = await run('Stock');
  t.is(stock.errors, undefined, JSON.stringify(stock.errors));
  t.like((stock.data!.cachedStock as unknown[])[0], { sku: 'SKU-000001', available: 10 });
  const reserve = await run('Reserve');
  t.is(reserve.errors, undefined, JSON.stringify(reserve.errors));
  t.like(reserve.data!.reserve, { status: 'HELD' });
});

test('every mutation argument has a description, and the schema leaves out lookups by uuid pairs and reserve_many', async (t) => {
  const { data } = await api.graphql<{ __schema: { queryType: { fields: Array<{ name: string }> }; mutationType: { fields: Array<{ name: string; args: Array<{ name: string; description: string | null }> }> } } }>(
    `{ __schema { queryType { fields { name } } mutationType { fields { name args { name description } } } } }`);
  const queries = data!.__schema.queryType.fields.map((f) => f.name);
  for (const noisy of ['reservationLineByReservationIdAndProductIdAndWarehouseId', 'stockLevelByProductIdAndWarehouseId']) t.false(queries.includes(noisy), noisy);
  t.true(queries.includes('productBySku'));
  const mutations = data!.__schema.mutationType.fields;
  t.false(mutations.some((m) => m.name === 'reserveMany'));
  const undescribed = mutations.flatMap((m) => m.args.filter((a) => !a.description).map((a) => `${m.name}(${a.name})`));
  t.deepEqual(undescribed, []);
});
