// Output for people (tables, progress bars on stderr) and for scripts (--json on stdout).
import { SingleBar, Presets } from 'cli-progress';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * The one table style of every command: columns aligned, a rule under the
 * head, numbers to the right; no box, so it fits narrow terminals and reads
 * the same in a redrawn dashboard (jobs --watch) and in a pipe.
 */
export function formatTable(head: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = rows.map((row) => row.map((cell) => (cell === null || cell === undefined ? '' : cell)));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => String(r[i] ?? '').length)));
  const line = (row: Array<string | number>) =>
    row.map((cell, i) => (typeof cell === 'number' ? String(cell).padStart(widths[i]!) : String(cell).padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '─'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

export function printTable(head: string[], rows: Array<Array<string | number | null | undefined>>): void {
  process.stdout.write(`${formatTable(head, rows)}\n`);
}

/** One thing's fields, a line each: "name   value" (fits a narrow terminal where a wide table would not). */
export function printFields(fields: Array<[string, string | number | null | undefined]>): void {
  const width = Math.max(...fields.map(([name]) => name.length));
  process.stdout.write(`${fields.map(([name, value]) => `${name.padEnd(width)}  ${value ?? ''}`.trimEnd()).join('\n')}\n`);
}

export interface Progress {
  advance(by: number): void;
  done(summary: string): void;
}

/** A progress bar on a terminal; elsewhere (CI, pipes) just the closing summary line. */
export function startProgress(label: string, total: number, unit: string): Progress {
  const bar = process.stderr.isTTY
    ? new SingleBar({
        format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {eta_formatted} left`,
        stream: process.stderr,
        hideCursor: true,
      }, Presets.shades_classic)
    : undefined;
  bar?.start(total, 0);
  return {
    advance: (by) => bar?.increment(by),
    done: (summary) => {
      bar?.stop();
      process.stderr.write(`${summary}\n`);
    },
  };
}
