// Names where a request's time went: the hop whose own time (its spans' share of the critical
// path, not the time it waited for its callees) dominates end-to-end latency. Jaeger draws the
// critical path; this reads it. Time a caller's CLIENT span spends around the callee's server
// span (network, queueing, the sidecars) is the callee's `callTime`, kept apart from its own.

import { nanoToMs } from '../attributes.ts';
import type { SpanCriticalPath } from './critical-path.ts';
import type { HopGraph, HopNode } from './hops.ts';
import type { LatencyHop, LatencyReport } from './model.ts';
import type { TreeSpan } from './span-tree.ts';

/** Hops listed in `LatencyReport.hops`, largest own time first. */
const MAX_LISTED = 5;

function where(h: HopNode): string {
  const { service, pod, node } = h.location;
  if (pod) return `${pod}${node ? ` on ${node}` : ''} (service ${service})`;
  return `service ${service}${node ? ` on ${node}` : ''}`;
}

function share(part: bigint, whole: bigint): number {
  if (whole <= 0n) return 0;
  return Math.round(Number((part * 10_000n) / whole)) / 10_000;
}

export function analyzeLatency(graph: HopGraph, cp: SpanCriticalPath): LatencyReport | null {
  const total = graph.root.end - graph.root.start;
  if (total <= 0n || cp.segments.length === 0) return null;
  // A CLIENT span that is some hop's call belongs, for latency, to the callee it waited on.
  const callee = new Map<TreeSpan, HopNode>();
  for (const h of graph.hops) for (const c of h.callChain) callee.set(c, h);

  const own = new Map<HopNode, bigint>();
  const call = new Map<HopNode, bigint>();
  const bySpan = new Map<HopNode, Map<TreeSpan, bigint>>();
  for (const seg of cp.segments) {
    const d = seg.end - seg.start;
    const target = callee.get(seg.span);
    if (target && target.kind !== 'client') {
      call.set(target, (call.get(target) ?? 0n) + d);
      continue;
    }
    // A call no server answered: all of its time is that client hop's own.
    const h = target ?? graph.hopOfSpan.get(seg.span);
    if (!h) continue;
    own.set(h, (own.get(h) ?? 0n) + d);
    let spans = bySpan.get(h);
    if (!spans) bySpan.set(h, (spans = new Map()));
    spans.set(seg.span, (spans.get(seg.span) ?? 0n) + d);
  }
  const ranked = [...own.entries()].sort((a, b) => (a[1] !== b[1] ? (a[1] > b[1] ? -1 : 1) : a[0].start < b[0].start ? -1 : 1));
  const top = ranked[0];
  if (!top) return null;
  const [hop, self] = top;

  const hops: LatencyHop[] = ranked.slice(0, MAX_LISTED).map(([h, t]) => ({
    hopId: h.id,
    service: h.location.service,
    pod: h.location.pod,
    node: h.location.node,
    namespace: h.location.namespace,
    selfTimeNano: t.toString(),
    selfTimeMs: nanoToMs(t),
    callTimeNano: (call.get(h) ?? 0n).toString(),
    share: share(t, total),
  }));

  // Within the hop, the span that holds most of its critical time: an app span ("SELECT …")
  // says more than the sidecar's entry span.
  let heaviest: TreeSpan | undefined;
  let heaviestTime = -1n;
  for (const [s, t] of bySpan.get(hop) ?? []) {
    if (t > heaviestTime) {
      heaviest = s;
      heaviestTime = t;
    }
  }
  const pct = Math.round(share(self, total) * 100);
  const inSpan = heaviest && heaviest !== hop.entry && heaviest.record.name !== (hop.entry?.record.name ?? '') ? ` (mostly in "${heaviest.record.name}")` : '';
  return {
    hopId: hop.id,
    service: hop.location.service,
    pod: hop.location.pod,
    node: hop.location.node,
    namespace: hop.location.namespace,
    selfTimeNano: self.toString(),
    selfTimeMs: nanoToMs(self),
    share: share(self, total),
    spanId: heaviest?.record.spanId ?? null,
    spanName: heaviest?.record.name ?? null,
    hops,
    summary: `${pct}% of the ${nanoToMs(total)} ms (${nanoToMs(self)} ms) was spent in ${where(hop)} itself${inSpan}, not in its calls`,
  };
}
