// Who owns the embedded servers of a data directory. The Stockroom process
// that starts a server, or takes one over, records its pid in
// <dir>/owner.json and removes it when it stops the server. A server running
// on the directory is then either:
//   - in use: its owner lives (a `stockroom start` in another terminal); other
//     commands use it and leave it alone;
//   - an orphan: its owner is gone without stopping it (killed before its
//     watchdog could act, or an older Stockroom that had no watchdog). A
//     start takes it over, saying so in one line: it is watched and stopped
//     like a server of its own. Nobody runs beside an orphan it does not own.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { commandLineOf, isAlive, sleep, startWatchdog } from './processes.ts';

const ownerFile = (dir: string) => path.join(dir, 'owner.json');

/** Records this process as the owner of the servers under dir. */
export function recordOwner(dir: string): void {
  writeFileSync(ownerFile(dir), JSON.stringify({ pid: process.pid, since: new Date().toISOString() }));
}

/** Forgets the owner, if it is this process. */
export function clearOwner(dir: string): void {
  if (ownerOf(dir) === process.pid) rmSync(ownerFile(dir), { force: true });
}

function ownerOf(dir: string): number | undefined {
  try {
    return (JSON.parse(readFileSync(ownerFile(dir), 'utf8')) as { pid: number }).pid;
  } catch {
    return undefined;
  }
}

/** The pid of the live Stockroom process that owns dir's servers (this one, perhaps), if there is one. */
export function liveOwner(dir: string): number | undefined {
  const pid = ownerOf(dir);
  if (pid === process.pid) return pid;
  if (pid === undefined || !isAlive(pid)) return undefined;
  return /stockroom|node/.test(commandLineOf(pid)) ? pid : undefined;
}

/**
 * Takes over an orphaned server: this process becomes its owner, a watchdog
 * stops it should this process die, and the returned stop() stops it with the
 * given signals in turn (the first one the server's graceful shutdown).
 */
export function takeOver(dir: string, pid: number, signals: Array<{ signal: NodeJS.Signals; waitMs: number }>): () => Promise<void> {
  recordOwner(dir);
  const dismissWatchdog = startWatchdog(pid, `kill -${signals[0]!.signal.replace('SIG', '')} ${pid}`);
  return async () => {
    for (const { signal, waitMs } of signals) {
      if (!isAlive(pid)) break;
      try {
        process.kill(pid, signal);
      } catch {
        break; // gone meanwhile
      }
      for (const until = Date.now() + waitMs; isAlive(pid) && Date.now() < until;) await sleep(50);
    }
    dismissWatchdog();
    clearOwner(dir);
  };
}
