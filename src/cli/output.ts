// Output for people (tables, progress bars on stderr) and for scripts (--json on stdout).
import { SingleBar, Presets } from 'cli-progress';
import Table from 'cli-table3';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printTable(head: string[], rows: Array<Array<string | number | null | undefined>>): void {
  const table = new Table({ head, style: { head: [], border: [] } });
  for (const row of rows) table.push(row.map((cell) => (cell === null || cell === undefined ? '' : String(cell))));
  process.stdout.write(`${table.toString()}\n`);
}

/** One thing's fields, a line each (fits a narrow terminal where a wide table would not). */
export function printFields(fields: Array<[string, string | number | null | undefined]>): void {
  const table = new Table({ style: { head: [], border: [] } });
  for (const [name, value] of fields) table.push([name, value === null || value === undefined ? '' : String(value)]);
  process.stdout.write(`${table.toString()}\n`);
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
