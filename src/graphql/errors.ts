// GraphQL errors clients can branch on: the SQL API's SQLSTATEs become
// extensions.code (INSUFFICIENT_STOCK, ...), with the function's JSON detail.
// Anything else is masked by grafserv's default (logged, with an id).
import { defaultMaskError } from 'postgraphile/grafserv';
import { GraphQLError } from 'postgraphile/graphql';
import { inventoryErrors } from '../errors.ts';

const OTHER_CODES: Record<string, string> = { '42501': 'FORBIDDEN', '57014': 'TIMEOUT', '22P02': 'INVALID_ARGUMENT' };

export function codeOfSqlstate(sqlstate: string): string | undefined {
  return inventoryErrors[sqlstate]?.code ?? OTHER_CODES[sqlstate];
}

export function maskError(error: GraphQLError): GraphQLError {
  const original = error.originalError as (Error & { code?: unknown; detail?: string; hint?: string }) | undefined;
  const code = typeof original?.code === 'string' ? codeOfSqlstate(original.code) : undefined;
  if (!original || !code) return defaultMaskError(error);
  let detail: unknown = original.detail;
  try {
    detail = original.detail ? JSON.parse(original.detail) : undefined;
  } catch {
    /* plain text detail stays text */
  }
  const message = code === 'FORBIDDEN' ? `your role may not do this: ${original.message}` : original.message;
  return new GraphQLError(message, {
    nodes: error.nodes, source: error.source, positions: error.positions, path: error.path, originalError: original,
    extensions: { code, sqlstate: original.code, ...(detail === undefined ? {} : { detail }), ...(original.hint ? { hint: original.hint } : {}) },
  });
}
