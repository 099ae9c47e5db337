import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/** json: one object a line, for machines; pretty: coloured lines for a person; auto: pretty on a terminal. */
export type LogFormat = 'auto' | 'json' | 'pretty';

/** Logs on stderr, so stdout stays clean for tables and --json. */
export function createLogger(level: string, name = 'stockroom', format: LogFormat = 'json'): Logger {
  const readable = format === 'pretty' || (format === 'auto' && process.stderr.isTTY === true);
  if (readable) {
    return pino({ name, level }, pretty({
      destination: 2, sync: true, colorize: process.stderr.isTTY === true,
      translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name',
    }));
  }
  return pino({ name, level }, pino.destination(2));
}
