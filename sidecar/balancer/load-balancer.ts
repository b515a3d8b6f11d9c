// The load-balancing contract, after grpc-js: a LoadBalancer per cluster reacts to endpoint
// lists and publishes, through its helper, an immutable Picker over one snapshot; the picker
// chooses an endpoint per request. A pick completes (with an optional call tracker that sees
// the call end), queues (no endpoints yet) or drops. Policies register themselves by name.

import { ConfigError } from '../../common/errors.ts';
import type { Endpoint } from '../endpoints/endpoints.ts';
import type { ProxyError } from '../errors.ts';

/** What a picker may read of the request (hash keys). Codecs' HopState implements it. */
export interface PickRequest {
  /** A request header by lower-case name (repeated values joined with `, `). */
  header(name: string): string | undefined;
  /** The downstream peer's address (the `source` hash key). */
  readonly remoteAddress: string | undefined;
}

/** Sees one call to a picked endpoint end. One object per endpoint (a pick allocates nothing). */
export interface CallTracker {
  /** The call was sent. */
  onCallStarted(): void;
  /**
   * The call ended: `latencyMs` from the try's start to its end (the response head for a
   * failure), `ok` false when the try failed (connection failure, reset, timeout, 5xx).
   * Called exactly once per onCallStarted.
   */
  onCallEnded(latencyMs: number, ok: boolean): void;
}

export type PickResult =
  | { readonly kind: 'complete'; readonly endpoint: Endpoint; readonly tracker: CallTracker | undefined }
  /** No endpoint yet (the cluster is known but empty): wait for the next picker. */
  | { readonly kind: 'queue' }
  /** Refuse the request with this error (e.g. NO_ENDPOINT for an unknown service). */
  | { readonly kind: 'drop'; readonly error: ProxyError };

export interface Picker {
  /** Chooses an endpoint for one request. Synchronous, never throws; allocation-free on `complete`. */
  pick(request: PickRequest): PickResult;
}

/** The callbacks a LoadBalancer may use. */
export interface LoadBalancerHelper {
  /** Publishes a new picker; the cluster uses it for every later pick. May be called at any time, also from updateEndpoints. */
  updatePicker(picker: Picker): void;
  /** Where this sidecar runs, for locality-aware policies. */
  readonly locality: Locality;
  /** `random()` in [0, 1); injectable for deterministic tests. */
  readonly random: () => number;
}

export interface Locality {
  readonly node: string;
  readonly zone: string;
}

export interface LoadBalancer {
  /**
   * The endpoints to balance over changed (a new snapshot, an ejection or a health change):
   * `endpoints` are the usable ones. The balancer publishes a new picker before returning.
   * Never called synchronously from the factory.
   */
  updateEndpoints(endpoints: readonly Endpoint[]): void;
  /** Stops timers and drops state. Safe to call twice. */
  close(): void;
}

/** Options of a policy, from flags (`--lb-hash-key` etc.). Unknown fields are ignored. */
export interface LoadBalancerConfig {
  /** ring_hash / maglev: what to hash (`header:<name>`, `cookie:<name>`, `source`). */
  readonly hashKey: string;
  /** locality: the policy used inside the chosen locality. */
  readonly childPolicy: string;
}

export const DEFAULT_LB_CONFIG: LoadBalancerConfig = { hashKey: 'source', childPolicy: 'peak_ewma' };

export type LoadBalancerFactory = (helper: LoadBalancerHelper, config: LoadBalancerConfig) => LoadBalancer;

const registry = new Map<string, LoadBalancerFactory>();

/** Registers a policy by name; each policy file calls this once at load. */
export function registerLoadBalancer(name: string, factory: LoadBalancerFactory): void {
  registry.set(name, factory);
}

/** Names of the registered policies. */
export function loadBalancerNames(): string[] {
  return [...registry.keys()].sort();
}

/** The factory registered as `name`; throws a ConfigError naming `flag` when there is none. */
export function loadBalancerFactory(name: string, flag = '--lb-policy'): LoadBalancerFactory {
  const f = registry.get(name);
  if (f === undefined) throw new ConfigError(`unknown load-balancing policy "${name}" (${flag}); choose one of ${loadBalancerNames().join(', ')}`);
  return f;
}

/**
 * A balancer over a fixed per-snapshot picker: most policies are "build a picker from the
 * list". `build` gets the usable endpoints (never empty) and returns the picker.
 */
export class SnapshotBalancer implements LoadBalancer {
  private readonly helper: LoadBalancerHelper;
  private readonly build: (endpoints: readonly Endpoint[], helper: LoadBalancerHelper) => Picker;

  constructor(helper: LoadBalancerHelper, build: (endpoints: readonly Endpoint[], helper: LoadBalancerHelper) => Picker) {
    this.helper = helper;
    this.build = build;
  }

  updateEndpoints(endpoints: readonly Endpoint[]): void {
    this.helper.updatePicker(endpoints.length === 0 ? QUEUE_PICKER : this.build(endpoints, this.helper));
  }

  close(): void {}
}

const QUEUE: PickResult = { kind: 'queue' };

/** The picker of a cluster that has no endpoints yet. */
export const QUEUE_PICKER: Picker = { pick: () => QUEUE };

/** Precomputed `complete` results, one per endpoint, so a pick allocates nothing. */
export function completions(endpoints: readonly Endpoint[], trackers?: readonly (CallTracker | undefined)[]): PickResult[] {
  return endpoints.map((endpoint, i) => ({ kind: 'complete', endpoint, tracker: trackers?.[i] }));
}
