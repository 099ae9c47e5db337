// The `stockroom` command. Each subcommand lives in its own file; this one
// wires them up and turns any failure into one actionable line.
import { Command, CommanderError } from 'commander';
import { StockroomError, UsageError, fromPostgresError } from '../errors.ts';
import { registerBench } from './bench.ts';
import { registerCache } from './cache.ts';
import { registerInbound } from './inbound.ts';
import { registerJobs } from './jobs.ts';
import { registerMigrate } from './migrate.ts';
import { registerSeed } from './seed.ts';
import { registerSlot } from './slot.ts';
import { registerSql } from './sql.ts';
import { registerStart } from './start.ts';
import { registerStock } from './stock.ts';
import { registerToken } from './token.ts';
import { registerTransit } from './transit.ts';

const program = new Command('stockroom')
  .description('Stockroom: inventory in PostgreSQL with a Redis catalog cache kept in step by logical replication')
  // A usage error is one line, like the commands' own (the help is one --help away).
  .configureOutput({ outputError: (text, write) => write(`stockroom: ${text.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ')} (see --help)\n`) })
  .enablePositionalOptions()
  .exitOverride();

registerStart(program);
registerMigrate(program);
registerSeed(program);
registerSql(program);
registerCache(program);
registerJobs(program);
registerSlot(program);
registerStock(program);
registerTransit(program);
registerInbound(program);
registerToken(program);
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
    // Help and version are answers (0); anything else commander refuses is a usage error.
    process.exitCode = error.exitCode === 0 ? 0 : 2;

  } else {
    process.stderr.write(`stockroom: ${explain(error)}\n`);
    if (process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace') console.error(error);
    process.exitCode = error instanceof UsageError ? 2 : 1;
  }
}
