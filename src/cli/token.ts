// `stockroom token`: a token the API accepts, for a role, signed with the API's
// secret (JWT_SECRET, or outside production the development secret kept in
// the data directory). Reads no database: it answers at once.
import type { Command } from 'commander';
import { API_ROLES, loadConfig, type ApiRole } from '../config.ts';
import { jwtSecretOf } from '../dev-secret.ts';
import { UsageError } from '../errors.ts';
import { signToken } from '../graphql/auth.ts';
import { printJson } from './output.ts';

interface TokenOptions { role: string; sub?: string; expires: string; header?: boolean; json?: boolean }

const UNITS: Record<string, number> = { s: 1, m: 60, min: 60, h: 3600, d: 86_400 };

export function registerToken(program: Command): void {
  program
    .command('token')
    .description('print an API token for a role (signed with JWT_SECRET, or the development secret in the data directory)')
    .option('--role <role>', `public, reader, writer or admin (or ${API_ROLES.join(', ')})`, 'writer')
    .option('--sub <name>', 'the subject: recorded as the actor of what the token changes')
    .option('--expires <duration>', 'lifetime, like 15m, 1h or 7d (at most STOCKROOM_JWT_MAX_LIFETIME)', '1h')
    .option('--header', 'print it as an HTTP header: Authorization: Bearer <token>')
    .option('--json', 'print token, role, subject and expiry as JSON')
    .addHelpText('after', [
      '', 'Examples:', '  stockroom token --role writer',
      `  curl -H "$(npx stockroom token --role writer --header)" -H 'content-type: application/json' localhost:5678/graphql -d '{"query": "{ __typename }"}'`,
      '  TOKEN=$(npx stockroom token --role reader --sub ops --expires 15m)',
    ].join('\n'))
    .action(async (options: TokenOptions) => {
      const config = loadConfig();
      const role = (options.role.startsWith('stockroom_') ? options.role : `stockroom_${options.role}`) as ApiRole;
      if (!API_ROLES.includes(role)) throw new UsageError(`--role ${options.role} is none of public, reader, writer, admin`);
      const match = /^(\d+)(s|m|min|h|d)$/.exec(options.expires);
      if (!match) throw new UsageError(`--expires ${options.expires} is not a duration like 15m, 1h or 7d`);
      const lifetime = Number(match[1]) * UNITS[match[2]!]!;
      if (lifetime <= 0 || lifetime > config.jwtMaxLifetimeSeconds) {
        throw new UsageError(`--expires ${options.expires} must be more than 0 and at most ${config.jwtMaxLifetimeSeconds} s (STOCKROOM_JWT_MAX_LIFETIME)`);
      }
      const secret = jwtSecretOf(config);
      if (!secret) throw new UsageError('JWT_SECRET is not set, and production (NODE_ENV=production) makes no development secret: set JWT_SECRET');
      const token = await signToken(secret.value, { role, sub: options.sub }, lifetime);
      if (options.json) {
        return printJson({ token, role, sub: options.sub ?? null, expiresAt: new Date(Date.now() + lifetime * 1000).toISOString(), secret: secret.source });
      }
      process.stdout.write(options.header ? `Authorization: Bearer ${token}\n` : `${token}\n`);
    });
}
