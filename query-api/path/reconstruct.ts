// Rebuilds the path a request took across pods from the spans of its trace: span tree → hops
// → critical path → root cause, rendered as the `TracePath` JSON the API serves.

import { ATTR } from '../../common/semconv.ts';
import type { SpanRecord } from '../../storage/model.ts';
import { intAttr, isoNano, nanoToMs, spanAttr } from '../attributes.ts';
import { assessCompleteness, DEFAULT_QUIET_PERIOD_NANO } from './completeness.ts';
import { computeCriticalPath, type SpanCriticalPath } from './critical-path.ts';
import { analyzeLatency } from './latency.ts';
import { appSpansOf, buildHops, spanFailed, type HopGraph, type HopNode } from './hops.ts';
import type { CriticalPath, HopCall, HopPeer, HopSpan, Location, PathHop, TracePath } from './model.ts';
import { analyzeFailure, failureReport } from './root-cause.ts';
import { buildSpanTree, type TreeSpan } from './span-tree.ts';

export interface ReconstructOptions {
  /** Spans beyond this are left out of the path (with a warning). Default 10 000. */
  readonly maxSpans?: number;
  /** Undo clock skew between pods (default true); skew is reported either way. */
  readonly adjustClockSkew?: boolean;
  /** Hops nested deeper than this are left out of `hops` (with a warning). Default 256. */
  readonly maxHopDepth?: number;
  /** App spans listed per hop. Default 500. */
  readonly maxAppSpansPerHop?: number;
  /** Now, in Unix nanoseconds, for the completeness check. Default the wall clock. */
  readonly nowUnixNano?: bigint;
  /** A trace with a span that ended less than this before now may still grow. Default 10 s. */
  readonly quietPeriodNano?: bigint;
}

export const DEFAULT_MAX_PATH_SPANS = 10_000;

function locationOf(s: TreeSpan): Location {
  return { service: s.location.service, pod: s.location.pod, node: s.location.node, namespace: s.location.namespace };
}

function endpointOf(r: SpanRecord): string | null {
  const ep = spanAttr(r, ATTR.meshEndpoint);
  if (ep) return ep;
  const addr = spanAttr(r, ATTR.serverAddress);
  if (!addr) return null;
  const port = spanAttr(r, ATTR.serverPort);
  return port ? `${addr}:${port}` : addr;
}

function callOf(h: HopNode): HopCall | null {
  const inner = h.callChain[h.callChain.length - 1];
  const outer = h.callChain[0];
  if (!inner || !outer) return null;
  const r = inner.record;
  let code: string | null = null;
  for (let i = h.callChain.length - 1; i >= 0 && code === null; i--) code = spanAttr(h.callChain[i]!.record, ATTR.meshErrorCode) ?? null;
  return {
    clientSpanIds: h.callChain.map((c) => c.record.spanId),
    caller: locationOf(outer),
    endpoint: endpointOf(r),
    destinationService: spanAttr(r, ATTR.meshDestinationService) ?? null,
    targetPod: spanAttr(r, ATTR.meshEndpointPod) ?? null,
    targetNode: spanAttr(r, ATTR.meshEndpointNode) ?? null,
    startUnixNano: inner.start.toString(),
    durationNano: r.durationNano.toString(),
    durationMs: nanoToMs(r.durationNano),
    status: spanFailed(r) ? 'error' : 'ok',
    httpStatus: intAttr(r, ATTR.httpResponseStatusCode) ?? null,
    meshErrorCode: code,
    retryAttempt: intAttr(r, ATTR.meshRetryAttempt) ?? null,
  };
}

function peerOf(h: HopNode): HopPeer | null {
  const caller = h.parent;
  if (h.kind === 'client') {
    return caller ? { service: caller.location.service, pod: caller.location.pod, address: null, identity: null } : null;
  }
  const entry = h.entry!.record;
  const address = spanAttr(entry, ATTR.networkPeerAddress) ?? null;
  const identity = spanAttr(entry, ATTR.meshPeerIdentity) ?? null;
  const called = h.callChain.length > 0 && caller !== undefined;
  if (!called && address === null && identity === null) return null;
  return {
    service: called ? caller.location.service : null,
    pod: called ? caller.location.pod : null,
    address,
    identity,
  };
}

function hopSpan(s: TreeSpan): HopSpan {
  const r = s.record;
  return {
    spanId: r.spanId,
    parentSpanId: r.parentSpanId,
    name: r.name,
    kind: r.kind,
    startUnixNano: s.start.toString(),
    durationNano: r.durationNano.toString(),
    durationMs: nanoToMs(r.durationNano),
    status: spanFailed(r) ? 'error' : 'ok',
    statusMessage: r.statusMessage || null,
  };
}

interface RenderLimits {
  readonly maxDepth: number;
  readonly maxAppSpans: number;
  readonly warnings: string[];
}

function render(h: HopNode, graph: HopGraph, depth: number, limits: RenderLimits): PathHop {
  const app = appSpansOf(h, graph);
  if (app.length > limits.maxAppSpans) {
    limits.warnings.push(`hop ${h.id} (${h.location.pod ?? h.location.service}) has ${app.length} app spans; only the first ${limits.maxAppSpans} are listed`);
  }
  let children: PathHop[] = [];
  if (h.children.length > 0) {
    if (depth + 1 >= limits.maxDepth) {
      limits.warnings.push(`hops nested deeper than ${limits.maxDepth} levels below hop ${h.id} were left out of "hops"`);
    } else {
      children = h.children.map((c) => render(c, graph, depth + 1, limits));
    }
  }
  const entry = h.entry;
  const timing = entry ?? h.callChain[h.callChain.length - 1]!;
  return {
    id: h.id,
    kind: h.kind,
    ...h.location,
    operation: timing.record.name,
    startUnixNano: h.start.toString(),
    startTime: isoNano(h.start),
    durationNano: (h.end - h.start).toString(),
    durationMs: nanoToMs(h.end - h.start),
    status: h.error ? 'error' : 'ok',
    httpStatus: h.httpStatus,
    meshErrorCode: h.meshErrorCode,
    message: h.message,
    serverObserved: h.kind !== 'client',
    unreached: h.unreached,
    onFailurePath: h.onFailurePath,
    onCriticalPath: h.onCriticalPath,
    missingParentSpanId: entry?.missingParent ?? null,
    clockSkewAdjustmentNano: timing.skew.toString(),
    call: callOf(h),
    peer: peerOf(h),
    spanIds: {
      entry: entry?.record.spanId ?? null,
      client: h.callChain.map((c) => c.record.spanId),
      app: app.map((s) => s.record.spanId),
    },
    appSpans: app.slice(0, limits.maxAppSpans).map(hopSpan),
    children,
  };
}

function criticalPathOf(graph: HopGraph, cp: SpanCriticalPath): CriticalPath {
  const hopIds: string[] = [];
  const seen = new Set<HopNode>();
  for (const s of cp.spans) {
    const h = graph.hopOfSpan.get(s);
    if (h && !seen.has(h)) {
      seen.add(h);
      h.onCriticalPath = true;
      hopIds.push(h.id);
    }
  }
  return {
    hopIds,
    spanIds: cp.spans.map((s) => s.record.spanId),
    segments: cp.segments.map((seg) => ({
      spanId: seg.span.record.spanId,
      hopId: graph.hopOfSpan.get(seg.span)?.id ?? '',
      startUnixNano: seg.start.toString(),
      endUnixNano: seg.end.toString(),
      durationNano: (seg.end - seg.start).toString(),
    })),
  };
}

/** The path of one trace. `spans` must be non-empty (an unknown trace is the caller's 404). */
export function reconstructPath(traceId: string, spans: readonly SpanRecord[], options: ReconstructOptions = {}): TracePath {
  const tree = buildSpanTree(spans, {
    maxSpans: options.maxSpans ?? DEFAULT_MAX_PATH_SPANS,
    adjustClockSkew: options.adjustClockSkew ?? true,
  });
  const graph = buildHops(tree);
  const spanPath = computeCriticalPath(tree.root);
  const criticalPath = criticalPathOf(graph, spanPath);
  const failure = analyzeFailure(graph);
  const latencyRootCause = analyzeLatency(graph, spanPath);
  const completeness = assessCompleteness(tree, graph, options.nowUnixNano ?? BigInt(Date.now()) * 1_000_000n, options.quietPeriodNano ?? DEFAULT_QUIET_PERIOD_NANO);

  const warnings = [...tree.warnings];
  const hops = [render(graph.root, graph, 0, { maxDepth: options.maxHopDepth ?? 256, maxAppSpans: options.maxAppSpansPerHop ?? 500, warnings })];

  let start = tree.root.start;
  let end = tree.root.end;
  for (const s of tree.spans) {
    if (s.start < start) start = s.start;
    if (s.end > end) end = s.end;
  }
  const services: string[] = [];
  for (const h of graph.hops) if (!services.includes(h.location.service)) services.push(h.location.service);

  const rootCause = failure.rootCause ? failureReport(failure.rootCause) : null;
  const recoveredErrors = failure.recovered.map(failureReport);
  let summary: string;
  if (rootCause) {
    summary = rootCause.summary;
  } else {
    summary = `the request succeeded: ${graph.hops.length} hop${graph.hops.length === 1 ? '' : 's'} across ${services.length} service${services.length === 1 ? '' : 's'} in ${nanoToMs(graph.root.end - graph.root.start)} ms`;
    if (latencyRootCause && graph.hops.length > 1) summary += `; ${latencyRootCause.summary}`;
    if (recoveredErrors.length > 0) {
      summary += `; ${recoveredErrors.length} failure${recoveredErrors.length === 1 ? ' was' : 's were'} recovered (first: ${recoveredErrors[0]!.summary})`;
    }
  }
  if (completeness.mayBeIncomplete) summary += `; the trace may be incomplete: ${completeness.reasons.join('; ')}`;
  return {
    traceId,
    status: graph.root.error ? 'error' : 'ok',
    startUnixNano: start.toString(),
    startTime: isoNano(start),
    durationNano: (end - start).toString(),
    durationMs: nanoToMs(end - start),
    spanCount: tree.spans.length,
    hopCount: graph.hops.length,
    services,
    hops,
    criticalPath,
    rootCause,
    latencyRootCause,
    completeness,
    additionalFailures: failure.additional.map(failureReport),
    recoveredErrors,
    summary,
    truncated: tree.truncated,
    warnings,
  };
}
