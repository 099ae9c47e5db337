// `stockroom start`: the embedded services (unless DATABASE_URL/REDIS_URL
// point elsewhere), migrations, then the roles, until SIGINT/SIGTERM.
import type { Command } from 'commander';
import { redact } from '../config.ts';
import { checkDatabase } from '../db/check.ts';
import { migrate } from '../db/migrate.ts';
import { Lifecycle } from '../lifecycle.ts';
import { openCliContext } from './context.ts';

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run Stockroom: embedded PostgreSQL and Redis unless DATABASE_URL/REDIS_URL are set, migrations, and the services')
    .addHelpText('after', '\nExamples:\n  stockroom start\n  DATABASE_URL=postgres://me@db/stock REDIS_URL=redis://cache:6379 stockroom start')
    .action(async () => {
      const context = await openCliContext({ redis: true }, process.env.LOG_LEVEL ?? 'info');
      const { config, log, services } = context;
      const lifecycle = new Lifecycle(log);
      lifecycle.onStop('services', () => context.close());
      lifecycle.handleSignals({ timeoutMs: 30_000 });
      try {
        await checkDatabase(services.databaseUrl, { logicalWal: true });
        await migrate(services.databaseUrl, log);
      } catch (error) {
        await lifecycle.stop('start failed');
        throw error;
      }
      const shown = (fromEnv: string | undefined, url: string) => (fromEnv ? redact(url) : url);
      process.stdout.write([
        'Stockroom is running.',
        `  PostgreSQL  ${shown(config.databaseUrl, services.databaseUrl)}   (psql: npx stockroom sql)`,
        `  Redis       ${shown(config.redisUrl, services.redisUrl!)}`,
        'Press Ctrl-C to stop.',
        '',
      ].join('\n'));
      // Stay up until a signal, even when no local child process keeps the event loop busy.
      const keepAlive = setInterval(() => {}, 1 << 30);
      lifecycle.onStop('keep-alive', () => clearInterval(keepAlive));
    });
}
