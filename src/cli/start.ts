// `stockroom start [--api] [--listener] [--worker]`: the embedded services (unless
// DATABASE_URL/REDIS_URL point elsewhere), migrations, the HTTP endpoints for
// operations, then the roles asked for (no flag: all of them), until
// SIGINT/SIGTERM stops them in reverse order.
import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { redact } from '../config.ts';
import { checkDatabase } from '../db/check.ts';
import { jwtSecretOf } from '../dev-secret.ts';
import { ConfigError } from '../errors.ts';
import { startOpsServer } from '../http/ops-server.ts';
import { Lifecycle } from '../lifecycle.ts';
import { parsePartition } from '../partition.ts';
import { openCliContext } from './context.ts';

interface StartOptions { api?: boolean; listener?: boolean; worker?: boolean; partition?: string }

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run Stockroom: embedded PostgreSQL and Redis unless DATABASE_URL/REDIS_URL are set, migrations, and the roles')
    .option('--api', 'serve GraphQL at /graphql (GraphiQL at /graphiql outside production)')
    .option('--listener', 'run the change-stream consumer (Redis cache and events) and the resync listener')
    .option('--partition <i/N>', 'the listener streams partition i of N of the skus (a slot, publications and events stream of its own); run one listener per partition')
    .option('--worker', 'run graphile-worker: reservation expiry, the sweeper, incremental sync, nightly verify_counters')
    .addHelpText('after', [
      '', 'With no role flag, every role runs.', '', 'Examples:', '  stockroom start', '  stockroom start --api', '  stockroom start --listener', '  stockroom start --listener --partition 1/2', '  stockroom start --worker',
      '  DATABASE_URL=postgres://me@db/stock REDIS_URL=redis://cache:6379 stockroom start',
    ].join('\n'))
    .action(async (options: StartOptions) => {
      // The roles' modules load here, not with the CLI: other commands (and --help) answer fast.
      const [{ migrate }, { startApi }, { signToken }, { startListener }, { startWorkerRole }] = await Promise.all([
        import('../db/migrate.ts'), import('../graphql/server.ts'), import('../graphql/auth.ts'),
        import('../listener/role.ts'), import('../jobs/worker.ts'),
      ]);
      const any = options.api || options.listener || options.worker;
      const roles = { api: any ? Boolean(options.api) : true, listener: any ? Boolean(options.listener) : true, worker: any ? Boolean(options.worker) : true };
      const partition = options.partition === undefined ? undefined : parsePartition(options.partition, '--partition');
      const context = await openCliContext({ redis: true, start: true }, process.env.LOG_LEVEL ?? 'info');
      const { config, log, services } = context;
      if (partition) config.partition = partition;
      const lifecycle = new Lifecycle(log);
      lifecycle.onStop('services', () => context.close());
      lifecycle.handleSignals({ timeoutMs: 10_000 });
      stopWithLauncher();
      // Stay up until a signal, even when no local child process keeps the event loop busy.
      const keepAlive = setInterval(() => {}, 1 << 30);
      lifecycle.onStop('keep-alive', () => clearInterval(keepAlive));

      const registry = new Registry();
      collectDefaultMetrics({ register: registry });
      let port = config.port;
      try {
        await checkDatabase(services.databaseUrl, { logicalWal: true });
        await migrate(services.databaseUrl, log);
        const ops = await startOpsServer(config.port, registry, log).catch((error: NodeJS.ErrnoException) => {
          if (error.code === 'EADDRINUSE') throw new ConfigError(`PORT ${config.port} is in use: set PORT to a free port (0 picks one)`);
          throw error;
        });
        lifecycle.onStop('http', () => ops.close());
        port = (ops.server.address() as AddressInfo).port;
        if (roles.api) {
          await startApi({
            config, databaseUrl: services.databaseUrl, redisUrl: services.redisUrl!, ops, registry, lifecycle, log, checkSlotConsumer: !roles.listener,
          });
        }
        if (roles.listener) {
          const listener = await startListener({ config, databaseUrl: services.databaseUrl, redisUrl: services.redisUrl!, log, registry, lifecycle });
          ops.addCheck('listener', async () => {
            const health = listener.consumer.health();
            // A standby is healthy: it waits, ready to take the slot over.
            return { ok: health.streaming || health.standby, detail: health };
          });
        }
        if (roles.worker) {
          await startWorkerRole({ config, databaseUrl: services.databaseUrl, redisUrl: services.redisUrl!, log, registry, lifecycle });
        }
        ops.markStarted();
      } catch (error) {
        await lifecycle.stop('start failed');
        throw error;
      }
      const shown = (fromEnv: string | undefined, url: string) => (fromEnv ? redact(url) : url);
      // Outside production, a writer's token ready to paste (GraphiQL's headers, curl -H).
      const secret = roles.api && !config.production ? jwtSecretOf(config) : undefined;
      const lifetime = Math.min(12 * 3600, config.jwtMaxLifetimeSeconds);
      const token = secret ? await signToken(secret.value, { role: 'stockroom_writer', sub: 'dev' }, lifetime) : undefined;
      const bold = (text: string) => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text);
      process.stdout.write([
        bold('Stockroom is running.'),
        `  PostgreSQL  ${shown(config.databaseUrl, services.databaseUrl)}   (psql: npx stockroom sql)`,
        ...(roles.api && config.databaseReadUrl ? [`  Replica     ${redact(config.databaseReadUrl)}   (GraphQL queries read from it)`] : []),
        `  Redis       ${shown(config.redisUrl, services.redisUrl!)}`,
        `  HTTP        http://127.0.0.1:${port}  (${roles.api ? `/graphql${config.production ? '' : ', /graphiql'}, ` : ''}/health, /ready, /metrics)`,
        `  Roles       ${Object.entries(roles).filter(([, on]) => on).map(([name]) => name).join(', ')}`,
        ...(token ? [
          `  Token       a writer's, for ${lifetime / 3600} h (others: npx stockroom token --role reader|writer|admin):`,
          `              {"Authorization": "Bearer ${token}"}`,
        ] : []),
        'Press Ctrl-C to stop.',
        '',
      ].join('\n'));
    });
}

/**
 * Started through npm or npx, Stockroom may run under a shell that npm
 * signals instead of us (npx runs the command through `sh -c`): when that
 * parent goes away, stop as on SIGTERM, rather than run on orphaned. And a
 * launcher gone takes our stdout and stderr with it: writing to them then must
 * not fail the stop.
 */
function stopWithLauncher(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
    });
  }
  if (!process.env.npm_command) return;
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    process.kill(process.pid, 'SIGTERM');
  }, 250);
  watch.unref();
  // Already stopping on a signal of its own: a launcher that leaves meanwhile must not count as a second one.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => clearInterval(watch));
}
