export default {
  files: ['test/**/*.test.ts'],
  extensions: { ts: 'module' },
  // Child processes, not worker threads: tests kill processes and set env vars.
  workerThreads: false,
  // Two cores: two test files at a time, each with its own databases.
  concurrency: 2,
  timeout: '2m',
};
