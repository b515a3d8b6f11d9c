// The critical path: the chain of spans that determines end-to-end latency. The algorithm is
// Jaeger UI's: walk back from the root's end, repeatedly descend into the child that finished
// last before the current point; the parent owns the gaps between children. Children are
// first clipped to their parent's window, and children entirely outside it are ignored, so
// async work and skewed clocks cannot stretch the path. Iterative, for deep traces.

import type { TreeSpan } from './span-tree.ts';

export interface SpanSegment {
  readonly span: TreeSpan;
  readonly start: bigint;
  readonly end: bigint;
}

export interface SpanCriticalPath {
  /** Time slices in time order; their durations add up to the root's duration. */
  readonly segments: SpanSegment[];
  /** Every span the path passes through, root first, in the order the walk reached them. */
  readonly spans: TreeSpan[];
}

interface Window {
  readonly span: TreeSpan;
  readonly start: bigint;
  readonly end: bigint;
}

interface Frame extends Window {
  readonly kids: Window[];
  next: number;
  cursor: bigint;
}

function frame(w: Window): Frame {
  const kids: Window[] = [];
  for (const c of w.span.children) {
    if (c.end < w.start || c.start > w.end || (c.start === w.end && c.end > c.start)) continue;
    kids.push({ span: c, start: c.start < w.start ? w.start : c.start, end: c.end > w.end ? w.end : c.end });
  }
  // Latest end first; among equal ends the later start (the shorter span) first.
  kids.sort((a, b) => (a.end !== b.end ? (a.end > b.end ? -1 : 1) : a.start > b.start ? -1 : a.start < b.start ? 1 : 0));
  return { ...w, kids, next: 0, cursor: w.end };
}

export function computeCriticalPath(root: TreeSpan): SpanCriticalPath {
  const reversed: SpanSegment[] = [];
  const spans: TreeSpan[] = [root];
  const stack: Frame[] = [frame({ span: root, start: root.start, end: root.end })];
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    while (f.next < f.kids.length && f.kids[f.next]!.end > f.cursor) f.next++;
    const kid = f.kids[f.next];
    if (kid) {
      f.next++;
      if (kid.end < f.cursor) reversed.push({ span: f.span, start: kid.end, end: f.cursor });
      spans.push(kid.span);
      stack.push(frame(kid));
      continue;
    }
    if (f.start < f.cursor) reversed.push({ span: f.span, start: f.start, end: f.cursor });
    stack.pop();
    const parent = stack[stack.length - 1];
    if (parent) parent.cursor = f.start;
  }
  return { segments: reversed.reverse(), spans };
}
