// The `stockroom` command. Each subcommand lives in its own file; this one
// wires them up and turns any failure into one actionable line.
import { Command, CommanderError } from 'commander';
import { StockroomError, UsageError, fromPostgresError } from '../errors.ts';
import { registerBench } from './bench.ts';
import { registerCache } from './cache.ts';
import { registerJobs } from './jobs.ts';
import { registerMigrate } from './migrate.ts';
import { registerSeed } from './seed.ts';
import { registerSlot } from './slot.ts';
import { registerSql } from './sql.ts';
import { registerStart } from './start.ts';
import { registerStock } from './stock.ts';

const program = new Command('stockroom')
  .description('Stockroom: inventory in PostgreSQL with a Redis catalog cache kept in step by logical replication')
  .showHelpAfterError()
  .exitOverride();

registerStart(program);
registerMigrate(program);
registerSeed(program);
registerSql(program);
registerCache(program);
registerJobs(program);
registerSlot(program);
registerStock(program);
registerBench(program);

function explain(error: unknown): string {
  const mapped = fromPostgresError(error);
  if (mapped instanceof StockroomError) return mapped.message;
  const message = error instanceof Error ? error.message : String(error);
  return `${message} (unexpected; run with LOG_LEVEL=debug for details)`;
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;

  } else {
    process.stderr.write(`stockroom: ${explain(error)}\n`);
    if (process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace') console.error(error);
    process.exitCode = error instanceof UsageError ? 2 : 1;
  }
}
