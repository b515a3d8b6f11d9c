// One trace → one outcome: the path analysis of query-api/path (span tree → hops → critical
// path → root cause, pure functions with no HTTP or storage) run once, reduced to the row the
// failing-path API counts: path signature, root cause, and the signature of every hop's chain.

import { createHash } from 'node:crypto';
import { ATTR } from '../common/semconv.ts';
import { computeCriticalPath } from '../query-api/path/critical-path.ts';
import { buildHops, type HopGraph, type HopNode } from '../query-api/path/hops.ts';
import { analyzeFailure, failureReport } from '../query-api/path/root-cause.ts';
import { buildSpanTree } from '../query-api/path/span-tree.ts';
import type { SpanRecord } from '../storage/model.ts';
import type { OutcomeRecord } from '../storage/outcomes/model.ts';

/** Spans a trace may have and still be analysed (the path API's default cap too). */
export const DEFAULT_MAX_TRACE_SPANS = 10_000;

const HTTP_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
const MAX_LABEL = 200;

/**
 * A path segment that is an id, not a route: numbers, UUIDs, long hex, or anything with a
 * digit that is longer than 16 characters. `/orders/8812/items` → `/orders/{id}/items`.
 */
function isIdSegment(seg: string): boolean {
  return /^\d+$/.test(seg) || /^[0-9a-fA-F-]{16,}$/.test(seg) || (seg.length > 16 && /\d/.test(seg));
}

/** The route of a request without its query string, with id-like segments replaced. */
export function routeOf(path: string): string {
  const q = path.indexOf('?');
  const bare = q >= 0 ? path.slice(0, q) : path;
  return bare
    .split('/')
    .map((s) => (isIdSegment(s) ? '{id}' : s))
    .join('/');
}

function attrOf(r: SpanRecord, key: string): string | undefined {
  for (const a of r.attributes) if (a.key === key) return a.value;
  return undefined;
}

/**
 * The operation of a hop as the signature shows it. Sidecar spans are named by the method
 * alone (semconv); the signature adds `http.route`, else `url.path` with ids replaced, so
 * that `GET` becomes `GET /checkout`.
 */
export function operationOf(h: HopNode): string {
  const timing = h.entry ?? h.callChain[h.callChain.length - 1];
  if (!timing) return '';
  const r = timing.record;
  let op = r.name;
  if (HTTP_METHODS.has(op)) {
    const route = attrOf(r, 'http.route') ?? attrOf(r, ATTR.urlPath) ?? h.callChain.map((c) => attrOf(c.record, ATTR.urlPath)).find((p) => p !== undefined);
    if (route !== undefined && route !== '') op = `${op} ${routeOf(route)}`;
  }
  return op.length > MAX_LABEL ? op.slice(0, MAX_LABEL) : op;
}

/** `ingress GET /checkout > frontend > checkout > payments POST /charge`: operations on the ends only. */
export function signatureOf(chain: readonly HopNode[]): string {
  const parts: string[] = [];
  for (let i = 0; i < chain.length; i++) {
    const h = chain[i]!;
    const end = i === 0 || i === chain.length - 1;
    const op = end ? operationOf(h) : '';
    parts.push(op === '' ? h.location.service : `${h.location.service} ${op}`);
  }
  return parts.join(' > ');
}

const idCache = new Map<string, string>();
const ID_CACHE_MAX = 50_000;

/** First 8 bytes of SHA-256(signature), 16 hex digits: stable across releases and replicas. */
export function signatureIdOf(signature: string): string {
  let id = idCache.get(signature);
  if (id === undefined) {
    id = createHash('sha256').update(signature).digest('hex').slice(0, 16);
    if (idCache.size >= ID_CACHE_MAX) idCache.clear();
    idCache.set(signature, id);
  }
  return id;
}

function chainTo(h: HopNode): HopNode[] {
  const chain: HopNode[] = [];
  for (let c: HopNode | undefined = h; c; c = c.parent) chain.push(c);
  return chain.reverse();
}

/** The signature id of the chain from the root to each hop, distinct, parents first. */
function hopSignatureIds(graph: HopGraph): string[] {
  const ids = new Set<string>();
  for (const h of graph.hops) ids.add(signatureIdOf(signatureOf(chainTo(h))));
  return [...ids];
}

/** What the metrics count of one hop (RED per service and edge): small, so the spans need not be kept. */
export interface HopMetric {
  readonly service: string;
  readonly namespace: string;
  /** The calling hop's service and namespace; undefined for the root hop. */
  readonly callerService: string | undefined;
  readonly callerNamespace: string;
  /** `mesh.destination.service` of the call (the logical service asked for), else the callee's service. */
  readonly destinationService: string;
  /** Istio's `response_code`: the HTTP status, 0 when there was none (a refused connection). */
  readonly responseCode: string;
  readonly meshError: string;
  readonly error: boolean;
  readonly seconds: number;
}

export interface AnalyzedTrace {
  readonly outcome: OutcomeRecord;
  /** The hop graph (the metrics count its `hops`). */
  readonly graph: HopGraph;
  /** Every hop of the graph, parents first, as the metrics count it. */
  readonly hops: readonly HopMetric[];
}

function destinationServiceOf(h: HopNode): string {
  const inner = h.callChain[h.callChain.length - 1];
  if (inner) for (const a of inner.record.attributes) if (a.key === ATTR.meshDestinationService && a.value !== '') return a.value;
  return h.location.service;
}

function hopMetrics(graph: HopGraph): HopMetric[] {
  return graph.hops.map((h) => ({
    service: h.location.service,
    namespace: h.location.namespace ?? '',
    callerService: h.parent?.location.service,
    callerNamespace: h.parent?.location.namespace ?? '',
    destinationService: h.parent ? destinationServiceOf(h) : h.location.service,
    responseCode: String(h.httpStatus ?? 0),
    meshError: h.meshErrorCode ?? '',
    error: h.error,
    seconds: Number(h.end - h.start) / 1e9,
  }));
}

const NO_ROOT_CAUSE = { service: '', pod: '', node: '', namespace: '', reason: '' } as const;

/** Analyses one trace's spans (non-empty). `analyzedAt` orders re-analyses of the same trace. */
export function analyzeTrace(traceId: string, spans: readonly SpanRecord[], analyzedAtUnixNano: bigint, maxSpans = DEFAULT_MAX_TRACE_SPANS): AnalyzedTrace {
  const tree = buildSpanTree(spans, { maxSpans, adjustClockSkew: true });
  const graph = buildHops(tree);
  const failure = analyzeFailure(graph);
  const root = graph.root;
  let target: HopNode = root;
  let rootCause: OutcomeRecord['rootCause'] = NO_ROOT_CAUSE;
  if (failure.rootCause) {
    target = failure.rootCause;
    const r = failureReport(failure.rootCause);
    rootCause = { service: r.service, pod: r.pod ?? '', node: r.node ?? '', namespace: r.namespace ?? '', reason: r.reason };
  } else {
    // A request that succeeded: the path its latency took, to the last hop on the critical path.
    const cp = computeCriticalPath(tree.root);
    for (let i = cp.spans.length - 1; i >= 0; i--) {
      const h = graph.hopOfSpan.get(cp.spans[i]!);
      if (h) {
        target = h;
        break;
      }
    }
  }
  const chain = chainTo(target);
  const signature = signatureOf(chain);
  const rootRecord = tree.root.record;
  return {
    graph,
    hops: hopMetrics(graph),
    outcome: {
      traceId,
      startUnixNano: rootRecord.startTimeUnixNano,
      durationNano: rootRecord.durationNano,
      rootService: root.location.service,
      rootOperation: operationOf(root),
      status: failure.rootCause ? 'error' : 'ok',
      hopCount: graph.hops.length,
      spanCount: spans.length,
      signature,
      signatureId: signatureIdOf(signature),
      pathServices: [...new Set(chain.map((h) => h.location.service))],
      hopSignatureIds: hopSignatureIds(graph),
      rootCause,
      analyzedAtUnixNano,
    },
  };
}

/** The outcome of a trace too large to analyse: counted, with what the trace index knows. */
export function tooLargeOutcome(traceId: string, spans: number, startUnixNano: bigint, endUnixNano: bigint, analyzedAtUnixNano: bigint): OutcomeRecord {
  return {
    traceId,
    startUnixNano,
    durationNano: endUnixNano > startUnixNano ? endUnixNano - startUnixNano : 0n,
    rootService: '',
    rootOperation: '',
    status: 'too_large',
    hopCount: 0,
    spanCount: spans,
    signature: '',
    signatureId: signatureIdOf(''),
    pathServices: [],
    hopSignatureIds: [],
    rootCause: NO_ROOT_CAUSE,
    analyzedAtUnixNano,
  };
}

/** Same outcome apart from when it was computed: a replay after a restart writes nothing. */
export function sameOutcome(a: OutcomeRecord, b: OutcomeRecord): boolean {
  return (
    a.status === b.status &&
    a.signatureId === b.signatureId &&
    a.startUnixNano === b.startUnixNano &&
    a.durationNano === b.durationNano &&
    a.spanCount === b.spanCount &&
    a.hopCount === b.hopCount &&
    a.rootService === b.rootService &&
    a.rootOperation === b.rootOperation &&
    a.rootCause.service === b.rootCause.service &&
    a.rootCause.pod === b.rootCause.pod &&
    a.rootCause.node === b.rootCause.node &&
    a.rootCause.namespace === b.rootCause.namespace &&
    a.rootCause.reason === b.rootCause.reason &&
    a.hopSignatureIds.length === b.hopSignatureIds.length &&
    a.hopSignatureIds.every((id, i) => b.hopSignatureIds[i] === id)
  );
}
