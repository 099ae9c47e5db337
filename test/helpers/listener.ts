// Runs the listener role in the test process against a test database, with
// names (slot, publication, prefix, stream) of its own.
import { Registry } from 'prom-client';
import { loadConfig } from '../../src/config.ts';
import { Lifecycle } from '../../src/lifecycle.ts';
import { startListener, type ListenerRole } from '../../src/listener/role.ts';
import { createLogger } from '../../src/log.ts';
import { uniqueNames } from './cache.ts';
import { testServers } from './environment.ts';
import { metricValue } from './metrics.ts';

export interface TestListener extends ListenerRole {
  names: ReturnType<typeof uniqueNames>;
  registry: Registry;
  /** A counter's or gauge's value summed over labels; for a histogram, its count. */
  metric(name: string): Promise<number>;
  stop(): Promise<void>;
}

export async function startTestListener(
  databaseUrl: string,
  options: { label?: string; names?: ReturnType<typeof uniqueNames>; redisUrl?: string; partition?: string } = {},
): Promise<TestListener> {
  const names = options.names ?? uniqueNames(options.label ?? 'listener');
  const config = loadConfig({
    STOCKROOM_CACHE_PREFIX: names.prefix, STOCKROOM_STREAM: names.stream, STOCKROOM_SLOT: names.slot,
    STOCKROOM_PUBLICATION: names.publication, ...(options.partition ? { STOCKROOM_PARTITION: options.partition } : {}),
  }, process.cwd());
  const log = createLogger(process.env.LOG_LEVEL ?? 'silent', 'test-listener');
  const lifecycle = new Lifecycle(log);
  const registry = new Registry();
  try {
    const role = await startListener({
      config, databaseUrl, redisUrl: options.redisUrl ?? testServers().redisUrl, log, registry, lifecycle,
    });
    return {
      ...role, names, registry,
      metric: (name) => metricValue(registry, name),
      stop: () => lifecycle.stop('test done'),
    };
  } catch (error) {
    await lifecycle.stop('start failed');
    throw error;
  }
}
