// docker-compose.yml and the Dockerfile, checked for what Stockroom needs from
// them (no Docker engine needed): logical WAL, healthy dependencies, service
// URLs, a valid production configuration, and an image that runs `start`.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string) => readFileSync(`${root}${file}`, 'utf8');

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: Array<string | number | { target?: number; published?: number | string }>;
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[]; disable?: boolean };
  volumes?: unknown[];
}
const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service> };
const service = (name: string): Service => {
  const found = compose.services?.[name];
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
};

/** Compose's variable interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, $$. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}|\$(\w+)/g, (match, braced?: string, op?: string, fallback?: string, bare?: string) => {
    if (match === '$$') return '$';
    const name = (braced ?? bare)!;
    const set = env[name];
    if (op === ':-') return set ? set : fallback!;
    if (op === '-') return set !== undefined ? set : fallback!;
    return set ?? '';
  });
}

/** A service's environment as the container sees it, given the environment `docker compose up` runs in. */
function environmentOf(s: Service, hostEnv: Record<string, string> = {}): Record<string, string> {
  const entries: Array<[string, string]> = Array.isArray(s.environment)
    ? s.environment.map((line) => {
        const at = line.indexOf('=');
        return (at < 0 ? [line, hostEnv[line] ?? ''] : [line.slice(0, at), line.slice(at + 1)]) as [string, string];
      })
    : Object.entries(s.environment ?? {}).map(([k, v]) => [k, v === null ? '' : String(v)]);
  return Object.fromEntries(entries.map(([k, v]) => [k, interpolate(v, hostEnv)]));
}

const words = (command: string | string[] | undefined): string[] =>
  command === undefined ? [] : Array.isArray(command) ? command.map(String) : command.trim().split(/\s+/);

/** `-c name=value` settings on the postgres command line. */
function serverSettings(command: string | string[] | undefined): Record<string, string> {
  const argv = words(command);
  const settings: Record<string, string> = {};
  argv.forEach((word, i) => {
    const setting = word === '-c' ? argv[i + 1] : word.startsWith('--') && word.includes('=') ? word.slice(2) : undefined;
    if (!setting) return;
    const at = setting.indexOf('=');
    settings[setting.slice(0, at).replaceAll('-', '_')] = setting.slice(at + 1);
  });
  return settings;
}

function healthTest(s: Service): string[] {
  const t = s.healthcheck?.test;
  if (s.healthcheck?.disable || t === undefined) return [];
  const argv = words(t);
  return argv[0] === 'CMD' || argv[0] === 'CMD-SHELL' ? argv.slice(1) : argv;
}

function dependencyConditions(s: Service): Record<string, string | undefined> {
  if (Array.isArray(s.depends_on)) return Object.fromEntries(s.depends_on.map((name) => [name, undefined]));
  return Object.fromEntries(Object.entries(s.depends_on ?? {}).map(([name, d]) => [name, d?.condition]));
}

/** [published, container] port pairs. */
function portPairs(s: Service): Array<[number, number]> {
  return (s.ports ?? []).map((p) => {
    if (typeof p === 'object') return [Number(p.published ?? p.target), Number(p.target)];
    const parts = String(p).split('/')[0]!.split(':');
    return [Number(parts.at(-2) ?? parts.at(-1)), Number(parts.at(-1))];
  });
}

const imageMajor = (image: string | undefined) => Number(/:(\d+)/.exec(image ?? '')?.[1] ?? NaN);

test('postgres runs 15 or newer with logical WAL, slots and walsenders to spare, and a volume', (t) => {
  const postgres = service('postgres');
  t.true(imageMajor(postgres.image) >= 15, `image ${postgres.image}`);
  t.regex(postgres.image!, /^postgres:/);
  const settings = serverSettings(postgres.command);
  t.is(settings.wal_level, 'logical');
  t.true(Number(settings.max_replication_slots) >= 2, `max_replication_slots=${settings.max_replication_slots}`);
  t.true(Number(settings.max_wal_senders) >= 2, `max_wal_senders=${settings.max_wal_senders}`);
  t.true((postgres.volumes ?? []).some((v) => String(typeof v === 'object' && v ? (v as { target?: string }).target : v).includes('/var/lib/postgresql')));
});

test('postgres and redis have healthchecks that ask the server itself', (t) => {
  const pgCheck = healthTest(service('postgres')).join(' ');
  t.regex(pgCheck, /\bpg_isready\b/);
  const user = environmentOf(service('postgres')).POSTGRES_USER;
  if (user) t.regex(pgCheck, new RegExp(`-U\\s+${user}\\b`));
  const redis = service('redis');
  t.is(imageMajor(redis.image), 7);
  t.regex(healthTest(redis).join(' '), /\bredis-cli\b.*\bping\b/);
});

test('the app starts only once postgres and redis are healthy', (t) => {
  const conditions = dependencyConditions(service('app'));
  t.is(conditions.postgres, 'service_healthy');
  t.is(conditions.redis, 'service_healthy');
});

test('the app reaches the compose services with the credentials postgres is created with', (t) => {
  const env = environmentOf(service('app'));
  const database = new URL(env.DATABASE_URL!);
  t.true(['postgres:', 'postgresql:'].includes(database.protocol));
  t.is(database.hostname, 'postgres');
  const pgEnv = environmentOf(service('postgres'));
  t.is(decodeURIComponent(database.username), pgEnv.POSTGRES_USER ?? 'postgres');
  t.is(decodeURIComponent(database.password), pgEnv.POSTGRES_PASSWORD ?? '(POSTGRES_PASSWORD unset)');
  t.is(database.pathname.slice(1), pgEnv.POSTGRES_DB ?? pgEnv.POSTGRES_USER ?? 'postgres');
  t.is(Number(database.port || 5432), 5432);
  const redis = new URL(env.REDIS_URL!);
  t.is(redis.protocol, 'redis:');
  t.is(redis.hostname, 'redis');
  t.is(Number(redis.port || 6379), 6379);
});

test('the app runs in production with a JWT secret, marked to change, that a host variable overrides', (t) => {
  const app = service('app');
  const env = environmentOf(app);
  t.is(env.NODE_ENV, 'production');
  t.true(env.JWT_SECRET!.length >= 32, `JWT_SECRET default is ${env.JWT_SECRET!.length} characters`);
  t.regex(env.JWT_SECRET!, /change/i, 'the placeholder says it must be changed');
  const own = 'an-operator-chosen-secret-of-40-characters';
  t.is(environmentOf(app, { JWT_SECRET: own }).JWT_SECRET, own);
});

test('loadConfig accepts the app environment as compose gives it', (t) => {
  const env = environmentOf(service('app'));
  const config = loadConfig(env, '/app');
  t.like(config, { databaseUrl: env.DATABASE_URL, redisUrl: env.REDIS_URL, jwtSecret: env.JWT_SECRET, production: true });
  t.truthy(config.jwtSecret); // startApi refuses to run in production without it
});

test('the published port is the one the app listens on, and the healthcheck asks /health there', (t) => {
  const app = service('app');
  const port = loadConfig(environmentOf(app), '/app').port;
  t.deepEqual(portPairs(app).map(([, container]) => container), [port]);
  const check = healthTest(app).join(' ');
  t.true(check.includes(`:${port}/health`), check);
});

test('the app is built from the Dockerfile, whose command is `stockroom start` on Node 24', (t) => {
  const build = service('app').build;
  const context = typeof build === 'string' ? build : build?.context ?? '.';
  const dockerfile = typeof build === 'object' && build.dockerfile ? build.dockerfile : 'Dockerfile';
  t.is(context, '.');
  const instructions = read(dockerfile).replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const of = (keyword: string) => instructions.filter((l) => l.toUpperCase().startsWith(`${keyword} `)).map((l) => l.slice(keyword.length).trim());
  t.regex(of('FROM').at(-1)!, /^node:24(\b|[.-])/);
  const argv = (form: string | undefined) => (form === undefined ? [] : form.startsWith('[') ? (JSON.parse(form) as string[]) : ['/bin/sh', '-c', form]);
  const command = [...argv(of('ENTRYPOINT').at(-1)), ...argv(of('CMD').at(-1))];
  const cli = command.findIndex((word) => word.endsWith('bin/stockroom.js') || word === 'stockroom');
  t.true(cli >= 0, `command ${JSON.stringify(command)}`);
  t.is(command[cli + 1], 'start');
  t.is(command[0], 'node', 'exec form with node as PID 1 receives SIGTERM and stops the roles in order');
  // start reads these at run time (the code, the migrations, the SQL functions and grants).
  const copied = of('COPY').join('\n');
  for (const dir of ['bin', 'src', 'migrations', 'sql']) t.regex(copied, new RegExp(`(^|\\s)(\\./)?${dir}/?(\\s|$)`, 'm'), `COPY ${dir}`);
  t.regex(of('RUN').join('\n'), /\bnpm ci\b/);
});

test('.dockerignore keeps node_modules, .data, .git and .env out of the build context', (t) => {
  const ignored = read('.dockerignore').split('\n').map((l) => l.trim().replace(/^\/|\/$/g, ''));
  for (const path of ['node_modules', '.data', '.git', '.env']) t.true(ignored.includes(path), path);
});
