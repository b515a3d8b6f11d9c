// Turns a trace's SpanRecord[] into one rooted tree that path reconstruction can trust:
// duplicate ids resolved, huge traces capped, orphans and cycles re-attached to the root,
// and (optionally) clock skew between pods undone, the way Jaeger's adjusters do.

import { ATTR } from '../../common/semconv.ts';
import type { SpanRecord } from '../../storage/model.ts';
import { resourceAttr } from '../attributes.ts';

export interface SpanLocation {
  readonly service: string;
  readonly pod: string | null;
  readonly node: string | null;
  readonly namespace: string | null;
  readonly instance: string | null;
}

export interface TreeSpan {
  /** Unique within the tree: the span id, suffixed `#n` for a conflicting duplicate. */
  readonly key: string;
  readonly record: SpanRecord;
  readonly location: SpanLocation;
  parent: TreeSpan | undefined;
  readonly children: TreeSpan[];
  /** Start and end after the clock-skew adjustment. */
  start: bigint;
  end: bigint;
  skew: bigint;
  /** The parent id that could not be found, for an orphan re-attached to the root. */
  missingParent: string | null;
}

export interface SpanTree {
  readonly root: TreeSpan;
  /** Every kept span, in depth-first order from the root (children by start time). */
  readonly spans: TreeSpan[];
  readonly totalSpans: number;
  readonly truncated: boolean;
  readonly warnings: string[];
}

export interface SpanTreeOptions {
  /** Spans beyond this are dropped (errors and their ancestors are kept first). */
  readonly maxSpans: number;
  readonly adjustClockSkew: boolean;
}

const MAX_WARNINGS_PER_KIND = 10;

function locationOf(s: SpanRecord): SpanLocation {
  return {
    service: s.serviceName,
    pod: resourceAttr(s, ATTR.k8sPodName) ?? null,
    node: resourceAttr(s, ATTR.k8sNodeName) ?? null,
    namespace: resourceAttr(s, ATTR.k8sNamespaceName) ?? null,
    instance: resourceAttr(s, ATTR.serviceInstanceId) ?? null,
  };
}

/**
 * Whether two spans ran in the same process (pod). App SDKs often lack the k8s resource
 * attributes the sidecar sets, so when either side has no pod we fall back to the instance
 * id, then to the service name.
 */
export function sameLocation(a: SpanLocation, b: SpanLocation): boolean {
  if (a.pod !== null && b.pod !== null) return a.pod === b.pod && (a.namespace === null || b.namespace === null || a.namespace === b.namespace);
  if (a.instance !== null && b.instance !== null) return a.instance === b.instance;
  return a.service === b.service;
}

export function isClientLike(s: SpanRecord): boolean {
  return s.kind === 'CLIENT' || s.kind === 'PRODUCER';
}

export function isServerLike(s: SpanRecord): boolean {
  return s.kind === 'SERVER' || s.kind === 'CONSUMER';
}

function isError(s: SpanRecord): boolean {
  return s.statusCode === 'ERROR' || s.attributes.some((a) => a.key === ATTR.meshErrorCode);
}

class Warnings {
  readonly list: string[] = [];
  readonly #counts = new Map<string, number>();
  add(kind: string, message: string): void {
    const n = (this.#counts.get(kind) ?? 0) + 1;
    this.#counts.set(kind, n);
    if (n <= MAX_WARNINGS_PER_KIND) this.list.push(message);
  }
  finish(): string[] {
    for (const [kind, n] of this.#counts) if (n > MAX_WARNINGS_PER_KIND) this.list.push(`${n - MAX_WARNINGS_PER_KIND} more ${kind} warnings not shown`);
    return this.list;
  }
}

function dedupe(spans: readonly SpanRecord[], w: Warnings): { key: string; record: SpanRecord }[] {
  const firstById = new Map<string, SpanRecord>();
  const dupCount = new Map<string, number>();
  const out: { key: string; record: SpanRecord }[] = [];
  for (const s of spans) {
    const first = firstById.get(s.spanId);
    if (!first) {
      firstById.set(s.spanId, s);
      out.push({ key: s.spanId, record: s });
      continue;
    }
    const identical =
      first.startTimeUnixNano === s.startTimeUnixNano &&
      first.durationNano === s.durationNano &&
      first.name === s.name &&
      first.serviceName === s.serviceName &&
      first.parentSpanId === s.parentSpanId &&
      first.kind === s.kind;
    if (identical) {
      w.add('duplicate', `span ${s.spanId} was stored more than once; the copies were dropped`);
      continue;
    }
    const n = (dupCount.get(s.spanId) ?? 0) + 1;
    dupCount.set(s.spanId, n);
    w.add('duplicate', `span id ${s.spanId} is used by ${n + 1} different spans (${first.serviceName} "${first.name}" and ${s.serviceName} "${s.name}"); children attach to the first`);
    out.push({ key: `${s.spanId}#${n}`, record: s });
  }
  return out;
}

/** Keeps error spans and their ancestors first, then mesh (SERVER/CLIENT) spans, then the rest, by start time. */
function cap(entries: { key: string; record: SpanRecord }[], max: number): { key: string; record: SpanRecord }[] {
  if (entries.length <= max) return entries;
  const byId = new Map<string, { key: string; record: SpanRecord }>();
  for (const e of entries) if (!byId.has(e.record.spanId)) byId.set(e.record.spanId, e);
  const rank = (s: SpanRecord): number => (isError(s) ? 0 : s.kind === 'INTERNAL' || s.kind === 'UNSPECIFIED' ? 2 : 1);
  const ordered = [...entries].sort((a, b) => {
    const r = rank(a.record) - rank(b.record);
    if (r !== 0) return r;
    return a.record.startTimeUnixNano < b.record.startTimeUnixNano ? -1 : a.record.startTimeUnixNano > b.record.startTimeUnixNano ? 1 : 0;
  });
  const kept = new Set<string>();
  for (const e of ordered) {
    if (kept.size >= max) break;
    let cur: { key: string; record: SpanRecord } | undefined = e;
    let guard = 0;
    while (cur && !kept.has(cur.key) && guard++ < max) {
      kept.add(cur.key);
      cur = cur.record.parentSpanId ? byId.get(cur.record.parentSpanId) : undefined;
    }
  }
  return entries.filter((e) => kept.has(e.key));
}

function byStart(a: TreeSpan, b: TreeSpan): number {
  return a.start < b.start ? -1 : a.start > b.start ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/**
 * Clock skew: a span in another pod than its parent that starts before its parent, or (for a
 * call the parent saw complete normally) ends after it, ran on a clock that is off. Like
 * Jaeger's adjuster, centre it inside the parent when it fits; the shift carries down to the
 * spans of the same pod below it.
 */
function adjustSkew(root: TreeSpan, adjust: boolean, w: Warnings): void {
  const stack: TreeSpan[] = [root];
  while (stack.length > 0) {
    const s = stack.pop()!;
    const p = s.parent;
    if (p) {
      const inherited = sameLocation(s.location, p.location) ? p.skew : 0n;
      let start = s.record.startTimeUnixNano + inherited;
      let end = start + s.record.durationNano;
      let skew = inherited;
      if (!sameLocation(s.location, p.location) && s.missingParent === null) {
        const parentCompleted = p.record.statusCode !== 'ERROR';
        const startsEarly = start < p.start;
        // Only a synchronous call must end inside its caller: a CONSUMER may run after its PRODUCER ended.
        const endsLate = end > p.end && parentCompleted && s.record.kind === 'SERVER' && p.record.kind === 'CLIENT';
        if (startsEarly || endsLate) {
          const parentDur = p.end - p.start;
          const dur = s.record.durationNano;
          const off = startsEarly ? p.start - start : end - p.end;
          const where = `${s.location.pod ?? s.location.service}`;
          const parentWhere = `${p.location.pod ?? p.location.service}`;
          if (adjust && dur <= parentDur) {
            const delta = p.start + (parentDur - dur) / 2n - start;
            skew += delta;
            start += delta;
            end += delta;
            w.add('clock skew', `clock skew: span ${s.record.spanId} in ${where} ${startsEarly ? 'starts' : 'ends'} ${Number(off) / 1e6} ms ${startsEarly ? 'before' : 'after'} its parent in ${parentWhere}; shifted by ${Number(delta) / 1e6} ms`);
          } else {
            w.add('clock skew', `clock skew: span ${s.record.spanId} in ${where} ${startsEarly ? 'starts' : 'ends'} ${Number(off) / 1e6} ms ${startsEarly ? 'before' : 'after'} its parent in ${parentWhere}; not adjusted`);
          }
        }
      }
      s.start = start;
      s.end = end;
      s.skew = skew;
    }
    for (let i = s.children.length - 1; i >= 0; i--) stack.push(s.children[i]!);
  }
}

/**
 * A sidecar's retried try names, in `mesh.retry.peer_span_id`, the server span that answered
 * it. That span's parent is the hop's span (every try sends the hop's id), which is a sibling
 * of the try's span: move it under the try, so the failed try is a call that reached its peer, not a hop
 * whose peer never reported.
 */
function adoptRetriedAnswers(nodes: readonly TreeSpan[], byKey: ReadonlyMap<string, TreeSpan>): void {
  for (const t of nodes) {
    const peer = t.record.attributes.find((a) => a.key === ATTR.meshRetryPeerSpanId)?.value;
    if (typeof peer !== 'string') continue;
    const answer = byKey.get(peer);
    // The try's span and the hop's span are siblings (same parent, same pod).
    const hop = answer?.parent;
    if (answer === undefined || hop === undefined || hop === t || hop.parent !== t.parent || !isServerLike(answer.record) || !sameLocation(hop.location, t.location)) continue;
    hop.children.splice(hop.children.indexOf(answer), 1);
    answer.parent = t;
    t.children.push(answer);
  }
}

/** Builds the tree. Throws nothing: an empty input is the caller's 404. */
export function buildSpanTree(records: readonly SpanRecord[], options: SpanTreeOptions): SpanTree {
  if (records.length === 0) throw new Error('buildSpanTree needs at least one span');
  const w = new Warnings();
  const unique = dedupe(records, w);
  const entries = cap(unique, Math.max(1, options.maxSpans));
  const truncated = entries.length < unique.length;
  if (truncated) w.add('truncation', `trace has ${unique.length} spans; only ${entries.length} (errors, their ancestors and mesh spans first) were used for the path`);

  const nodes: TreeSpan[] = entries.map(({ key, record }) => ({
    key,
    record,
    location: locationOf(record),
    parent: undefined,
    children: [],
    start: record.startTimeUnixNano,
    end: record.startTimeUnixNano + record.durationNano,
    skew: 0n,
    missingParent: null,
  }));
  const byKey = new Map<string, TreeSpan>();
  for (const n of nodes) byKey.set(n.key, n);

  const roots: TreeSpan[] = [];
  const orphans: TreeSpan[] = [];
  for (const n of nodes) {
    const pid = n.record.parentSpanId;
    if (pid === '') {
      roots.push(n);
      continue;
    }
    const p = byKey.get(pid);
    if (!p || p === n) {
      orphans.push(n);
      continue;
    }
    n.parent = p;
    p.children.push(n);
  }
  adoptRetriedAnswers(nodes, byKey);
  roots.sort(byStart);
  orphans.sort(byStart);
  let root = roots[0];
  if (!root) {
    // No span claims to be the root: the root span was lost (or the trace continues one from
    // outside). The earliest orphan stands in for it.
    root = orphans.shift();
    if (!root) {
      // Every span has a parent in the trace: the parent links form cycles.
      root = [...nodes].sort(byStart)[0]!;
      w.add('cycle', `every span has a parent in the trace (a cycle); span ${root.record.spanId} was taken as the root`);
      const p = root.parent;
      if (p) p.children.splice(p.children.indexOf(root), 1);
      root.parent = undefined;
    } else {
      w.add('missing root', `the root span is missing; span ${root.record.spanId} (${root.record.serviceName} "${root.record.name}"), whose parent ${root.record.parentSpanId} is not in the trace, was taken as the root`);
      root.missingParent = root.record.parentSpanId;
    }
  }
  for (const extra of roots.slice(1)) {
    w.add('multiple roots', `span ${extra.record.spanId} (${extra.record.serviceName} "${extra.record.name}") is a second root; attached under the first`);
    orphans.push(extra);
  }
  for (const o of orphans) {
    if (o === root) continue;
    o.missingParent = o.record.parentSpanId;
    o.parent = root;
    root.children.push(o);
    if (o.record.parentSpanId !== '') {
      w.add('orphan', `span ${o.record.spanId} (${o.record.serviceName} "${o.record.name}") has parent ${o.record.parentSpanId}, which is not in the trace; attached to the root`);
    }
  }

  // Spans that cannot be reached from the root sit in parent cycles: cut each cycle once.
  const seen = new Set<TreeSpan>();
  const mark = (from: TreeSpan): void => {
    const stack = [from];
    while (stack.length > 0) {
      const s = stack.pop()!;
      if (seen.has(s)) continue;
      seen.add(s);
      for (const c of s.children) stack.push(c);
    }
  };
  mark(root);
  if (seen.size < nodes.length) {
    for (const n of [...nodes].sort(byStart)) {
      if (seen.has(n)) continue;
      const p = n.parent;
      if (p) p.children.splice(p.children.indexOf(n), 1);
      n.parent = root;
      n.missingParent = n.record.parentSpanId;
      root.children.push(n);
      w.add('cycle', `span ${n.record.spanId} is part of a parent-id cycle; attached to the root`);
      mark(n);
    }
  }

  for (const n of nodes) n.children.sort(byStart);
  adjustSkew(root, options.adjustClockSkew, w);
  for (const n of nodes) n.children.sort(byStart);

  const ordered: TreeSpan[] = [];
  const stack: TreeSpan[] = [root];
  while (stack.length > 0) {
    const s = stack.pop()!;
    ordered.push(s);
    for (let i = s.children.length - 1; i >= 0; i--) stack.push(s.children[i]!);
  }
  return { root, spans: ordered, totalSpans: records.length, truncated, warnings: w.finish() };
}
