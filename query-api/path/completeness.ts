// Whether a trace may still be growing. Spans reach storage seconds after they end (batching
// in the SDKs, the sidecars and the collector), so a path asked for right after a failure can
// show only the client's side. Two signs: a span ended within the quiet period (the same
// period the outcomes component waits before it analyses a trace), and hops whose peer has not
// reported (a sidecar's call with no server span and no sign the mesh never delivered it; a
// span whose parent is missing).

import { ATTR } from '../../common/semconv.ts';
import { isoNano, spanAttr } from '../attributes.ts';
import type { HopGraph } from './hops.ts';
import type { Completeness, UnreportedPeer } from './model.ts';
import type { SpanTree } from './span-tree.ts';

/** Default quiet period: a trace with no span ending in the last 10 s is taken as complete. */
export const DEFAULT_QUIET_PERIOD_NANO = 10_000_000_000n;

export function assessCompleteness(tree: SpanTree, graph: HopGraph, nowUnixNano: bigint, quietPeriodNano: bigint): Completeness {
  // Raw end times: the clock of the pod that wrote the span, the one its exporter runs on.
  let lastEnd = 0n;
  for (const s of tree.spans) {
    const end = s.record.startTimeUnixNano + s.record.durationNano;
    if (end > lastEnd) lastEnd = end;
  }
  const sinceLast = nowUnixNano - lastEnd;
  const recent = sinceLast < quietPeriodNano;

  const peers: UnreportedPeer[] = [];
  for (const h of graph.hops) {
    if (h.kind === 'client' && !h.unreached) {
      const inner = h.callChain[h.callChain.length - 1];
      // Only a sidecar's call is known to lead to a pod that reports; an app's call out of
      // the mesh (a database, an external API) never gets a server span.
      if (inner && spanAttr(inner.record, ATTR.meshDirection) === 'outbound') {
        peers.push({ hopId: h.id, service: h.location.service, pod: h.location.pod, reason: 'the called pod has not reported its side of the call' });
      }
    }
    const entry = h.entry;
    if (entry?.missingParent) {
      peers.push({ hopId: h.id, service: h.location.service, pod: h.location.pod, reason: `the caller's span ${entry.missingParent} has not been reported` });
    }
  }

  const reasons: string[] = [];
  if (recent) reasons.push(`a span ended ${Number(sinceLast / 1_000_000n) / 1000} s ago, within the ${Number(quietPeriodNano / 1_000_000n) / 1000} s quiet period: more spans may still arrive`);
  if (peers.length > 0) reasons.push(`${peers.length} hop${peers.length === 1 ? '' : 's'} whose peer has not reported (${peers.slice(0, 3).map((p) => p.pod ?? p.service).join(', ')}${peers.length > 3 ? ', …' : ''})`);
  return {
    mayBeIncomplete: reasons.length > 0,
    spansMayStillArrive: recent,
    quietPeriodMs: Number(quietPeriodNano / 1_000_000n),
    lastSpanEndUnixNano: lastEnd.toString(),
    lastSpanEnd: isoNano(lastEnd),
    unreportedPeers: peers,
    reasons,
  };
}
