// Slonik pools for Stockroom's own queries (CLI, jobs, cache rebuild). Rows
// are validated against each query's zod schema at the boundary.
import {
  createPool, createTypeParserPreset, SchemaValidationError,
  type DatabasePool, type Interceptor, type QueryResultRow,
} from 'slonik';

export type { DatabasePool };

/** Makes sql.type(schema) actually validate: slonik 49 only types it. */
const resultParser: Interceptor = {
  name: 'stockroom-result-parser',
  transformRow: (context, query, row) => {
    const parser = context.resultParser;
    if (!parser) return row;
    const result = parser['~standard'].validate(row);
    if (result instanceof Promise) throw new TypeError('async result schemas are not supported');
    if (result.issues) throw new SchemaValidationError(query, row, result.issues);
    return result.value as QueryResultRow;
  },
};

/**
 * int8 as number (versions, ids and counts stay far below 2^53, and JSON
 * output cannot hold bigint); timestamptz as ISO text, exact and printable.
 */
const typeParsers = [
  ...createTypeParserPreset(),
  { name: 'int8', parse: (value: string) => Number(value) },
  { name: 'numeric', parse: (value: string) => Number(value) },
  { name: 'timestamptz', parse: (value: string) => new Date(value.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')).toISOString() },
];

export interface PoolOptions {
  applicationName: string;
  maxPoolSize?: number;
  statementTimeoutMs?: number;
}

export async function createDatabasePool(url: string, options: PoolOptions): Promise<DatabasePool> {
  const dsn = new URL(url);
  dsn.searchParams.set('application_name', options.applicationName);
  return createPool(dsn.toString(), {
    interceptors: [resultParser],
    typeParsers,
    maxPoolSize: options.maxPoolSize ?? 10,
    statementTimeout: options.statementTimeoutMs ?? 60_000,
    // Our queries leave no session state behind; skip slonik's DISCARD ALL round trip per release.
    resetConnection: async () => {},
  });
}
