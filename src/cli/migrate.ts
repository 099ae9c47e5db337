import type { Command } from 'commander';
import { checkDatabase } from '../db/check.ts';
import { migrate } from '../db/migrate.ts';
import { printJson } from './output.ts';
import { withCliContext } from './context.ts';

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('apply pending migrations, then (re)apply the SQL functions and grants')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  stockroom migrate\n  DATABASE_URL=postgres://me@db/stock stockroom migrate --json')
    .action(async (options: { json?: boolean }) => {
      await withCliContext({ redis: false, start: true }, async ({ services, log }) => {
        await checkDatabase(services.databaseUrl, { logicalWal: false });
        const result = await migrate(services.databaseUrl, log);
        if (options.json) return printJson(result);
        console.log(result.applied.length
          ? `applied ${result.applied.length} migration(s): ${result.applied.join(', ')}`
          : 'no pending migrations');
        console.log(result.functionsApplied ? 'functions and grants applied' : 'functions unchanged');
      });
    });
}
