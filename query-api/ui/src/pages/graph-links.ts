// Where a click on the graph leads: the failing paths that involve a node or an edge.

import { links } from '../router.tsx';
import type { GraphNode } from '../types.ts';

/** The failing paths that involve a node: through its service, or rooted in its pod or node. */
export function pathsLinkFor(node: GraphNode | undefined, windowParam: string): string {
  if (!node) return links.paths({ window: windowParam });
  if (node.kind === 'node') return links.paths({ window: windowParam, node: node.node ?? undefined });
  return links.paths({ service: node.service ?? undefined, pod: node.kind === 'workload' ? (node.pod ?? undefined) : undefined, window: windowParam });
}

/**
 * The failing paths through one call: the caller's service directly followed by the callee's
 * (for workloads also rooted in the callee pod). Nodes carry no services, so a call between
 * two nodes leads to the paths whose root causes are on the callee node.
 */
export function pathsLinkForEdge(from: GraphNode | undefined, to: GraphNode | undefined, windowParam: string): string {
  if (!to || to.kind === 'node' || !from?.service || !to.service) return pathsLinkFor(to, windowParam);
  return links.paths({ service: to.service, caller: from.service, pod: to.kind === 'workload' ? (to.pod ?? undefined) : undefined, window: windowParam });
}

/** Services of a signature (`client GET /order > a > b > c GET /order`), root first. */
export function signatureServices(signature: string): string[] {
  return signature.split(' > ').map((part) => part.split(' ', 1)[0] ?? part);
}

/** Whether a signature's path has `caller` calling `callee` directly. */
export function signatureHasCall(signature: string, caller: string, callee: string): boolean {
  const s = signatureServices(signature);
  for (let i = 1; i < s.length; i++) if (s[i - 1] === caller && s[i] === callee) return true;
  return false;
}
