// Preflight checks that turn a misconfigured database into one line saying what to do.
import pg from 'pg';
import { redact } from '../config.ts';
import { ServiceUnavailableError } from '../errors.ts';

export interface DatabaseFacts { serverVersion: number; walLevel: string }

/** Connects once; explains an unreachable server, a bad login or a too-old version. */
export async function checkDatabase(url: string, require: { logicalWal: boolean }): Promise<DatabaseFacts> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (cause) {
    const reason = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
    throw new ServiceUnavailableError(
      `cannot connect to PostgreSQL at ${redact(url)} (${reason}): start it, or fix DATABASE_URL`, { cause });
  }
  try {
    const { rows } = await client.query<{ version: string; wal_level: string }>(
      "select current_setting('server_version_num') as version, current_setting('wal_level') as wal_level");
    const facts = { serverVersion: Number(rows[0]!.version), walLevel: rows[0]!.wal_level };
    if (facts.serverVersion < 150000) {
      throw new ServiceUnavailableError(`PostgreSQL at ${redact(url)} is version ${facts.serverVersion}; Stockroom needs 15 or newer`);
    }
    if (require.logicalWal && facts.walLevel !== 'logical') {
      throw new ServiceUnavailableError(
        `PostgreSQL at ${redact(url)} runs with wal_level=${facts.walLevel}; Stockroom needs wal_level=logical: run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL`);
    }
    return facts;
  } finally {
    await client.end().catch(() => {});
  }
}
