// Imports point down: the CLI over the roles (listener, graphql, jobs), the
// roles over the parts they share (cache, db, harness, http), those over the
// base (config, errors, log, lifecycle, dev-secret). Never sideways between
// roles, never up. A concept shared by two roles lives below both of them.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

const LAYER: Record<string, number> = {
  cli: 3,
  listener: 2, graphql: 2, jobs: 2,
  cache: 1, db: 1, harness: 1, http: 1,
  'config.ts': 0, 'partition.ts': 0, 'errors.ts': 0, 'log.ts': 0, 'lifecycle.ts': 0, 'dev-secret.ts': 0,
};

/** The part of src a file belongs to: its top-level directory, or the file itself. */
function partOf(file: string): string {
  return path.relative(SRC, file).split(path.sep)[0]!;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(full) : entry.name.endsWith('.ts') ? [full] : [];
  });
}

test('imports within src point down, never sideways between roles or up', (t) => {
  const wrong: string[] = [];
  const files = sourceFiles(SRC);
  for (const file of files) {
    const from = partOf(file);
    t.true(from in LAYER, `${from} has a layer (add it to LAYER)`);
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+'(\.[^']+)'|import\('(\.[^']+)'\)/g)) {
      const target = path.resolve(path.dirname(file), match[1] ?? match[2]!);
      const to = partOf(target);
      if (to === from) continue;
      const sideways = LAYER[to] === LAYER[from] && LAYER[from]! >= 1;
      if (LAYER[to]! > LAYER[from]! || sideways) wrong.push(`${path.relative(SRC, file)} imports ${path.relative(SRC, target)}`);
    }
  }
  t.true(files.length > 50, `read the sources (${files.length} files)`);
  t.deepEqual(wrong, []);
});

test('the cache model has one owner: no module outside src/cache builds a rows-hash entry or states the available rule', (t) => {
  const wrong: string[] = [];
  for (const file of sourceFiles(SRC)) {
    if (partOf(file) === 'cache') continue;
    const text = readFileSync(file, 'utf8');
    if (/Math\.max\([^)]*(on_?[hH]and|onHand)[^)]*, 0\)/.test(text)) wrong.push(`${path.relative(SRC, file)}: the available rule`);
    if (/\.split\(':'\)/.test(text) && /version/.test(text)) wrong.push(`${path.relative(SRC, file)}: decodes a rows-hash entry`);
    if (/defineCommand|evalsha|\.eval\(/.test(text)) wrong.push(`${path.relative(SRC, file)}: runs Lua of its own`);
  }
  t.deepEqual(wrong, []);
});
