// The summary: each target of the benchmark issue with the measured figure, pass/fail, the
// ratio to the target and to the reference systems' published numbers, followed by a table per
// suite. Built from every bench/results/<suite>.json present, so `--only query` still shows
// the last data plane figures (each row says when it was measured).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isNa, SUITES, type SuiteName, type SuiteResult } from './lib/results.ts';
import type { DataplaneFigures, RouteFigures } from './dataplane/suite.ts';
import type { IngestFigures } from './ingest/suite.ts';
import type { QueryFigures } from './query/suite.ts';
import type { OutcomesFigures } from './outcomes/suite.ts';

export type Results = Partial<Record<SuiteName, SuiteResult>>;

export function loadResults(dir: string): Results {
  const out: Results = {};
  for (const s of SUITES) {
    const p = join(dir, `${s}.json`);
    if (!existsSync(p)) continue;
    try {
      out[s] = JSON.parse(readFileSync(p, 'utf8')) as SuiteResult;
    } catch {
      /* a broken file is reported as missing */
    }
  }
  return out;
}

/** A star marks a figure measured under conditions that make it indicative only (see its note). */
type Verdict = 'PASS' | 'FAIL' | 'PASS*' | 'FAIL*' | 'n/a';

export interface TargetRow {
  readonly target: string;
  readonly goal: string;
  readonly measured: string;
  readonly verdict: Verdict;
  /** measured / goal, for a quick feel of the margin. */
  readonly ratioToGoal: string;
  readonly anchor: string;
  readonly note: string;
}

interface Check {
  readonly target: string;
  readonly goal: string;
  readonly suite: SuiteName;
  /** 'le': measured must be ≤ goal; 'ge': ≥ goal. */
  readonly direction: 'le' | 'ge';
  readonly goalValue: number;
  readonly unit: string;
  /** Published figures of reference systems; `compare` names another measured figure to divide (default the target's). */
  readonly anchors: ReadonlyArray<{ readonly name: string; readonly value: number; readonly compare?: string }>;
  /** The figure (with a caveat when it is only indicative), or the reason there is none. */
  measure(r: SuiteResult): { value: number; note?: string; caveat?: string; other?: Record<string, number> } | { na: string };
}

const fmt = (x: number, unit: string): string => {
  const digits = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : Math.abs(x) >= 1 ? 2 : 3;
  return `${x.toFixed(digits)}${unit ? ' ' + unit : ''}`;
};

function route(r: SuiteResult, name: string): RouteFigures | undefined {
  return (r.figures as unknown as DataplaneFigures).routes?.find((x) => x.route === name);
}

function routeSkip(rt: RouteFigures | undefined, name: string): string {
  if (!rt) return `route ${name} not run`;
  return rt.skipped ?? rt.error ?? `route ${name} ${rt.status}`;
}

function sidecarEntries<T>(rec: Record<string, T>): [string, T][] {
  return Object.entries(rec).filter(([k]) => k.includes('sidecar'));
}

const CHECKS: readonly Check[] = [
  {
    target: 'sidecar CPU per 1000 req/s (each sidecar)',
    goal: '≤ 0.15 vCPU',
    suite: 'dataplane',
    direction: 'le',
    goalValue: 0.15,
    unit: 'vCPU',
    anchors: [{ name: 'Envoy', value: 0.2 }],
    measure: (r) => {
      const rt = route(r, 'tracemesh');
      if (!rt || rt.status !== 'ok' || isNa(rt.latency)) return { na: rt && rt.status === 'ok' && isNa(rt.latency) ? rt.latency.na : routeSkip(rt, 'tracemesh') };
      const procs = sidecarEntries(rt.latency.processes);
      if (!procs.length) return { na: 'no sidecar process measured' };
      const worst = procs.reduce((a, b) => (b[1].cpuSecondsPer1000Requests > a[1].cpuSecondsPer1000Requests ? b : a));
      return { value: worst[1].cpuSecondsPer1000Requests, note: `worst of ${procs.map(([k, v]) => `${k} ${v.cpuSecondsPer1000Requests}`).join(', ')}; open loop at ${rt.latency.openLoop.rate} req/s, 100 % sampling` };
    },
  },
  {
    target: 'sidecar memory (peak RSS, each sidecar)',
    goal: '≤ 50 MB',
    suite: 'dataplane',
    direction: 'le',
    goalValue: 50,
    unit: 'MB',
    anchors: [
      { name: 'Envoy', value: 60 },
      { name: 'Linkerd proxy', value: 20 },
    ],
    measure: (r) => {
      const rt = route(r, 'tracemesh');
      if (!rt || rt.status !== 'ok') return { na: routeSkip(rt, 'tracemesh') };
      const procs = sidecarEntries(rt.memoryMB);
      if (!procs.length) return { na: 'no sidecar process measured' };
      const worst = procs.reduce((a, b) => (b[1].peak > a[1].peak ? b : a));
      return { value: worst[1].peak, note: `VmHWM after all loads; ${procs.map(([k, v]) => `${k} ${v.peak}`).join(', ')}` };
    },
  },
  ...(['p90', 'p99'] as const).map(
    (p): Check => ({
      target: `added latency, sidecar pair, ${p} at the open-loop rate`,
      goal: p === 'p90' ? '≤ 0.25 ms' : '≤ 0.5 ms',
      suite: 'dataplane',
      direction: 'le',
      goalValue: p === 'p90' ? 0.25 : 0.5,
      unit: 'ms',
      anchors: [{ name: 'Istio pair', value: p === 'p90' ? 0.23 : 0.3 }],
      measure: (r) => {
        const rt = route(r, 'tracemesh');
        if (!rt || rt.status !== 'ok' || isNa(rt.latency)) return { na: rt && rt.status === 'ok' && isNa(rt.latency) ? rt.latency.na : routeSkip(rt, 'tracemesh') };
        if (!rt.latency.addedMs) return { na: 'direct route not measured' };
        const ol = rt.latency.openLoop;
        const direct = route(r, 'direct');
        const directLag = direct && !isNa(direct.latency) ? direct.latency.openLoop.sendLagMs[p] : 0;
        const lag = Math.max(ol.sendLagMs[p], directLag);
        const goal = p === 'p90' ? 0.25 : 0.5;
        const caveat = ol.saturated
          ? `the route could not hold ${ol.rate} req/s`
          : lag > goal / 2
            ? `the load generator's own send lag ${p} (${lag.toFixed(3)} ms) is above half the goal: too noisy to judge; rerun on a quiet machine`
            : undefined;
        return {
          value: rt.latency.addedMs[p],
          note: `route ${ol.latencyMs[p].toFixed(3)} ms − direct; ${ol.rate} req/s; generator send lag ${p} ${ol.sendLagMs[p].toFixed(3)} ms`,
          ...(caveat ? { caveat } : {}),
        };
      },
    }),
  ),
  {
    target: 'throughput vs haproxy pair (wrk, HTTP/1.1)',
    goal: '≥ 50 %',
    suite: 'dataplane',
    direction: 'ge',
    goalValue: 0.5,
    unit: '×',
    anchors: [],
    measure: (r) => {
      const rt = route(r, 'tracemesh');
      if (!rt || rt.status !== 'ok' || isNa(rt.throughput)) return { na: rt && rt.status === 'ok' && isNa(rt.throughput) ? rt.throughput.na : routeSkip(rt, 'tracemesh') };
      const hp = route(r, 'haproxy');
      if (rt.throughput.ratioToHaproxy === undefined || !hp || isNa(hp.throughput)) return { na: `haproxy route: ${routeSkip(hp, 'haproxy')}` };
      return { value: rt.throughput.ratioToHaproxy, note: `${Math.round(rt.throughput.wrk.requestsPerSecond)} vs ${Math.round(hp.throughput.wrk.requestsPerSecond)} req/s at ${rt.throughput.wrk.connections} connections` };
    },
  },
  {
    target: 'collector ingest per collector core',
    goal: '≥ 150k spans/s',
    suite: 'ingest',
    direction: 'ge',
    goalValue: 150_000,
    unit: 'spans/s',
    anchors: [
      { name: 'OTel collector', value: 137_000 },
      { name: 'Jaeger v2 on ClickHouse, end to end', value: 52_000, compare: 'endToEnd' },
    ],
    measure: (r) => {
      const f = r.figures as unknown as Partial<IngestFigures>;
      if (!f.collector || !f.endToEnd) return { na: r.skipped.join('; ') || 'not measured' };
      return {
        value: f.collector.spansPerCpuSecond,
        note: `end to end ${Math.round(f.endToEnd.spansPerSecond)} spans/s (compared with Jaeger's end-to-end figure); collector ${f.collector.cpuSecondsPer100kSpans} CPU-s per 100k spans`,
        other: { endToEnd: f.endToEnd.spansPerSecond },
      };
    },
  },
  {
    target: 'disk per span (all tables, compressed)',
    goal: '≤ 60 B',
    suite: 'ingest',
    direction: 'le',
    goalValue: 60,
    unit: 'B',
    anchors: [{ name: 'Jaeger on ClickHouse', value: 75 }],
    measure: (r) => {
      const f = r.figures as unknown as Partial<IngestFigures>;
      if (!f.disk) return { na: r.skipped.join('; ') || 'not measured' };
      return { value: f.disk.bytesPerSpanAllTables, note: `spans table only ${f.disk.bytesPerSpanSpansOnly} B; after OPTIMIZE FINAL: ${f.disk.afterOptimize?.bytesPerSpanAllTables ?? 'n/a'} B` };
    },
  },
  {
    target: 'trace by id p99 at 10M spans',
    goal: '≤ 50 ms',
    suite: 'query',
    direction: 'le',
    goalValue: 50,
    unit: 'ms',
    anchors: [{ name: 'Jaeger on ClickHouse', value: 100 }],
    measure: (r) => {
      const f = r.figures as unknown as Partial<QueryFigures>;
      if (!f.traceById || isNa(f.traceById)) return { na: f.traceById && isNa(f.traceById) ? f.traceById.na : r.skipped.join('; ') || 'not measured' };
      const scale = f.load?.spans ?? 0;
      return {
        value: f.traceById.latencyMs.p99,
        note: `at ${scale.toLocaleString('en')} spans`,
        ...(scale < 10_000_000 ? { caveat: `measured at ${scale.toLocaleString('en')} spans, not 10M` } : {}),
      };
    },
  },
  {
    target: "outcome analyser spans per CPU-second ÷ the collector's ingest spans/s (same run)",
    goal: '≥ 1.0× (keeps up on one core)',
    suite: 'outcomes',
    direction: 'ge',
    goalValue: 1,
    unit: '×',
    anchors: [],
    measure: (r) => {
      const a = (r.figures as OutcomesFigures).analyse;
      const v = a ? Object.entries(a.analyserSpansPerCpuSecond).find(([k]) => k.startsWith('RowBinary')) : undefined;
      if (!a || !v) return { na: r.skipped.join('; ') || 'analyse part not run' };
      const per = a.collectorMeasured?.['wal']?.spansPerCollectorCpuSecond;
      return {
        value: Math.round((v[1] / a.collectorSpansPerSecond) * 100) / 100,
        note: `analyser ${v[1]} spans/CPU-s; collector ${a.collectorSpansPerSecond} spans/s (${a.collectorSource === 'measured' ? `measured in this run, ${per ?? '?'} spans per collector CPU-s` : 'documented'}); load ${a.loadAverage.join(' ')}`,
        ...(a.collectorSource === 'measured' ? {} : { caveat: 'collector rate not measured in this run' }),
      };
    },
  },
  {
    target: '/api/v1/paths p99, 1 h window, 1M outcomes (10M spans)',
    goal: '≤ 500 ms',
    suite: 'outcomes',
    direction: 'le',
    goalValue: 500,
    unit: 'ms',
    anchors: [],
    measure: (r) => {
      const q = (r.figures as OutcomesFigures).query;
      const p = q ? Object.entries(q.requests).find(([k]) => k.startsWith('/api/v1/paths (')) : undefined;
      if (!q || !p) return { na: r.skipped.join('; ') || 'query part not run' };
      const worst = Object.entries(q.requests).reduce((a, b) => (b[1].p99Ms > a[1].p99Ms ? b : a));
      return {
        value: p[1].p99Ms,
        note: `load ${p[1].loadAverage.join(' ')}; slowest kind ${worst[0]} p99 ${worst[1].p99Ms} ms`,
        ...(q.outcomes < 1_000_000 ? { caveat: `measured at ${q.outcomes} outcomes, not 1M` } : {}),
      };
    },
  },
  {
    target: 'failure to alert in Alertmanager, default rules',
    goal: '≤ 60 s',
    suite: 'outcomes',
    direction: 'le',
    goalValue: 60,
    unit: 's',
    anchors: [],
    measure: (r) => {
      const a = (r.figures as OutcomesFigures).alert;
      const seen = a?.secondsToAlert.filter((x): x is number => x !== null) ?? [];
      if (!a) return { na: r.skipped.join('; ') || 'alert part not run' };
      if (seen.length < a.secondsToAlert.length) return { value: Number.POSITIVE_INFINITY, note: `${a.secondsToAlert.length - seen.length} run(s) saw no alert within 180 s` };
      return { value: Math.max(...seen), note: `worst of ${seen.join(', ')} s; load ${a.loadAverage.join(' ')}` };
    },
  },
];

/** A caveat when the machine was already busy as the suite started (shared machines). */
function busy(r: SuiteResult): string | undefined {
  const load = r.machine.loadAverageAtStart[0] ?? 0;
  return load > r.machine.cpus * 0.5 ? `the machine was busy when the suite started (load average ${load} on ${r.machine.cpus} CPUs)` : undefined;
}

function evaluate(results: Results): TargetRow[] {
  return CHECKS.map((c) => {
    const r = results[c.suite];
    const base = { target: c.target, goal: c.goal };
    const anchorsText = (v?: number, other: Record<string, number> = {}): string =>
      c.anchors
        .map((a) => {
          const mine = a.compare !== undefined ? other[a.compare] : v;
          return `${a.name} ${fmt(a.value, c.unit === '×' ? '' : c.unit)}${mine !== undefined ? ` (×${(mine / a.value).toFixed(2)})` : ''}`;
        })
        .join('; ') || '—';
    if (!r) return { ...base, measured: '—', verdict: 'n/a', ratioToGoal: '—', anchor: anchorsText(), note: `${c.suite} suite not run yet` };
    const m = c.measure(r);
    if ('na' in m) return { ...base, measured: '—', verdict: 'n/a', ratioToGoal: '—', anchor: anchorsText(), note: `skipped: ${m.na}` };
    const pass = c.direction === 'le' ? m.value <= c.goalValue : m.value >= c.goalValue;
    const caveats = [m.caveat, busy(r)].filter((x): x is string => x !== undefined);
    const verdict: Verdict = caveats.length ? (pass ? 'PASS*' : 'FAIL*') : pass ? 'PASS' : 'FAIL';
    const measured = c.unit === '×' ? `${(m.value * 100).toFixed(0)} %` : fmt(m.value, c.unit);
    return {
      ...base,
      measured,
      verdict,
      ratioToGoal: `×${(m.value / c.goalValue).toFixed(2)}`,
      anchor: anchorsText(m.value, m.other),
      note: [...caveats.map((x) => `* ${x}`), m.note, `${c.suite} ${r.finishedAt ?? r.startedAt}`].filter(Boolean).join('; '),
    };
  });
}

function table(head: readonly string[], rawRows: readonly (readonly string[])[]): { md: string; text: string } {
  // Cells are one line each; an error's first line is enough here (the JSON has all of it).
  const rows = rawRows.map((r) => r.map((c) => (c.split('\n')[0] ?? '').trim()));
  const md = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map((c) => c.replace(/([|*])/g, '\\$1')).join(' | ')} |`)].join('\n');
  const widths = head.map((h, i) => Math.min(60, Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length))));
  const line = (r: readonly string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const text = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
  return { md, text };
}

const n = (x: number | undefined, d = 0): string => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(d));

const isProxy = (name: string): boolean => /sidecar|haproxy|relay/.test(name);
const shortName = (name: string): string => name.replace(/-(sidecar|haproxy|relay)$/, '');

function dataplaneTable(r: SuiteResult): { md: string; text: string } {
  const f = r.figures as unknown as DataplaneFigures;
  const rows = (f.routes ?? []).map((rt) => {
    if (rt.status !== 'ok') return [rt.route, `${rt.status}: ${rt.skipped ?? rt.error ?? ''}`.slice(0, 60), '', '', '', '', '', '', '', ''];
    const tp = isNa(rt.throughput) ? undefined : rt.throughput;
    const lat = isNa(rt.latency) ? undefined : rt.latency;
    const cpu = lat ? Object.entries(lat.processes).filter(([k]) => isProxy(k)).map(([k, v]) => `${shortName(k)} ${v.cpuSecondsPer1000Requests.toFixed(3)}`).join(', ') : '';
    const mem = Object.entries(rt.memoryMB).filter(([k]) => isProxy(k)).map(([k, v]) => `${shortName(k)} ${v.peak.toFixed(0)}`).join(', ');
    return [
      rt.route,
      tp ? n(tp.wrk.requestsPerSecond) : 'n/a',
      tp?.ratioToDirect !== undefined ? tp.ratioToDirect.toFixed(2) : '—',
      tp?.ratioToHaproxy !== undefined ? tp.ratioToHaproxy.toFixed(2) : '—',
      lat ? `${n(lat.openLoop.latencyMs.p50, 3)} / ${n(lat.openLoop.latencyMs.p90, 3)} / ${n(lat.openLoop.latencyMs.p99, 3)}` : 'n/a',
      lat?.addedMs ? `${n(lat.addedMs.p50, 3)} / ${n(lat.addedMs.p90, 3)} / ${n(lat.addedMs.p99, 3)}` : '—',
      cpu || '—',
      mem || '—',
      isNa(rt.h2) ? 'n/a' : n(rt.h2.requestsPerSecond),
      isNa(rt.grpc) ? 'n/a' : n(rt.grpc.callsPerSecond),
    ];
  });
  return table(['route', 'wrk req/s', '×direct', '×haproxy', 'latency p50/p90/p99 ms', 'added p50/p90/p99 ms', 'CPU-s per 1000 req', 'peak RSS MB', 'h2 req/s', 'gRPC calls/s'], rows);
}

/** Per-route notes, telemetry processes' cost and the reasons behind every n/a. */
function routeNotes(r: SuiteResult): string[] {
  const f = r.figures as unknown as DataplaneFigures;
  const out: string[] = [];
  for (const rt of f.routes ?? []) {
    if (rt.status !== 'ok') continue;
    for (const note of rt.notes) out.push(`${rt.route}: ${note}`);
    const lat = isNa(rt.latency) ? undefined : rt.latency;
    const telemetry = lat ? Object.entries(lat.processes).filter(([k]) => !isProxy(k)) : [];
    if (telemetry.length) {
      out.push(`${rt.route}: telemetry processes at the open-loop rate: ${telemetry.map(([k, v]) => `${k} ${v.cpuSecondsPer1000Requests.toFixed(3)} CPU-s/1000 req, ${rt.memoryMB[k]?.peak.toFixed(0) ?? '?'} MB`).join('; ')}`);
    }
    if (Object.keys(rt.extra).length) out.push(`${rt.route}: ${JSON.stringify(rt.extra)}`);
    if (lat) out.push(`${rt.route}: load generator send lag p50/p99 ${lat.openLoop.sendLagMs.p50.toFixed(3)} / ${lat.openLoop.sendLagMs.p99.toFixed(3)} ms (its own error bar)`);
    if (isNa(rt.h2)) out.push(`${rt.route}: h2 n/a: ${rt.h2.na}`);
    if (isNa(rt.grpc)) out.push(`${rt.route}: gRPC n/a: ${rt.grpc.na}`);
    if (isNa(rt.throughput)) out.push(`${rt.route}: wrk n/a: ${rt.throughput.na}`);
    if (isNa(rt.latency)) out.push(`${rt.route}: open loop n/a: ${rt.latency.na}`);
  }
  return out;
}

function ingestTable(r: SuiteResult): { md: string; text: string } | undefined {
  const f = r.figures as unknown as Partial<IngestFigures>;
  if (!f.endToEnd) return undefined;
  const rows: string[][] = [
    ['spans sent / stored', `${f.endToEnd.spansSent} / ${f.endToEnd.spansStored}`],
    ['end-to-end spans/s', n(f.endToEnd.spansPerSecond)],
    ['collector CPU-s per 100k spans', n(f.collector?.cpuSecondsPer100kSpans, 3)],
    ['spans per collector CPU-second', n(f.collector?.spansPerCpuSecond)],
    ['collector peak RSS MB', n(f.collector?.peakRssMB)],
    ['ClickHouse CPU-s per 100k spans', n(f.clickhouse?.cpuSecondsPer100kSpans, 3)],
    ['bytes/span, spans table', n(f.disk?.bytesPerSpanSpansOnly, 1)],
    ['bytes/span, all tables', n(f.disk?.bytesPerSpanAllTables, 1)],
  ];
  return table(['ingest', 'value'], rows);
}

function queryTable(r: SuiteResult): { md: string; text: string } | undefined {
  const f = r.figures as unknown as Partial<QueryFigures>;
  if (!f.load) return undefined;
  const row = (name: string, q: QueryFigures['traceById'] | undefined): string[] =>
    !q
      ? [name, '—', '', '', '', '', '']
      : isNa(q)
        ? [name, `n/a: ${q.na}`, '', '', '', '', '']
        : [
            name,
            String(q.latencyMs.count),
            n(q.latencyMs.p50, 2),
            n(q.latencyMs.p99, 2),
            n(q.latencyMs.max, 2),
            n(q.clickhouseCpuMsPerRequest, 1),
            // Absent from results written before it was measured.
            n(q.statementsPerRequest as number | undefined, 1),
          ];
  return table(
    [
      `query (${f.load.spans.toLocaleString('en')} spans, ${f.load.traces.toLocaleString('en')} traces, loaded in ${n(f.load.seconds, 0)} s)`,
      'requests',
      'p50 ms',
      'p99 ms',
      'max ms',
      'ClickHouse CPU ms/req',
      'statements/req',
    ],
    [row('trace by id', f.traceById), row('Jaeger search', f.search), row('path', f.path)],
  );
}

function outcomesTable(r: SuiteResult): { md: string; text: string } | undefined {
  const f = r.figures as OutcomesFigures;
  const rows: string[][] = [];
  if (f.analyse) {
    rows.push(['analysis alone (analyzeTrace)', `${f.analyse.analysisSpansPerCpuSecond} spans/CPU-s`, '']);
    for (const [k, v] of Object.entries(f.analyse.readBackSpansPerCpuSecond)) rows.push([`span read-back: ${k}`, `${v} spans/CPU-s`, '']);
    for (const [k, v] of Object.entries(f.analyse.collectorMeasured ?? {})) rows.push([`collector ingest (${k})`, `${v.spansPerSecond} spans/s`, `${v.spansPerCollectorCpuSecond} spans per collector CPU-s; load ${v.loadAverage.join(' ')}`]);
    for (const [k, v] of Object.entries(f.analyse.analyserSpansPerCpuSecond)) rows.push([`analyser end to end: ${k}`, `${v} spans/CPU-s`, `${f.analyse.analyserWallSeconds[k] ?? '?'} s wall; ${Math.round((v / f.analyse.collectorSpansPerSecond) * 100) / 100}× the collector's ${f.analyse.collectorSpansPerSecond} spans/s`]);
  }
  if (f.query) for (const [k, v] of Object.entries(f.query.requests)) rows.push([k, `p50 ${v.p50Ms} ms, p99 ${v.p99Ms} ms`, `${v.requests} requests at ${f.query.outcomes} outcomes; load ${v.loadAverage.join(' ')}`]);
  if (f.alert) rows.push(['failure to alert', f.alert.secondsToAlert.map((x) => (x === null ? 'none in 180 s' : `${x} s`)).join(', '), `load ${f.alert.loadAverage.join(' ')}`]);
  if (rows.length === 0) return undefined;
  return table(['outcomes', 'figure', 'note'], rows);
}

export function renderSummary(results: Results, thisRun: readonly SuiteName[]): { text: string; markdown: string } {
  const rows = evaluate(results);
  const t = table(
    ['target', 'goal', 'measured', 'verdict', 'vs goal', 'anchors (measured ÷ anchor)', 'note'],
    rows.map((r) => [r.target, r.goal, r.measured, r.verdict, r.ratioToGoal, r.anchor, r.note]),
  );
  const md: string[] = ['# tracemesh benchmark summary', ''];
  const text: string[] = ['== summary: targets =='];
  const machine = Object.values(results).find((r) => r)?.machine;
  if (machine) {
    const m = `Machine: ${machine.cpus} × ${machine.cpuModel}, ${(machine.memoryBytes / 2 ** 30).toFixed(0)} GiB, Linux ${machine.kernel}, Node ${machine.node}${machine.clickhouseVersion ? `, ClickHouse ${machine.clickhouseVersion}` : ''}; commit ${machine.gitCommit?.slice(0, 12) ?? '?'}${machine.gitDirty ? ' (dirty)' : ''}; load average at start ${machine.loadAverageAtStart.join(' ')}.`;
    md.push(m, '');
    text.push(m);
  }
  md.push(`Suites in this run: ${thisRun.join(', ') || 'none'}; other rows come from earlier results files in the same directory.`, '', '## Targets', '', t.md, '', 'A starred verdict (PASS\\*, FAIL\\*) is indicative only; its note says why.', '');
  text.push(t.text);
  for (const s of SUITES) {
    const r = results[s];
    if (!r) continue;
    const tb = s === 'dataplane' ? dataplaneTable(r) : s === 'ingest' ? ingestTable(r) : s === 'outcomes' ? outcomesTable(r) : queryTable(r);
    const head = `${s} (${r.status}, ${r.finishedAt ?? r.startedAt}${thisRun.includes(s) ? ', this run' : ', earlier run'})`;
    md.push(`## ${head}`, '');
    text.push('', `== ${head} ==`);
    if (tb) {
      md.push(tb.md, '');
      text.push(tb.text);
    }
    const extra = [...r.skipped.map((x) => `skipped: ${x}`), ...(s === 'dataplane' ? routeNotes(r) : []), ...r.notes].map((x) => x.split('\n')[0] ?? '');
    for (const x of extra) {
      md.push(`- ${x.replace(/\*/g, '\\*')}`);
      text.push(`  - ${x}`);
    }
    md.push('');
  }
  return { text: text.join('\n'), markdown: md.join('\n') + '\n' };
}
