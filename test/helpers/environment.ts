// How test/run.ts tells the test processes where the throwaway servers are.
export const TEMPLATE_DATABASE = 'stockroom_template';

export function testEnvironment({ adminUrl, redisUrl }: { adminUrl: string; redisUrl: string }): Record<string, string> {
  return { STOCKROOM_TEST_ADMIN_URL: adminUrl, STOCKROOM_TEST_REDIS_URL: redisUrl };
}

export function testServers(): { adminUrl: string; redisUrl: string } {
  const adminUrl = process.env.STOCKROOM_TEST_ADMIN_URL;
  const redisUrl = process.env.STOCKROOM_TEST_REDIS_URL;
  if (!adminUrl || !redisUrl) {
    throw new Error('run the tests with `npm test` (test/run.ts starts the throwaway PostgreSQL and Redis they use)');
  }
  return { adminUrl, redisUrl };
}

/** The URL of another database on the same server. */
export function databaseUrl(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}
