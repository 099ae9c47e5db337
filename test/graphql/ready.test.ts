// `stockroom start --api` without the listener: /ready also asks PostgreSQL
// whether someone streams from the slot, not far behind.
import test from 'ava';
import { startTestApi } from '../helpers/api.ts';
import { uniqueNames, waitFor } from '../helpers/cache.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { startTestListener } from '../helpers/listener.ts';

test('with the consumer in another process, /ready follows the slot: missing, streaming, then let go', async (t) => {
  const db = await openTestDatabase('gql_ready');
  const names = uniqueNames('gql_ready');
  const api = await startTestApi(db.url, { names, checkSlotConsumer: true });
  let listener: Awaited<ReturnType<typeof startTestListener>> | undefined;
  t.teardown(async () => {
    await listener?.stop();
    await api.stop();
    await db.close();
  });
  const ready = async () => {
    const response = await fetch(`${api.url}/ready`);
    return { status: response.status, body: (await response.json()) as { checks: Record<string, { ok: boolean; detail?: unknown }> } };
  };

  const before = await ready();
  t.is(before.status, 503);
  t.deepEqual(before.body.checks.listener, { ok: false, detail: `no replication slot ${names.slot}` });

  listener = await startTestListener(db.url, { names });
  t.true(await waitFor(async () => (await ready()).status === 200, 20_000), 'ready once the consumer streams');
  t.like((await ready()).body.checks.listener, { ok: true, detail: { slot: names.slot, active: true } });

  await listener.stop();
  listener = undefined;
  t.true(await waitFor(async () => (await ready()).status === 503, 10_000), 'not ready once nobody streams');
  t.like((await ready()).body.checks.listener, { ok: false, detail: { active: false } });
});
