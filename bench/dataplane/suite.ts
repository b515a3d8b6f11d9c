// The data plane suite: one upstream, several routes to it, and for each route the same four
// measurements — wrk max throughput, open-loop latency at a fixed rate, h2load, gRPC unary —
// with CPU and peak memory read per proxy process from /proc.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startNode, waitForReadyLine, type Child } from '../lib/children.ts';
import { repoPath } from '../lib/components.ts';
import { runOpenLoop, type OpenLoopResult } from '../loadgen/open-loop.ts';
import { ProcWatch, round, sampleProc, type ProcUsage } from '../lib/procstat.ts';
import { isNa, na, type NotApplicable } from '../lib/results.ts';
import { runGrpcLoad, type GrpcLoadResult } from './grpc-load.ts';
import { runH2load, type H2loadResult } from './h2load.ts';
import { probeGrpc, probeH2 } from './probe.ts';
import type { RouteContext, RouteDefinition, RunningRoute } from './routes.ts';
import { runWrk, wrkStatusBreakdown, type WrkResult } from './wrk.ts';

export interface DataplaneParameters {
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly rate: number;
  readonly connections: number;
  readonly wrkThreads: number;
  readonly openLoopConnections: number;
  readonly h2Connections: number;
  readonly h2Streams: number;
  readonly grpcConcurrency: number;
}

export interface DataplaneTools {
  readonly wrk: string | undefined;
  readonly h2load: string | undefined;
}

export interface ProcessFigures extends ProcUsage {
  /** CPU seconds per 1000 requests; at a fixed rate of R req/s this equals vCPU per 1000 req/s. */
  readonly cpuSecondsPer1000Requests: number;
}

export interface ThroughputFigures {
  readonly wrk: WrkResult;
  readonly processes: Record<string, ProcessFigures>;
  ratioToDirect?: number;
  ratioToHaproxy?: number;
}

export interface LatencyFigures {
  readonly openLoop: OpenLoopResult;
  readonly processes: Record<string, ProcessFigures>;
  /** Route percentile − direct percentile, ms. */
  addedMs?: { p50: number; p90: number; p99: number; p999: number };
}

export interface RouteFigures {
  readonly route: string;
  readonly description: string;
  status: 'ok' | 'skipped' | 'failed';
  skipped?: string;
  error?: string;
  notes: string[];
  throughput: ThroughputFigures | NotApplicable;
  latency: LatencyFigures | NotApplicable;
  h2: (H2loadResult & { ratioToDirect?: number; ratioToHaproxy?: number }) | NotApplicable;
  grpc: (GrpcLoadResult & { ratioToDirect?: number; ratioToHaproxy?: number }) | NotApplicable;
  /** Peak (VmHWM) and final (VmRSS) resident memory per proxy process, MB (10^6 bytes). */
  memoryMB: Record<string, { peak: number; final: number }>;
  extra: Record<string, unknown>;
}

export interface DataplaneFigures {
  routes: RouteFigures[];
  upstream: { cpuSeconds: number; peakRssMB: number } | undefined;
}

const MB = 1e6;

function perRequest(usage: Record<string, ProcUsage>, requests: number): Record<string, ProcessFigures> {
  const out: Record<string, ProcessFigures> = {};
  for (const [name, u] of Object.entries(usage)) {
    out[name] = { ...u, cpuSecondsPer1000Requests: requests > 0 ? round((u.cpuSeconds / requests) * 1000, 4) : 0 };
  }
  return out;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function measureRoute(
  def: RouteDefinition,
  running: RunningRoute,
  p: DataplaneParameters,
  tools: DataplaneTools,
  say: (line: string) => void,
): Promise<RouteFigures> {
  const fig: RouteFigures = {
    route: def.name,
    description: def.description,
    status: 'ok',
    notes: [...running.notes],
    throughput: na('not measured'),
    latency: na('not measured'),
    h2: na('not measured'),
    grpc: na('not measured'),
    memoryMB: {},
    extra: {},
  };
  const watch = new ProcWatch(running.processes);

  // 1. Max throughput, closed loop, fixed connections.
  if (!tools.wrk) {
    fig.throughput = na('wrk not installed');
  } else {
    try {
      say(`  ${def.name}: wrk warm-up ${p.warmupMs} ms`);
      await runWrk({ wrk: tools.wrk, url: running.h1Url, headers: running.h1Headers, connections: p.connections, threads: p.wrkThreads, durationMs: Math.max(1000, p.warmupMs) });
      say(`  ${def.name}: wrk ${p.durationMs} ms, ${p.connections} connections`);
      watch.begin();
      const wrk = await runWrk({ wrk: tools.wrk, url: running.h1Url, headers: running.h1Headers, connections: p.connections, threads: p.wrkThreads, durationMs: p.durationMs });
      fig.throughput = { wrk, processes: perRequest(watch.end(), wrk.requests) };
      if (wrk.non2xx > 0 || wrk.socketErrors.read + wrk.socketErrors.connect + wrk.socketErrors.timeout > 0) {
        let detail = '';
        if (wrk.non2xx > 0) {
          const b = await wrkStatusBreakdown({ wrk: tools.wrk, url: running.h1Url, headers: running.h1Headers, connections: p.connections, threads: p.wrkThreads, durationMs: 1000 }).catch(() => undefined);
          if (b) {
            fig.extra['wrkStatusBreakdown'] = b;
            detail = ` (1 s rerun: ${JSON.stringify(b.statuses)}${b.sample ? `, first error body: ${b.sample.slice(0, 120)}` : ''})`;
          }
        }
        fig.notes.push(`wrk saw errors: ${wrk.non2xx} non-2xx, socket errors ${JSON.stringify(wrk.socketErrors)}${detail}; its req/s counts them`);
      }
    } catch (err) {
      fig.throughput = na(`wrk failed: ${errorText(err)}`);
    }
  }

  // 2. Latency at a fixed open-loop rate; CPU over the measured window only.
  try {
    say(`  ${def.name}: open loop ${p.rate} req/s for ${p.durationMs} ms (+${p.warmupMs} ms warm-up)`);
    let usage: Record<string, ProcUsage> = {};
    const result = await runOpenLoop(
      { url: running.h1Url, headers: running.h1Headers, rate: p.rate, durationMs: p.durationMs, warmupMs: p.warmupMs, connections: p.openLoopConnections },
      { onMeasureStart: () => watch.begin(), onMeasureEnd: () => (usage = watch.end()) },
    );
    fig.latency = { openLoop: result, processes: perRequest(usage, result.completed) };
    if (result.saturated) fig.notes.push(`open loop could not hold ${p.rate} req/s: ${result.dropped} dropped, ${result.errors} errors ${result.firstErrors.join('; ')}`);
  } catch (err) {
    fig.latency = na(`open-loop generator failed: ${errorText(err)}`);
  }

  // 3. HTTP/2 with h2load, after one probe request.
  const h2 = running.h2;
  if (isNa(h2)) fig.h2 = h2;
  else if (!tools.h2load) fig.h2 = na('h2load not installed (Debian package nghttp2-client)');
  else {
    const problem = await probeH2(h2.url, h2.headers);
    if (problem) fig.h2 = na(problem);
    else {
      try {
        say(`  ${def.name}: h2load ${p.durationMs} ms, ${p.h2Connections}×${p.h2Streams} streams`);
        const r = await runH2load({ h2load: tools.h2load, url: h2.url, headers: h2.headers, connections: p.h2Connections, streams: p.h2Streams, durationMs: p.durationMs, warmupMs: p.warmupMs });
        fig.h2 = r.succeeded === 0 ? na(`h2load: no request succeeded (${r.failed} failed, ${r.errored} errored)`) : r;
      } catch (err) {
        fig.h2 = na(`h2load failed: ${errorText(err)}`);
      }
    }
  }

  // 4. gRPC unary with grpc-js, after one probe call.
  const target = running.grpc;
  if (isNa(target)) fig.grpc = target;
  else {
    const problem = await probeGrpc(target.target, target.authority);
    if (problem) fig.grpc = na(problem);
    else {
      try {
        say(`  ${def.name}: gRPC unary ${p.durationMs} ms, ${p.grpcConcurrency} in flight`);
        const g = await runGrpcLoad({ ...target, concurrency: p.grpcConcurrency, durationMs: p.durationMs, warmupMs: p.warmupMs });
        fig.grpc = g.ok === 0 ? na(`gRPC: no call succeeded (${g.errors} errors: ${g.firstErrors.join('; ')})`) : g;
      } catch (err) {
        fig.grpc = na(`gRPC load failed: ${errorText(err)}`);
      }
    }
  }

  for (const [name, pid] of running.processes) {
    const s = sampleProc(pid);
    if (s) fig.memoryMB[name] = { peak: round(s.peakRssBytes / MB, 1), final: round(s.rssBytes / MB, 1) };
    else fig.notes.push(`${name} (pid ${pid}) had exited before the end of the measurements`);
  }
  if (running.collect) {
    try {
      fig.extra = { ...fig.extra, ...(await running.collect()) };
    } catch (err) {
      fig.extra = { error: errorText(err) };
    }
  }
  return fig;
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a !== undefined && b !== undefined && b > 0 ? round(a / b, 3) : undefined;
}

/** Fills in the comparisons with the direct and haproxy routes once all routes are measured. */
export function compareRoutes(routes: RouteFigures[]): void {
  const byName = new Map(routes.map((r) => [r.route, r]));
  const direct = byName.get('direct');
  const haproxy = byName.get('haproxy');
  const rps = (r: RouteFigures | undefined): number | undefined => (r && !isNa(r.throughput) ? r.throughput.wrk.requestsPerSecond : undefined);
  const h2 = (r: RouteFigures | undefined): number | undefined => (r && !isNa(r.h2) ? r.h2.requestsPerSecond : undefined);
  const grpc = (r: RouteFigures | undefined): number | undefined => (r && !isNa(r.grpc) ? r.grpc.callsPerSecond : undefined);
  for (const r of routes) {
    if (!isNa(r.throughput)) {
      const d = ratio(rps(r), rps(direct));
      const h = ratio(rps(r), rps(haproxy));
      if (d !== undefined) r.throughput.ratioToDirect = d;
      if (h !== undefined) r.throughput.ratioToHaproxy = h;
    }
    if (!isNa(r.h2)) {
      const d = ratio(h2(r), h2(direct));
      const h = ratio(h2(r), h2(haproxy));
      if (d !== undefined) r.h2.ratioToDirect = d;
      if (h !== undefined) r.h2.ratioToHaproxy = h;
    }
    if (!isNa(r.grpc)) {
      const d = ratio(grpc(r), grpc(direct));
      const h = ratio(grpc(r), grpc(haproxy));
      if (d !== undefined) r.grpc.ratioToDirect = d;
      if (h !== undefined) r.grpc.ratioToHaproxy = h;
    }
    if (!isNa(r.latency) && direct && !isNa(direct.latency)) {
      const a = r.latency.openLoop.latencyMs;
      const b = direct.latency.openLoop.latencyMs;
      r.latency.addedMs = {
        p50: round(a.p50 - b.p50, 4),
        p90: round(a.p90 - b.p90, 4),
        p99: round(a.p99 - b.p99, 4),
        p999: round(a.p999 - b.p999, 4),
      };
    }
  }
}

export interface DataplaneRun {
  readonly dir: string;
  readonly logDir: string;
  readonly parameters: DataplaneParameters;
  readonly tools: DataplaneTools;
  readonly routes: readonly RouteDefinition[];
  readonly say: (line: string) => void;
}

export async function runDataplane(run: DataplaneRun): Promise<DataplaneFigures> {
  mkdirSync(run.logDir, { recursive: true });
  const upstream: Child = startNode('upstream', repoPath('bench', 'dataplane', 'upstream.ts'), ['--body-bytes', '1024'], run.logDir);
  const ready = await waitForReadyLine(upstream);
  const upstreamPort = Number(ready['port']);
  run.say(`upstream (pid ${upstream.pid}) on 127.0.0.1:${upstreamPort}: 1 KiB responses, HTTP/1.1 + h2c + gRPC`);
  const routes: RouteFigures[] = [];
  let upstreamSample: ReturnType<typeof sampleProc>;
  try {
    for (const def of run.routes) {
      const skip = def.unavailable();
      const base = { route: def.name, description: def.description, notes: [], throughput: na('route skipped'), latency: na('route skipped'), h2: na('route skipped'), grpc: na('route skipped'), memoryMB: {}, extra: {} };
      if (skip) {
        run.say(`route ${def.name}: skipped: ${skip}`);
        routes.push({ ...base, status: 'skipped', skipped: skip });
        continue;
      }
      run.say(`route ${def.name}: ${def.description}`);
      const ctx: RouteContext = { upstreamPort, dir: join(run.dir, def.name), logDir: run.logDir, say: run.say };
      mkdirSync(ctx.dir, { recursive: true });
      let running: RunningRoute | undefined;
      try {
        running = await def.start(ctx);
        routes.push(await measureRoute(def, running, run.parameters, run.tools, run.say));
      } catch (err) {
        run.say(`route ${def.name}: failed: ${errorText(err)}`);
        routes.push({ ...base, status: 'failed', error: errorText(err) });
      } finally {
        await running?.stop();
      }
    }
  } finally {
    upstreamSample = sampleProc(upstream.pid);
    await upstream.stop();
  }
  compareRoutes(routes);
  const s = upstreamSample;
  return { routes, upstream: s ? { cpuSeconds: s.cpuSeconds, peakRssMB: round(s.peakRssBytes / MB, 1) } : undefined };
}
