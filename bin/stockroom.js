#!/usr/bin/env node
// Stockroom is TypeScript run by Node's own type stripping, which needs Node 24.
// `npx stockroom` and npm scripts use the Node 24 the project installs.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`stockroom: needs Node 24 or newer (this is ${process.version}); run it as \`npx stockroom\` from the project, which uses the Node the project installs\n`);
  process.exit(1);
}
// Read by grafast when it loads: production planning unless asked otherwise (its
// development mode adds checks and is much slower).
process.env.GRAPHILE_ENV ??= 'production';
// Compiled code of Stockroom and its dependencies is kept between calls (in the
// system's temporary directory, or NODE_COMPILE_CACHE): a command starts in
// about two thirds of the time. Node checks each entry against its source.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
await import('../src/cli/main.ts');
