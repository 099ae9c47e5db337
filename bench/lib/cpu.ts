// CPU time of the processes a benchmark runs, from /proc (Linux): on a
// 2-core machine the API, PostgreSQL and the load generator compete for the
// same cores, so figures come with each one's CPU per request.
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** utime + stime of one process, in seconds (0 when it is gone). */
function cpuSecondsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND; // utime, stime
  } catch {
    return 0;
  }
}

/** A process and its children (PostgreSQL: the postmaster and every backend). */
function withChildren(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return [pid, ...children];
}

/** CPU seconds of each process of a group, by pid. */
function cpuByPid(root: number): Map<number, number> {
  return new Map(withChildren(root).map((pid) => [pid, cpuSecondsOf(pid)]));
}

export interface CpuMeter {
  /** CPU seconds each named process (group) used since start(). */
  stop(): Record<string, number>;
}

/** Starts measuring: `groups` maps a name to a root pid whose children count too; 'bench' is this process. */
export function startCpuMeter(groups: Record<string, number>): CpuMeter {
  const before = Object.fromEntries(Object.entries(groups).map(([name, pid]) => [name, { root: pid, cpu: cpuByPid(pid) }]));
  const self = process.cpuUsage();
  return {
    stop: () => {
      const used: Record<string, number> = {};
      for (const [name, { root, cpu }] of Object.entries(before)) {
        // A process that started meanwhile counts whole; one that ended meanwhile is lost (rare: pools keep their sessions).
        let seconds = 0;
        for (const [pid, now] of cpuByPid(root)) seconds += Math.max(0, now - (cpu.get(pid) ?? 0));
        used[name] = seconds;
      }
      const mine = process.cpuUsage(self);
      used.bench = (mine.user + mine.system) / 1e6;
      return used;
    },
  };
}
