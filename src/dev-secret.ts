// The API's token secret. JWT_SECRET when it is set; otherwise, outside
// production, a secret made on first use and kept in <data dir>/jwt-secret
// (mode 0600), so that `npm start` serves tokens at once and `stockroom token`
// signs tokens it accepts, with nothing to set up. Production never makes
// one: there JWT_SECRET is required.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from './config.ts';

export interface JwtSecret { value: string; source: 'JWT_SECRET' | string }

/** The secret and where it comes from (JWT_SECRET, or the file), or undefined in production without JWT_SECRET. */
export function jwtSecretOf(config: Pick<Config, 'jwtSecret' | 'production' | 'dataDir'>): JwtSecret | undefined {
  if (config.jwtSecret) return { value: config.jwtSecret, source: 'JWT_SECRET' };
  if (config.production) return undefined;
  const file = path.join(config.dataDir, 'jwt-secret');
  const read = () => ({ value: readFileSync(file, 'utf8').trim(), source: file });
  try {
    return read();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(config.dataDir, { recursive: true });
  try {
    writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error; // made meanwhile by another process: use it
  }
  return read();
}
