// Summarizes a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self time,
// and optionally the most total (inclusive) time, so a profile of the collector under the
// ingest load can be read in a terminal.
//
//   node bench/ingest/profile-top.ts <file.cpuprofile> [--top 30] [--total]
//
// Profile the collector while the ingest suite runs with
//   NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof" npm run bench -- --only ingest
// (every node process of the run writes a profile named by its pid; the collector's pid is
// printed by the suite).

import { readFileSync } from 'node:fs';

import type { CallFrame, CpuProfile, ProfileNode } from '../lib/cpuprofile.ts';

export interface FunctionTime {
  readonly name: string;
  readonly selfMs: number;
  readonly totalMs: number;
}

function label(f: CallFrame): string {
  const file = f.url === '' ? '' : f.url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules\/)/, '$1').replace(/^.*\/main\//, '');
  return `${f.functionName || '(anonymous)'} ${file}${file ? ':' + (f.lineNumber + 1) : ''}`;
}

/** Self and total time per function (same name and location merged). */
export function summarize(profile: CpuProfile): { functions: FunctionTime[]; totalMs: number } {
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let totalMs = 0;
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const ms = (deltas[i] ?? 0) / 1000;
    totalMs += ms;
    const id = samples[i]!;
    const node = byId.get(id);
    if (node === undefined) continue;
    const name = label(node.callFrame);
    self.set(name, (self.get(name) ?? 0) + ms);
    // Inclusive time: once per distinct function on the stack (recursion counted once).
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      if (n === undefined) break;
      const l = label(n.callFrame);
      if (seen.has(l)) continue;
      seen.add(l);
      total.set(l, (total.get(l) ?? 0) + ms);
    }
  }
  const functions = [...total.keys()].map((name) => ({ name, selfMs: self.get(name) ?? 0, totalMs: total.get(name) ?? 0 }));
  return { functions, totalMs };
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--'));
  if (file === undefined) {
    process.stderr.write('usage: node bench/ingest/profile-top.ts <file.cpuprofile> [--top N] [--total]\n');
    process.exit(2);
  }
  const topIdx = args.indexOf('--top');
  const top = topIdx >= 0 ? Number(args[topIdx + 1]) : 30;
  const { functions, totalMs } = summarize(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
  const pct = (ms: number): string => ((100 * ms) / totalMs).toFixed(1).padStart(5) + ' %';
  const print = (title: string, key: 'selfMs' | 'totalMs'): void => {
    process.stdout.write(`\n${title} (profile ${(totalMs / 1000).toFixed(2)} s)\n`);
    for (const f of [...functions].sort((a, b) => b[key] - a[key]).slice(0, top)) {
      process.stdout.write(`${pct(f[key])}  ${(f[key] / 1000).toFixed(2).padStart(7)} s  ${f.name}\n`);
    }
  };
  print('self time', 'selfMs');
  if (args.includes('--total')) print('total time', 'totalMs');
}
