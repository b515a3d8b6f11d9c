// Turns a trace (Jaeger JSON), its path (hops, critical path, root cause) and its logs into
// the rows of the waterfall: one header row per hop (a unit of work in one pod on one node),
// in the order the request reached them, then that hop's spans by start time, each followed by
// its log records. Pure and linear-ish (one sort per hop), so 5,000 spans build in a few ms.

import type { FailureReport, JaegerKeyValue, JaegerSpan, JaegerTrace, PathHop, TraceLog, TracePath } from './types.ts';

export interface SpanInfo {
  readonly span: JaegerSpan;
  readonly service: string;
  readonly pod: string | null;
  readonly node: string | null;
  readonly kind: string;
  readonly error: boolean;
  readonly critical: boolean;
  readonly rootCause: boolean;
  readonly recovered: boolean;
  readonly processTags: readonly JaegerKeyValue[];
  readonly logs: readonly TraceLog[];
}

export type Row =
  | { readonly type: 'hop'; readonly hop: PathHop; readonly depth: number; readonly rootCause: boolean; readonly recovered: boolean }
  | { readonly type: 'span'; readonly info: SpanInfo; readonly depth: number }
  | { readonly type: 'log'; readonly log: TraceLog; readonly depth: number; readonly spanId: string | null }
  | { readonly type: 'group'; readonly label: string };

export interface TraceModel {
  readonly rows: readonly Row[];
  readonly spans: ReadonlyMap<string, SpanInfo>;
  /** Microseconds since the epoch; the waterfall's left edge and width. */
  readonly startUs: number;
  readonly durationUs: number;
  /** Row index of each hop header and span, for jumping to them. */
  readonly rowOf: ReadonlyMap<string, number>;
}

function tag(tags: readonly JaegerKeyValue[], key: string): string | null {
  for (const t of tags) if (t.key === key) return String(t.value);
  return null;
}

function hopFailureIds(list: readonly FailureReport[]): Set<string> {
  return new Set(list.map((f) => f.hopId));
}

export function buildTraceModel(trace: JaegerTrace, path: TracePath | undefined, logs: readonly TraceLog[]): TraceModel {
  const critical = new Set(path?.criticalPath.spanIds ?? []);
  const rootCauseSpan = path?.rootCause?.spanId;
  const rootCauseHop = path?.rootCause?.hopId;
  const recoveredSpans = new Set((path?.recoveredErrors ?? []).map((f) => f.spanId));
  const recoveredHops = hopFailureIds(path?.recoveredErrors ?? []);
  const logsBySpan = new Map<string, TraceLog[]>();
  const looseLogs: TraceLog[] = [];
  for (const l of logs) {
    if (l.spanId) {
      let list = logsBySpan.get(l.spanId);
      if (!list) logsBySpan.set(l.spanId, (list = []));
      list.push(l);
    } else looseLogs.push(l);
  }

  const spans = new Map<string, SpanInfo>();
  let startUs = Number.POSITIVE_INFINITY;
  let endUs = 0;
  for (const s of trace.spans) {
    const proc = trace.processes[s.processID];
    const tags = proc?.tags ?? [];
    const error = s.tags.some((t) => (t.key === 'error' && (t.value === true || t.value === 'true')) || (t.key === 'otel.status_code' && t.value === 'ERROR'));
    spans.set(s.spanID, {
      span: s,
      service: proc?.serviceName ?? 'unknown',
      pod: tag(s.tags, 'k8s.pod.name') ?? tag(tags, 'k8s.pod.name'),
      node: tag(s.tags, 'k8s.node.name') ?? tag(tags, 'k8s.node.name'),
      kind: tag(s.tags, 'span.kind') ?? 'internal',
      error,
      critical: critical.has(s.spanID),
      rootCause: s.spanID === rootCauseSpan,
      recovered: recoveredSpans.has(s.spanID),
      processTags: tags,
      logs: logsBySpan.get(s.spanID) ?? [],
    });
    startUs = Math.min(startUs, s.startTime);
    endUs = Math.max(endUs, s.startTime + s.duration);
  }
  if (!Number.isFinite(startUs)) startUs = 0;

  const rows: Row[] = [];
  const rowOf = new Map<string, number>();
  const placed = new Set<string>();
  const pushSpan = (info: SpanInfo, depth: number): void => {
    rowOf.set(info.span.spanID, rows.length);
    rows.push({ type: 'span', info, depth });
    placed.add(info.span.spanID);
    for (const l of info.logs) rows.push({ type: 'log', log: l, depth: depth + 1, spanId: info.span.spanID });
  };
  const byStart = (a: SpanInfo, b: SpanInfo): number => a.span.startTime - b.span.startTime;

  // Iterative, so a deep (or hostile) hop tree cannot overflow the stack.
  const stack: { hop: PathHop; depth: number }[] = [];
  for (let i = (path?.hops.length ?? 0) - 1; i >= 0; i--) stack.push({ hop: path!.hops[i]!, depth: 0 });
  while (stack.length > 0) {
    const { hop, depth } = stack.pop()!;
    rowOf.set(`hop:${hop.id}`, rows.length);
    rows.push({ type: 'hop', hop, depth, rootCause: hop.id === rootCauseHop, recovered: recoveredHops.has(hop.id) });
    const ids = [...hop.spanIds.client, ...(hop.spanIds.entry ? [hop.spanIds.entry] : []), ...hop.spanIds.app];
    const members = ids.map((id) => spans.get(id)).filter((s): s is SpanInfo => s !== undefined && !placed.has(s.span.spanID));
    members.sort(byStart);
    for (const m of members) pushSpan(m, depth + 1);
    for (let i = hop.children.length - 1; i >= 0; i--) stack.push({ hop: hop.children[i]!, depth: depth + 1 });
  }
  const rest = [...spans.values()].filter((s) => !placed.has(s.span.spanID)).sort(byStart);
  if (rest.length > 0) {
    rows.push({ type: 'group', label: path ? `${rest.length} spans outside the reconstructed hops` : 'Spans' });
    for (const s of rest) pushSpan(s, 1);
  }
  if (looseLogs.length > 0) {
    rows.push({ type: 'group', label: `${looseLogs.length} log records not tied to a span` });
    for (const l of looseLogs) rows.push({ type: 'log', log: l, depth: 1, spanId: null });
  }
  return { rows, spans, startUs, durationUs: Math.max(1, endUs - startUs), rowOf };
}
