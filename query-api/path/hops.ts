// Groups a span tree into hops: one unit of work in one pod. A hop starts at a span that runs
// somewhere else than its parent (normally the inbound sidecar's SERVER span); the CLIENT
// span(s) that called it become its `call`; the app's own spans in the same pod are its
// details. A CLIENT span that no server answered becomes a hop of its own.

import { STATUS_CODES } from 'node:http';
import { grpcStatusName } from '../../common/grpc-status.ts';
import { ATTR, MESH_ERROR } from '../../common/semconv.ts';
import type { SpanRecord } from '../../storage/model.ts';
import { intAttr, spanAttr } from '../attributes.ts';
import type { HopKind, Location } from './model.ts';
import { isClientLike, isServerLike, sameLocation, type SpanTree, type TreeSpan } from './span-tree.ts';

export interface HopNode {
  readonly id: string;
  readonly kind: HopKind;
  /** The span that starts the hop; undefined for a `client` hop. */
  readonly entry: TreeSpan | undefined;
  /** CLIENT spans that made the call, outermost first; empty for the root hop and orphans. */
  readonly callChain: TreeSpan[];
  readonly parent: HopNode | undefined;
  readonly children: HopNode[];
  /** Entry and app spans (CLIENT spans that are a child hop's call are not listed). */
  readonly spans: TreeSpan[];
  readonly location: Location;
  readonly start: bigint;
  readonly end: bigint;
  error: boolean;
  httpStatus: number | null;
  /** `rpc.grpc.status_code` of the entry span, else of the call; null for non-gRPC hops. */
  grpcStatus: number | null;
  meshErrorCode: string | null;
  message: string | null;
  /** The app's error response body (`mesh.error.body`, truncated by the sidecar), when one was recorded. */
  errorBody: string | null;
  /** The span that saw the failure first: where the mesh error was raised, else the failing entry, else the call. */
  evidence: TreeSpan | undefined;
  unreached: boolean;
  onFailurePath: boolean;
  onCriticalPath: boolean;
}

export interface HopGraph {
  readonly root: HopNode;
  /** Every hop, parents before children. */
  readonly hops: HopNode[];
  /** The hop each span is accounted to (a CLIENT span that no server answered: its `client` hop). */
  readonly hopOfSpan: Map<TreeSpan, HopNode>;
  /** CLIENT spans that are some hop's `call`. */
  readonly callSpans: ReadonlySet<TreeSpan>;
}

/** Mesh errors that mean the request never got to the target. */
const UNREACHED_CODES: ReadonlySet<string> = new Set([
  MESH_ERROR.connectionRefused,
  MESH_ERROR.noEndpoint,
  MESH_ERROR.tlsHandshake,
  MESH_ERROR.plaintextRefused,
  MESH_ERROR.policyDenied,
]);

/**
 * Mesh errors the caller's own sidecar raises on purpose or by its routes (an injected fault,
 * no route rule, no backend with weight): the request never left the caller, so the failure
 * began at the caller's hop, not at a target that was never chosen.
 */
const CALLER_CODES: ReadonlySet<string> = new Set([MESH_ERROR.faultInjected, MESH_ERROR.routeNotFound, MESH_ERROR.noBackend]);

function httpStatusOf(s: SpanRecord): number | null {
  return intAttr(s, ATTR.httpResponseStatusCode) ?? null;
}

function meshCodeOf(s: SpanRecord): string | null {
  const v = spanAttr(s, ATTR.meshErrorCode);
  return v !== undefined && v !== '' ? v : null;
}

/** Failed as seen by the span itself: status ERROR, a 5xx, or a mesh-produced error. */
export function spanFailed(s: SpanRecord): boolean {
  return s.statusCode === 'ERROR' || (httpStatusOf(s) ?? 0) >= 500 || meshCodeOf(s) !== null;
}

function exceptionMessage(s: SpanRecord): string | undefined {
  for (let i = s.events.length - 1; i >= 0; i--) {
    const e = s.events[i]!;
    if (e.name !== 'exception') continue;
    const msg = e.attributes.find((a) => a.key === 'exception.message')?.value ?? e.attributes.find((a) => a.key === 'exception.type')?.value;
    if (msg) return msg;
  }
  return undefined;
}

/**
 * Text that restates a status instead of explaining it (`error.type` "500", a status message
 * "INTERNAL" or "HTTP 500"): a summary that says "returned 500" gains nothing from it.
 */
function restatesStatus(text: string, s: SpanRecord): boolean {
  const t = text.trim();
  const http = /^(?:HTTP[ /]?)?(\d{3})(?: (.+))?$/.exec(t);
  if (http && (http[2] === undefined || http[2].toLowerCase() === STATUS_CODES[Number(http[1])]?.toLowerCase())) return true;
  const grpc = intAttr(s, ATTR.rpcGrpcStatusCode);
  return grpc !== undefined && (t === grpcStatusName(grpc) || t === String(grpc));
}

function errorText(s: SpanRecord): string | undefined {
  for (const text of [exceptionMessage(s), s.statusMessage, spanAttr(s, ATTR.errorType)]) {
    if (text && !restatesStatus(text, s)) return text;
  }
  return undefined;
}

/** `payments.shop.svc.cluster.local:8080` → service `payments`, namespace `shop`. */
function parseDestination(dest: string): { service: string; namespace: string | null } {
  const host = dest.replace(/:\d+$/, '');
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.startsWith('[')) return { service: host, namespace: null };
  const parts = host.split('.');
  if (parts.length >= 3 && parts[2] === 'svc') return { service: parts[0]!, namespace: parts[1]! };
  return { service: host, namespace: null };
}

function clientChain(inner: TreeSpan): TreeSpan[] {
  const chain: TreeSpan[] = [];
  let cur: TreeSpan | undefined = inner;
  while (cur && isClientLike(cur.record) && (chain.length === 0 || sameLocation(cur.location, chain[0]!.location))) {
    chain.unshift(cur);
    if (cur.missingParent !== null) break;
    cur = cur.parent;
  }
  return chain;
}

function locationOfSpan(s: TreeSpan): Location {
  return { service: s.location.service, pod: s.location.pod, node: s.location.node, namespace: s.location.namespace };
}

function targetLocation(inner: TreeSpan): Location {
  const r = inner.record;
  const dest = spanAttr(r, ATTR.meshDestinationService) ?? spanAttr(r, ATTR.serverAddress) ?? spanAttr(r, ATTR.meshEndpoint) ?? r.name;
  const parsed = parseDestination(dest);
  return {
    service: parsed.service,
    pod: spanAttr(r, ATTR.meshEndpointPod) ?? null,
    node: spanAttr(r, ATTR.meshEndpointNode) ?? null,
    namespace: parsed.namespace,
  };
}

function startsHop(s: TreeSpan): boolean {
  const p = s.parent;
  if (!p || s.missingParent !== null) return true;
  if (!sameLocation(s.location, p.location)) return true;
  // A pod calling itself through the mesh: same place, but still a new unit of work.
  return isServerLike(s.record) && isClientLike(p.record);
}

function newHop(id: string, kind: HopKind, entry: TreeSpan | undefined, callChain: TreeSpan[], parent: HopNode | undefined, location: Location): HopNode {
  const timing = entry ?? callChain[callChain.length - 1]!;
  const hop: HopNode = {
    id,
    kind,
    entry,
    callChain,
    parent,
    children: [],
    spans: entry ? [entry] : [],
    location,
    start: timing.start,
    end: timing.end,
    error: false,
    httpStatus: null,
    grpcStatus: null,
    meshErrorCode: null,
    message: null,
    errorBody: null,
    evidence: undefined,
    unreached: false,
    onFailurePath: false,
    onCriticalPath: false,
  };
  parent?.children.push(hop);
  return hop;
}

/** Decides whether a hop failed, and why, from its entry span, its call and its app spans. */
function evaluate(hop: HopNode, consumed: ReadonlySet<TreeSpan>): void {
  const inner = hop.callChain[hop.callChain.length - 1];
  const entry = hop.entry;
  const entryHttp = entry ? httpStatusOf(entry.record) : null;
  const callHttp = inner ? httpStatusOf(inner.record) : null;
  hop.httpStatus = entryHttp ?? callHttp;
  hop.grpcStatus = (entry ? intAttr(entry.record, ATTR.rpcGrpcStatusCode) : undefined) ?? (inner ? intAttr(inner.record, ATTR.rpcGrpcStatusCode) : undefined) ?? null;

  let callCode: string | null = null;
  for (let i = hop.callChain.length - 1; i >= 0 && callCode === null; i--) callCode = meshCodeOf(hop.callChain[i]!.record);
  let localCodeSpan: TreeSpan | undefined;
  for (const s of hop.spans) {
    if (consumed.has(s)) continue;
    if (meshCodeOf(s.record) !== null) {
      localCodeSpan = s;
      break;
    }
  }
  hop.meshErrorCode = callCode ?? (localCodeSpan ? meshCodeOf(localCodeSpan.record) : null);

  const entryFailed = entry !== undefined && (entry.record.statusCode === 'ERROR' || (entryHttp ?? 0) >= 500);
  const callFailed = inner !== undefined && (inner.record.statusCode === 'ERROR' || (callHttp ?? 0) >= 500);
  hop.error = entryFailed || callFailed || hop.meshErrorCode !== null;
  if (hop.kind === 'client') {
    hop.unreached = hop.error && (hop.meshErrorCode !== null ? UNREACHED_CODES.has(hop.meshErrorCode) : callHttp === null);
  }
  if (!hop.error) return;

  // The most specific text: where the mesh error was raised, then the app spans that failed
  // without a failing child (where the exception started), then the entry, then the call.
  const sources: SpanRecord[] = [];
  const codeSpan = hop.callChain.find((c) => meshCodeOf(c.record) !== null) ?? localCodeSpan;
  hop.evidence = codeSpan ?? (entryFailed ? entry : undefined) ?? (callFailed ? inner : undefined) ?? entry ?? inner;
  for (const s of [entry, inner]) {
    const body = s ? spanAttr(s.record, ATTR.meshErrorBody) : undefined;
    if (body) {
      hop.errorBody = body;
      break;
    }
  }
  if (codeSpan) sources.push(codeSpan.record);
  for (const s of hop.spans) {
    if (s === entry || consumed.has(s) || !spanFailed(s.record)) continue;
    if (!s.children.some((c) => spanFailed(c.record))) sources.push(s.record);
  }
  if (entry) sources.push(entry.record);
  if (inner) sources.push(inner.record);
  for (const r of sources) {
    const text = errorText(r);
    if (text) {
      hop.message = text;
      break;
    }
  }
}

export function buildHops(tree: SpanTree): HopGraph {
  const hopOfSpan = new Map<TreeSpan, HopNode>();
  const hops: HopNode[] = [];
  const consumed = new Set<TreeSpan>();
  let root: HopNode | undefined;

  for (const s of tree.spans) {
    if (!startsHop(s)) {
      const h = hopOfSpan.get(s.parent!)!;
      hopOfSpan.set(s, h);
      h.spans.push(s);
      continue;
    }
    const p = s.parent;
    const chain = p && s.missingParent === null && isClientLike(p.record) ? clientChain(p) : [];
    for (const c of chain) consumed.add(c);
    const kind: HopKind = isServerLike(s.record) ? 'server' : 'internal';
    const hop = newHop(s.key, kind, s, chain, p ? hopOfSpan.get(p) : undefined, locationOfSpan(s));
    hopOfSpan.set(s, hop);
    hops.push(hop);
    root ??= hop;
  }

  // CLIENT spans that no server answered: refused, timed out before the server span was
  // exported, or calls out of the mesh to something uninstrumented.
  for (const s of tree.spans) {
    if (!isClientLike(s.record)) continue;
    const wraps = s.children.some((c) => c.missingParent === null && isClientLike(c.record) && sameLocation(c.location, s.location));
    if (wraps) continue;
    const answered = s.children.some((c) => c.missingParent === null && hopOfSpan.get(c)?.entry === c);
    if (answered) continue;
    // Stays a span of the caller's hop, which then carries the failure.
    if (CALLER_CODES.has(meshCodeOf(s.record) ?? '')) continue;
    const chain = clientChain(s);
    for (const c of chain) consumed.add(c);
    const hop = newHop(`call:${s.key}`, 'client', undefined, chain, hopOfSpan.get(s), targetLocation(s));
    hopOfSpan.set(s, hop);
    hops.push(hop);
  }

  for (const h of hops) {
    h.children.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    evaluate(h, consumed);
  }
  // Parents before children (client hops were appended last).
  const ordered: HopNode[] = [];
  const stack: HopNode[] = [root!];
  while (stack.length > 0) {
    const h = stack.pop()!;
    ordered.push(h);
    for (let i = h.children.length - 1; i >= 0; i--) stack.push(h.children[i]!);
  }
  return { root: root!, hops: ordered, hopOfSpan, callSpans: consumed };
}

/** Spans of a hop that are its details: app work, not the entry and not a child hop's call. */
export function appSpansOf(hop: HopNode, graph: HopGraph): TreeSpan[] {
  return hop.spans.filter((s) => s !== hop.entry && !graph.callSpans.has(s));
}
