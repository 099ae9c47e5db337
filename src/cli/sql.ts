import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { redact } from '../config.ts';
import { ServiceUnavailableError } from '../errors.ts';
import { findExecutable } from '../harness/processes.ts';
import { withCliContext } from './context.ts';

export function registerSql(program: Command): void {
  program
    .command('sql')
    .description('open psql on the Stockroom database (arguments after -- go to psql)')
    .argument('[psqlArgs...]', 'arguments for psql')
    .addHelpText('after', `\nExamples:\n  stockroom sql\n  stockroom sql -- -c "select * from inventory.stock(array['SKU-000001'])"`)
    .action(async (psqlArgs: string[]) => {
      await withCliContext({ redis: false }, async ({ services }) => {
        const psql = findExecutable('psql');
        if (!psql) {
          throw new ServiceUnavailableError(
            `psql is not installed: install the PostgreSQL client (Debian/Ubuntu: apt-get install postgresql-client), or connect any client to ${redact(services.databaseUrl)}`);
        }
        const code = await new Promise<number>((resolve) => {
          // Errors with their SQLSTATE (IV001 …), without the CONTEXT lines of the internal
          // helpers a PL/pgSQL error passed through (a ~/.psqlrc may still say otherwise).
          const child = spawn(psql, ['-v', 'VERBOSITY=verbose', '-v', 'SHOW_CONTEXT=never', services.databaseUrl, ...psqlArgs], { stdio: 'inherit' });
          // psql handles Ctrl-C itself (it cancels the running query); we only wait.
          const ignore = () => {};
          process.on('SIGINT', ignore);
          child.on('exit', (status) => {
            process.off('SIGINT', ignore);
            resolve(status ?? 1);
          });
        });
        process.exitCode = code;
      });
    });
}
