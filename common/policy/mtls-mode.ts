// The mTLS mode the inbound listener enforces for a workload, from PeerAuthentication
// resources with Istio's precedence: workload selector > namespace-wide > mesh-wide (root
// namespace), with UNSET inheriting from the next wider scope, and port-level overrides.

import { policyId, type MtlsMode, type PeerAuthentication } from './resources.ts';
import { byAge, DEFAULT_ROOT_NAMESPACE, hasSelectorLabels, selectorMatches, type Workload } from './selection.ts';

/** What the inbound listener does: require mTLS, accept mTLS or plaintext, or plaintext only. */
export type EffectiveMtlsMode = Exclude<MtlsMode, 'UNSET'>;

export interface MtlsModeOptions {
  /** Namespace whose selector-less PeerAuthentication is mesh-wide; default `tracemesh-system`. */
  readonly rootNamespace?: string;
  /**
   * Mode when no PeerAuthentication sets one. Default STRICT: tracemesh is secure by default,
   * where Istio defaults to PERMISSIVE to ease migration. Set PERMISSIVE to get Istio's default.
   */
  readonly defaultMode?: EffectiveMtlsMode;
}

/** The resolved modes for one workload, with the resources that decided them (for debug pages). */
export interface MtlsModes {
  /** Mode for any port without a port-level override. */
  readonly mode: EffectiveMtlsMode;
  /** Port-level overrides from the workload-level policy, UNSET already resolved. */
  readonly ports: ReadonlyMap<number, EffectiveMtlsMode>;
  /** `<namespace>/<name>` of the policy chosen at each scope, if any. */
  readonly sources: { readonly mesh?: string; readonly namespace?: string; readonly workload?: string };
  /** Mode for traffic to `port` (the workload's target port); `mode` when the port has no override. */
  modeFor(port?: number): EffectiveMtlsMode;
}

function isSet(mode: MtlsMode | undefined): mode is EffectiveMtlsMode {
  return mode !== undefined && mode !== 'UNSET';
}

/**
 * Resolves the workload's mTLS modes once; call it again when the resources change.
 *
 * As in Istio (ComposePeerAuthentication): a selector-less policy in the root namespace is
 * mesh-wide, a selector-less policy in the workload's namespace is namespace-wide, and a policy
 * with a selector in the workload's namespace is workload-level. A root-namespace policy *with*
 * a selector is ignored. When several policies compete at one scope, the oldest
 * (creationTimestamp, then name) wins. Port-level modes come from the workload-level policy
 * only; a port-level UNSET takes the workload's resolved mode.
 */
export function resolveMtlsModes(peerAuthentications: readonly PeerAuthentication[], workload: Workload, options: MtlsModeOptions = {}): MtlsModes {
  const root = options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  let mesh: PeerAuthentication | undefined;
  let namespace: PeerAuthentication | undefined;
  let workloadLevel: PeerAuthentication | undefined;
  const candidates = peerAuthentications.filter((p) => p.metadata.namespace === workload.namespace || p.metadata.namespace === root).sort(byAge);
  for (const pa of candidates) {
    const inRoot = pa.metadata.namespace === root;
    if (!hasSelectorLabels(pa.spec.selector)) {
      if (inRoot) mesh ??= pa;
      else namespace ??= pa;
    } else if (!inRoot && selectorMatches(pa.spec.selector, workload.labels)) {
      workloadLevel ??= pa;
    }
  }

  let mode: EffectiveMtlsMode = options.defaultMode ?? 'STRICT';
  for (const pa of [mesh, namespace, workloadLevel]) {
    const m = pa?.spec.mtls?.mode;
    if (isSet(m)) mode = m;
  }
  const ports = new Map<number, EffectiveMtlsMode>();
  for (const [port, mtls] of Object.entries(workloadLevel?.spec.portLevelMtls ?? {})) {
    ports.set(Number(port), isSet(mtls.mode) ? mtls.mode : mode);
  }

  const sources: { mesh?: string; namespace?: string; workload?: string } = {};
  if (mesh) sources.mesh = policyId(mesh);
  if (namespace) sources.namespace = policyId(namespace);
  if (workloadLevel) sources.workload = policyId(workloadLevel);
  const resolved = mode;
  return {
    mode: resolved,
    ports,
    sources,
    modeFor: (port) => (port === undefined ? resolved : (ports.get(port) ?? resolved)),
  };
}

/**
 * The mTLS mode for `workload`, on `port` if given. Resolves from scratch on each call; on a
 * per-connection path, keep the result of resolveMtlsModes instead.
 */
export function mtlsModeFor(peerAuthentications: readonly PeerAuthentication[], workload: Workload, options: MtlsModeOptions = {}, port?: number): EffectiveMtlsMode {
  return resolveMtlsModes(peerAuthentications, workload, options).modeFor(port);
}
