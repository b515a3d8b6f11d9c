// Which policies attach to a workload, and in which order they are considered: the parts of
// Istio's policy attachment that AuthorizationPolicy and PeerAuthentication share.

import type { ObjectMeta, WorkloadSelector } from './resources.ts';

/** Istio's `istio-system`: policies here apply to every namespace. */
export const DEFAULT_ROOT_NAMESPACE = 'tracemesh-system';

/** The workload a sidecar serves: its namespace and its pod labels. */
export interface Workload {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** True when every `matchLabels` entry is on the workload; no selector (or no labels) selects all. */
export function selectorMatches(selector: WorkloadSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  const wanted = selector?.matchLabels;
  if (wanted === undefined) return true;
  for (const [k, v] of Object.entries(wanted)) {
    if (!Object.hasOwn(labels, k) || labels[k] !== v) return false;
  }
  return true;
}

export function hasSelectorLabels(selector: WorkloadSelector | undefined): boolean {
  return selector?.matchLabels !== undefined && Object.keys(selector.matchLabels).length > 0;
}

/**
 * Istio's rule for AuthorizationPolicy: a policy applies if it is in the workload's namespace
 * or in the root namespace, and its selector matches the workload's labels. A root-namespace
 * policy with a selector therefore applies to matching workloads in every namespace.
 */
export function appliesToWorkload(
  policy: { readonly metadata: ObjectMeta; readonly spec: { readonly selector?: WorkloadSelector } },
  workload: Workload,
  rootNamespace: string,
): boolean {
  const ns = policy.metadata.namespace;
  if (ns !== workload.namespace && ns !== rootNamespace) return false;
  return selectorMatches(policy.spec.selector, workload.labels);
}

function createdAt(meta: ObjectMeta): number {
  // Kubernetes always sets it; local files rarely do, and then sort as the oldest, by name.
  return meta.creationTimestamp === undefined ? Number.NEGATIVE_INFINITY : Date.parse(meta.creationTimestamp);
}

/** Istio's order: oldest first by creationTimestamp, then by name, then by namespace. */
export function byAge(a: { readonly metadata: ObjectMeta }, b: { readonly metadata: ObjectMeta }): number {
  const ta = createdAt(a.metadata);
  const tb = createdAt(b.metadata);
  if (ta !== tb) return ta < tb ? -1 : 1;
  if (a.metadata.name !== b.metadata.name) return a.metadata.name < b.metadata.name ? -1 : 1;
  if (a.metadata.namespace !== b.metadata.namespace) return a.metadata.namespace < b.metadata.namespace ? -1 : 1;
  return 0;
}
