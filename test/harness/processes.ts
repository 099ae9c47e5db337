// Helpers for harness tests: run a fixture, wait for processes to go.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { isAlive, sleep } from '../../src/harness/processes.ts';

export const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

/** Spawns `node <fixture> args`, resolving with the child and its first stdout line parsed as JSON. */
export async function spawnFixture<T>(name: string, args: string[]): Promise<{ child: ChildProcess; first: T }> {
  const child = spawn(process.execPath, [fixture(name), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) return { child, first: JSON.parse(line) as T };
  throw new Error(`fixture ${name} printed nothing`);
}

export async function waitUntilGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await sleep(100);
  }
  return !isAlive(pid);
}
