// Per-process CPU time and memory from /proc, so each proxy, collector or server is measured
// on its own (all threads of the process included).

import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let ticks: number | undefined;
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

export interface ProcSample {
  readonly pid: number;
  /** utime + stime of all threads, in seconds. */
  readonly cpuSeconds: number;
  /** Peak resident set size (VmHWM), in bytes. */
  readonly peakRssBytes: number;
  /** Current resident set size (VmRSS), in bytes. */
  readonly rssBytes: number;
  readonly at: number;
}

/** Reads one sample, or undefined when the process is gone. */
export function sampleProc(pid: number): ProcSample | undefined {
  let stat: string;
  let status: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may contain spaces and parentheses; fields resume after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const kb = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { pid, cpuSeconds: (utime + stime) / clockTicks(), peakRssBytes: kb('VmHWM'), rssBytes: kb('VmRSS'), at: performance.now() };
}

export interface ProcUsage {
  readonly cpuSeconds: number;
  readonly wallSeconds: number;
  /** cpuSeconds / wallSeconds: average cores busy. */
  readonly cpuCores: number;
  readonly peakRssBytes: number;
  readonly rssBytes: number;
}

/** CPU used between two samples of the same process; memory as of the later one. */
export function usageBetween(a: ProcSample, b: ProcSample): ProcUsage {
  const wall = (b.at - a.at) / 1000;
  const cpu = b.cpuSeconds - a.cpuSeconds;
  return {
    cpuSeconds: round(cpu, 3),
    wallSeconds: round(wall, 3),
    cpuCores: round(wall > 0 ? cpu / wall : 0, 4),
    peakRssBytes: b.peakRssBytes,
    rssBytes: b.rssBytes,
  };
}

export function round(x: number, digits: number): number {
  return Number(x.toFixed(digits));
}

/** Samples many processes at once (by name) and diffs them later. */
export class ProcWatch {
  private start = new Map<string, ProcSample>();
  private readonly pids: ReadonlyMap<string, number>;
  constructor(pids: ReadonlyMap<string, number>) {
    this.pids = pids;
  }

  begin(): void {
    this.start = new Map();
    for (const [name, pid] of this.pids) {
      const s = sampleProc(pid);
      if (s) this.start.set(name, s);
    }
  }

  end(): Record<string, ProcUsage> {
    const out: Record<string, ProcUsage> = {};
    for (const [name, pid] of this.pids) {
      const a = this.start.get(name);
      const b = sampleProc(pid);
      if (a && b) out[name] = usageBetween(a, b);
    }
    return out;
  }
}
