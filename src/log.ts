import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stderr, so stdout stays clean for tables and --json. */
export function createLogger(level: string, name = 'stockroom'): Logger {
  return pino({ name, level }, pino.destination(2));
}
