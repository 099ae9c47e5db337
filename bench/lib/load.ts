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

/**
 * `workers` workers running `operation` back to back for `seconds`; an
 * operation may return its own latency in ms (e.g. to the last byte, before
 * parsing), else the call's time counts. Errors are counted by code.
 */
export async function runWorkers(workers: number, seconds: number, operation: (worker: number) => Promise<unknown>):
  Promise<LoadResult & { firstError: string | undefined }> {
  const latenciesMs: number[] = [];
  const errors: Record<string, number> = {};
  let ok = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(Array.from({ length: workers }, async (_, worker) => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        const ms = await operation(worker);
        latenciesMs.push(typeof ms === 'number' ? ms : performance.now() - t0);
        ok++;
      } catch (error) {
        const code = (error as { code?: string }).code ?? 'unknown';
        errors[code] = (errors[code] ?? 0) + 1;
        firstError ??= `${code}: ${(error as Error).message}`;
      }
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  return { clients: workers, seconds: elapsed, ok, errors, latenciesMs, throughput: ok / elapsed, firstError };
}

/** Stops a benchmark whose round mostly failed, with the first error: its figures would measure failures. */
export function assertMostlyOk(run: { ok: number; errors: Record<string, number>; firstError: string | undefined }): void {
  const failed = Object.values(run.errors).reduce((n, e) => n + e, 0);
  if (failed > run.ok) throw new Error(`${failed} of ${failed + run.ok} requests failed; the first: ${run.firstError}`);
}

/** runWorkers with one connection per worker (the clients' own time per call: a query's result is not a latency). */
export async function runClosedLoop(clients: pg.Client[], seconds: number, operation: Operation): Promise<LoadResult> {
  const { firstError: _, ...run } = await runWorkers(clients.length, seconds, async (worker) => {
    await operation(clients[worker]!, worker);
  });
  return run;
}
