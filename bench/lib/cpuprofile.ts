// Reads a V8 `.cpuprofile` (what `node --cpu-prof` writes) and says where the time went: the
// functions with the most self time, and self time grouped by where the code lives (our
// folders, each npm package, Node's internals by module, GC, idle). `npm run bench --
// --profile` prints this for every sidecar so a missed target comes with its profile.

import { readFileSync } from 'node:fs';

export interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

export interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly hitCount?: number;
  readonly children?: readonly number[];
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export interface ProfileRow {
  readonly name: string;
  /** Self time in ms. */
  readonly ms: number;
  /** Share of the non-idle time, 0..1. */
  readonly share: number;
}

export interface ProfileSummary {
  /** Wall time the profile covers, ms. */
  readonly wallMs: number;
  /** Sampled time that was not idle, ms. */
  readonly busyMs: number;
  readonly topFunctions: readonly ProfileRow[];
  readonly byArea: readonly ProfileRow[];
}

/** Where a function's code lives, in words a reader of the profile can act on. */
export function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'program (native, outside JS)';
    return `native ${functionName || '(anonymous)'}`;
  }
  if (url.startsWith('node:')) {
    // node:internal/http2/core → node:http2, node:internal/streams/readable → node:streams
    const m = /^node:(?:internal\/)?([^/]+)/.exec(url);
    return `node:${m?.[1] ?? url}`;
  }
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') === true ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? url);
  }
  // Our own code: the repository folder and file (sidecar/proxy/forward.ts).
  const m = /\/((?:common|sidecar|collector|controlplane|query-api|storage|cli|bench)\/.*)$/.exec(url);
  return m?.[1] ?? url;
}

function frameName(f: CallFrame): string {
  const file = areaOf(f);
  return `${f.functionName || '(anonymous)'} ${file}${f.url !== '' ? `:${f.lineNumber + 1}` : ''}`;
}

/** Summarizes one profile: self time per function and per area. */
export function summarizeProfile(profile: CpuProfile, top = 15): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  if (samples.length > 0 && deltas.length === samples.length) {
    // Each sample's time is the delta to the next one.
    for (let i = 0; i < samples.length; i++) {
      const next = i + 1 < deltas.length ? (deltas[i + 1] ?? 0) : 0;
      const id = samples[i] ?? 0;
      selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, next));
    }
  } else {
    const interval = (profile.endTime - profile.startTime) / Math.max(1, profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0));
    for (const n of profile.nodes) selfUs.set(n.id, (n.hitCount ?? 0) * interval);
  }
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (node === undefined || us === 0) continue;
    const a = areaOf(node.callFrame);
    if (a === 'idle') continue;
    busy += us;
    const name = frameName(node.callFrame);
    fn.set(name, (fn.get(name) ?? 0) + us);
    area.set(a, (area.get(a) ?? 0) + us);
  }
  const rows = (m: Map<string, number>): ProfileRow[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: Math.round(us / 100) / 10, share: busy === 0 ? 0 : Math.round((us / busy) * 1000) / 1000 }));
  return {
    wallMs: Math.round((profile.endTime - profile.startTime) / 1000),
    busyMs: Math.round(busy / 1000),
    topFunctions: rows(fn),
    byArea: rows(area),
  };
}

export function summarizeProfileFile(path: string, top = 15): ProfileSummary {
  return summarizeProfile(JSON.parse(readFileSync(path, 'utf8')) as CpuProfile, top);
}

/** A plain-text rendering for logs and the issue note. */
export function renderProfile(title: string, s: ProfileSummary): string {
  const pct = (r: ProfileRow): string => `${(r.share * 100).toFixed(1).padStart(5)} %  ${r.ms.toFixed(1).padStart(8)} ms  ${r.name}`;
  return [
    `${title}: ${s.busyMs} ms busy of ${s.wallMs} ms`,
    '  self time by area:',
    ...s.byArea.map((r) => `    ${pct(r)}`),
    '  top functions (self time):',
    ...s.topFunctions.map((r) => `    ${pct(r)}`),
  ].join('\n');
}
