// Errors as types with codes. Callers branch on `code` or `instanceof`, never
// on message text. Database errors cross into TypeScript by SQLSTATE (see
// fromPostgresError); everything the CLI prints to a person is `message`,
// one actionable line.

export class StockroomError extends Error {
  readonly code: string;
  readonly detail: unknown;
  constructor(code: string, message: string, options: { cause?: unknown; detail?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.detail = options.detail;
  }
}

/** Bad or missing configuration: names the variable and what to do. */
export class ConfigError extends StockroomError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('CONFIG', message, options);
  }
}

/** A service Stockroom needs is not there or not usable (Postgres, Redis, binaries). */
export class ServiceUnavailableError extends StockroomError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('SERVICE_UNAVAILABLE', message, options);
  }
}

/** An operator command found no embedded server running, and starts none for itself. */
export class NothingRunningError extends StockroomError {
  constructor(service: 'PostgreSQL' | 'Redis', dataDir: string, orphanPid?: number) {
    super('NOTHING_RUNNING', orphanPid === undefined
      ? `Stockroom is not running (no embedded ${service} on ${dataDir}): start it with \`npm start\` (or \`npx stockroom start\`) in another terminal, or point DATABASE_URL and REDIS_URL at your servers`
      : `Stockroom is not running: the embedded ${service} on ${dataDir} (pid ${orphanPid}) was left by an earlier run that is gone; \`npm start\` takes it over (or stop it: kill ${orphanPid})`);
  }
}

/** The command line asked for something that cannot be done as asked. */
export class UsageError extends StockroomError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

export class MigrationError extends StockroomError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('MIGRATION', message, options);
  }
}

/** The SQL API's own errors, IV001..IV007, with the JSON detail the function raised. */
export class InventoryError extends StockroomError {
  readonly sqlstate: string;
  readonly hint: string | undefined;
  constructor(sqlstate: string, code: string, message: string, options: { cause?: unknown; detail?: unknown; hint?: string } = {}) {
    super(code, message, options);
    this.sqlstate = sqlstate;
    this.hint = options.hint;
  }
}
export class InsufficientStockError extends InventoryError {}
export class NegativeStockError extends InventoryError {}
export class InvalidStateError extends InventoryError {}
export class NotFoundError extends InventoryError {}
export class InvalidArgumentError extends InventoryError {}
export class IdempotencyConflictError extends InventoryError {}
export class StaleCountError extends InventoryError {}

type InventoryErrorClass = new (
  sqlstate: string, code: string, message: string, options?: { cause?: unknown; detail?: unknown; hint?: string },
) => InventoryError;

/** SQLSTATE → error code and class: the one place the mapping lives (GraphQL uses the codes too). */
export const inventoryErrors: Readonly<Record<string, { code: string; type: InventoryErrorClass }>> = {
  IV001: { code: 'INSUFFICIENT_STOCK', type: InsufficientStockError },
  IV002: { code: 'NEGATIVE_STOCK', type: NegativeStockError },
  IV003: { code: 'INVALID_STATE', type: InvalidStateError },
  IV004: { code: 'NOT_FOUND', type: NotFoundError },
  IV005: { code: 'INVALID_ARGUMENT', type: InvalidArgumentError },
  IV006: { code: 'IDEMPOTENCY_CONFLICT', type: IdempotencyConflictError },
  IV007: { code: 'STALE_COUNT', type: StaleCountError },
};

interface PostgresErrorFields { code?: unknown; message?: unknown; detail?: unknown; hint?: unknown }

/** Finds the Postgres error in a chain of causes (slonik wraps pg's errors). */
export function postgresErrorOf(error: unknown): (PostgresErrorFields & { code: string }) | undefined {
  for (let e: unknown = error, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const fields = e as PostgresErrorFields & { cause?: unknown };
    if (typeof fields.code === 'string' && /^[0-9A-Z]{5}$/.test(fields.code)) return fields as PostgresErrorFields & { code: string };
    e = fields.cause;
  }
  return undefined;
}

/** An InventoryError for IV001..IV007, else the error unchanged. */
export function fromPostgresError(error: unknown): unknown {
  const pgError = postgresErrorOf(error);
  const known = pgError ? inventoryErrors[pgError.code] : undefined;
  if (!pgError || !known) return error;
  let detail: unknown = pgError.detail;
  if (typeof detail === 'string') {
    try { detail = JSON.parse(detail); } catch { /* plain text detail stays text */ }
  }
  return new known.type(pgError.code, known.code, String(pgError.message), {
    cause: error,
    detail,
    hint: typeof pgError.hint === 'string' ? pgError.hint : undefined,
  });
}
