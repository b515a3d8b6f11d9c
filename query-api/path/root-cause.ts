// Names the hop where a failure began, not every red span. From a failed root, follow failing
// child hops down; a failing hop none of whose child hops failed is where the failure began
// (the hops above it only relayed it). When several branches qualify, the earliest to fail
// wins. Failing hops whose failure never reached the root were recovered (retried, fell back).

import { grpcStatusName } from '../../common/grpc-status.ts';
import { ATTR, MESH_ERROR } from '../../common/semconv.ts';
import { nanoToMs, spanAttr } from '../attributes.ts';
import type { HopGraph, HopNode } from './hops.ts';
import type { FailureReport } from './model.ts';

export interface FailureAnalysis {
  /** Where the failure began; undefined when the root did not fail. */
  readonly rootCause: HopNode | undefined;
  /** Other hops where a failure that reached the root began (a second failing branch). */
  readonly additional: HopNode[];
  /** Hops where a failure began that did not reach the root. */
  readonly recovered: HopNode[];
}

function byFailureTime(a: HopNode, b: HopNode): number {
  if (a.end !== b.end) return a.end < b.end ? -1 : 1;
  if (a.start !== b.start) return a.start < b.start ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Analyses the hop graph and sets `onFailurePath` on the hops from the root to the root cause. */
export function analyzeFailure(graph: HopGraph): FailureAnalysis {
  const origins = new Set<HopNode>();
  let rootCause: HopNode | undefined;
  let additional: HopNode[] = [];
  if (graph.root.error) {
    const stack: HopNode[] = [graph.root];
    while (stack.length > 0) {
      const h = stack.pop()!;
      const failing = h.children.filter((c) => c.error);
      if (failing.length === 0) origins.add(h);
      else stack.push(...failing);
    }
    const ranked = [...origins].sort(byFailureTime);
    rootCause = ranked[0];
    additional = ranked.slice(1);
    for (let h: HopNode | undefined = rootCause; h; h = h.parent) h.onFailurePath = true;
  }
  const recovered = graph.hops.filter((h) => h.error && !origins.has(h) && !h.children.some((c) => c.error)).sort(byFailureTime);
  return { rootCause, additional, recovered };
}

function where(h: HopNode, endpoint: string | null): string {
  const { service, pod, node } = h.location;
  const name = pod ?? (h.kind === 'client' && endpoint ? endpoint : null);
  if (name) return `${name}${node ? ` on ${node}` : ''} (service ${service})`;
  return `service ${service}${node ? ` on ${node}` : ''}`;
}

function endpointOf(h: HopNode): string | null {
  const inner = h.callChain[h.callChain.length - 1];
  if (!inner) return null;
  const r = inner.record;
  const ep = spanAttr(r, ATTR.meshEndpoint);
  if (ep) return ep;
  const addr = spanAttr(r, ATTR.serverAddress);
  if (!addr) return null;
  const port = spanAttr(r, ATTR.serverPort);
  return port ? `${addr}:${port}` : addr;
}

const SUMMARY_BODY_CHARS = 200;

function clip(text: string, max = SUMMARY_BODY_CHARS): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

/** `GRPC_INTERNAL` for a gRPC failure, the mesh's code, `HTTP_<status>`, else `SPAN_ERROR`. */
export function failureReason(h: HopNode): string {
  if (h.meshErrorCode !== null) return h.meshErrorCode;
  if (h.grpcStatus !== null && h.grpcStatus !== 0) return `GRPC_${grpcStatusName(h.grpcStatus)}`;
  if (h.httpStatus !== null && h.httpStatus >= 400) return `HTTP_${h.httpStatus}`;
  return 'SPAN_ERROR';
}

type Direction = 'inbound' | 'outbound' | 'app';

function observerOf(h: HopNode): FailureReport['observedBy'] {
  const s = h.evidence;
  if (!s) return null;
  const dir = spanAttr(s.record, ATTR.meshDirection);
  const direction: Direction = dir === 'inbound' || dir === 'outbound' ? dir : 'app';
  return { service: s.location.service, pod: s.location.pod, spanId: s.record.spanId, direction };
}

function observerText(o: NonNullable<FailureReport['observedBy']>): string {
  const who = o.pod ? `${o.pod} (service ${o.service})` : `service ${o.service}`;
  if (o.direction === 'inbound') return `the inbound sidecar of ${who}`;
  if (o.direction === 'outbound') return `the outbound sidecar of ${who}`;
  return who;
}

export function failureReport(h: HopNode): FailureReport {
  const inner = h.callChain[h.callChain.length - 1];
  const endpoint = endpointOf(h);
  const observedBy = observerOf(h);
  const reason = failureReason(h);
  const at = where(h, endpoint);
  const observed = observedBy ? `; observed by ${observerText(observedBy)}` : '';
  const msg = h.message ? `: ${h.message}` : '';
  // A mesh error raised by this hop's own inbound sidecar is about the app behind it.
  const local = h.evidence !== undefined && h.spans.includes(h.evidence) && observedBy?.direction === 'inbound';
  const answer = h.errorBody ? `: ${clip(h.errorBody)}` : h.message ? `: ${clip(h.message)}` : '';
  let summary: string;
  if (h.unreached) {
    summary = `${at} was not reached: ${h.meshErrorCode ?? 'connection failed'}${msg}${observed}${endpoint ? ` calling ${endpoint}` : ''}`;
  } else if (local && h.meshErrorCode === MESH_ERROR.connectionRefused) {
    summary = `the app in ${at} refused the connection from its sidecar (CONNECTION_REFUSED)${msg}${observed}`;
  } else if (local && h.meshErrorCode === MESH_ERROR.upstreamReset) {
    summary = `the app in ${at} closed the connection before answering (UPSTREAM_RESET)${msg}${observed}`;
  } else if (h.meshErrorCode === MESH_ERROR.timeout) {
    const gaveUp = h.evidence ? ` after ${nanoToMs(h.evidence.record.durationNano)} ms` : '';
    summary = `${local ? `the app in ${at}` : at} did not answer in time (UPSTREAM_TIMEOUT${gaveUp})${observed}${!local && h.entry ? `; it took ${nanoToMs(h.end - h.start)} ms` : ''}`;
  } else if (h.meshErrorCode === MESH_ERROR.policyDenied) {
    summary = `${at} rejected the request: POLICY_DENIED${msg}`;
  } else if (h.meshErrorCode !== null) {
    summary = `${at} failed: ${h.meshErrorCode}${msg}${observed}`;
  } else if (h.grpcStatus !== null && h.grpcStatus !== 0) {
    summary = `${at} answered gRPC ${grpcStatusName(h.grpcStatus)}${answer}`;
  } else if (h.httpStatus !== null && h.httpStatus >= 400) {
    summary = `${at} returned ${h.httpStatus}${answer}`;
  } else {
    summary = `${at} failed${h.message ? `: ${h.message}` : ' (span status ERROR)'}`;
  }
  return {
    hopId: h.id,
    service: h.location.service,
    pod: h.location.pod,
    node: h.location.node,
    namespace: h.location.namespace,
    spanId: (h.entry ?? inner)?.record.spanId ?? '',
    reason,
    httpStatus: h.httpStatus,
    grpcStatus: h.grpcStatus,
    meshErrorCode: h.meshErrorCode,
    message: h.message,
    errorBody: h.errorBody,
    unreached: h.unreached,
    endpoint,
    observedBy,
    summary,
  };
}
