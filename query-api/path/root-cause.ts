// Names the hop where a failure began, not every red span. From a failed root, follow failing
// child hops down; a failing hop none of whose child hops failed is where the failure began
// (the hops above it only relayed it). When several branches qualify, the earliest to fail
// wins. Failing hops whose failure never reached the root were recovered (retried, fell back).

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

export function failureReport(h: HopNode): FailureReport {
  const inner = h.callChain[h.callChain.length - 1];
  const caller = h.parent;
  const endpoint = endpointOf(h);
  const observedBy = caller
    ? { service: caller.location.service, pod: caller.location.pod, spanId: inner?.record.spanId ?? caller.entry?.record.spanId ?? null }
    : null;
  const reason = h.meshErrorCode ?? (h.httpStatus !== null && h.httpStatus >= 400 ? `HTTP_${h.httpStatus}` : 'SPAN_ERROR');
  const at = where(h, endpoint);
  const observer = observedBy ? `${observedBy.pod ?? observedBy.service}${observedBy.pod ? ` (service ${observedBy.service})` : ''}` : null;
  const msg = h.message ? `: ${h.message}` : '';
  let summary: string;
  if (h.unreached) {
    summary = `${at} was not reached: ${h.meshErrorCode ?? 'connection failed'}${msg}${observer ? `; observed by ${observer}${endpoint ? ` calling ${endpoint}` : ''}` : ''}`;
  } else if (h.meshErrorCode === MESH_ERROR.timeout) {
    const gaveUp = inner ? ` after ${nanoToMs(inner.record.durationNano)} ms` : '';
    summary = `${at} did not answer in time (UPSTREAM_TIMEOUT${gaveUp})${observer ? `; observed by ${observer}` : ''}${h.entry ? `; it took ${nanoToMs(h.end - h.start)} ms` : ''}`;
  } else if (h.meshErrorCode === MESH_ERROR.policyDenied) {
    summary = `${at} rejected the request: POLICY_DENIED${msg}`;
  } else if (h.meshErrorCode !== null) {
    summary = `${at} failed: ${h.meshErrorCode}${msg}${observer ? `; observed by ${observer}` : ''}`;
  } else if (h.httpStatus !== null && h.httpStatus >= 400) {
    summary = `${at} returned ${h.httpStatus}${msg}`;
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
    meshErrorCode: h.meshErrorCode,
    message: h.message,
    unreached: h.unreached,
    endpoint,
    observedBy,
    summary,
  };
}
