// Closed-loop load: N clients, each its own connection, each running the
// operation back to back for a fixed time. Counts successes, errors by code,
// and every latency.
import pg from 'pg';

export interface LoadResult {
  clients: number;
  seconds: number;
  ok: number;
  errors: Record<string, number>;
  latenciesMs: number[];
  throughput: number;
}

export type Operation = (client: pg.Client, worker: number) => Promise<unknown>;

export async function openClients(url: string, count: number): Promise<pg.Client[]> {
  const clients = await Promise.all(Array.from({ length: count }, async () => {
    const client = new pg.Client({ connectionString: url, application_name: 'stockroom bench' });
    client.on('error', () => {});
    await client.connect();
    return client;
  }));
  return clients;
}

export async function closeClients(clients: pg.Client[]): Promise<void> {
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
}

export async function runClosedLoop(clients: pg.Client[], seconds: number, operation: Operation): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  const errors: Record<string, number> = {};
  let ok = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(clients.map(async (client, worker) => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        await operation(client, worker);
        latenciesMs.push(performance.now() - t0);
        ok++;
      } catch (error) {
        const code = (error as { code?: string }).code ?? 'unknown';
        errors[code] = (errors[code] ?? 0) + 1;
      }
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  return { clients: clients.length, seconds: elapsed, ok, errors, latenciesMs, throughput: ok / elapsed };
}
