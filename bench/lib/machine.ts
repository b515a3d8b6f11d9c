// Where a result was measured: every results file carries this, so figures from different
// machines or builds are never compared blindly.

import { cpus, loadavg, release, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';

export interface MachineInfo {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryBytes: number;
  readonly kernel: string;
  readonly node: string;
  readonly loadAverageAtStart: readonly number[];
  readonly gitCommit: string | undefined;
  readonly gitDirty: boolean | undefined;
  readonly tools: Record<string, string | undefined>;
  clickhouseVersion?: string;
}

export function machineInfo(tools: Record<string, string | undefined> = {}): MachineInfo {
  let gitCommit: string | undefined;
  let gitDirty: boolean | undefined;
  try {
    gitCommit = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    gitDirty = execFileSync('git', ['status', '--porcelain'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().length > 0;
  } catch {
    /* not a checkout */
  }
  const c = cpus();
  return {
    cpus: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    kernel: release(),
    node: process.version,
    loadAverageAtStart: loadavg().map((x) => Number(x.toFixed(2))),
    gitCommit,
    gitDirty,
    tools,
  };
}
