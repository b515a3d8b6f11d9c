// Clusters: one per destination service, each with its own LoadBalancer (the policy named by
// --lb-policy) and the picker it last published. The ClusterManager follows an endpoint source
// (a watched file, later xDS) and feeds every cluster the endpoints that are usable now: those
// neither ejected by outlier detection nor failing active health checks (sidecar/resilience/).
// Requests that find a cluster with no endpoints yet queue until a picker can serve them.

import { MESH_ERROR } from '../../common/semconv.ts';
import type { HopState } from '../chain/hop.ts';
import type { Endpoint, EndpointSnapshot, EndpointSource } from '../endpoints/endpoints.ts';
import { ProxyError } from '../errors.ts';
import { DEFAULT_LB_CONFIG, loadBalancerFactory, QUEUE_PICKER, type LoadBalancer, type LoadBalancerConfig, type LoadBalancerFactory, type Locality, type Picker, type PickResult } from './load-balancer.ts';
import './policies.ts';

export interface ClusterOptions {
  /** Registered policy name (`--lb-policy`); default peak_ewma. */
  readonly policy?: string;
  readonly config?: LoadBalancerConfig;
  readonly locality?: Locality;
  /** How long a request waits for a cluster without endpoints to get one; default 1000 ms. */
  readonly queueTimeoutMs?: number;
  readonly random?: () => number;
  /** Circuit breaker `max_pending_requests`: requests that may wait for an endpoint at once; default 1024. */
  readonly maxPending?: number;
  /** Told when a breaker refuses a request. */
  readonly onCircuitOpen?: (service: string, breaker: string) => void;
  /** Told whenever a cluster's usable endpoints change (for health bookkeeping). */
  readonly onEndpoints?: (cluster: Cluster) => void;
}

export const DEFAULT_LB_POLICY = 'peak_ewma';

/**
 * Decides which of a cluster's endpoints are usable now. The resilience layer (outlier
 * detection, active health checks) implements it; without one every endpoint is usable.
 */
export interface EndpointFilter {
  usable(cluster: Cluster, endpoint: Endpoint): boolean;
}

/**
 * Below this share of usable endpoints the cluster balances over all of them (Envoy's panic
 * threshold, default 50%): when most endpoints look bad, the checks are more likely wrong than
 * the endpoints, and sending to all beats refusing everything.
 */
export const PANIC_THRESHOLD = 0.5;

export class Cluster {
  readonly name: string;
  readonly policy: string;
  /** Every endpoint of the service in the latest snapshot. */
  endpoints: readonly Endpoint[] = [];
  /** What the balancer balances over now. */
  usable: readonly Endpoint[] = [];
  /** Fewer than PANIC_THRESHOLD of the endpoints were usable: balancing over all. */
  panic = false;
  picker: Picker = QUEUE_PICKER;
  /** Requests in flight to this cluster (circuit breaker `max_requests`). */
  active = 0;
  /** HTTP/1.1 requests in flight, each holding an upstream connection (circuit breaker `max_connections`). */
  connectionsActive = 0;
  /** Requests waiting for an endpoint (circuit breaker `max_pending_requests`). */
  pending = 0;
  /** Retries in flight (circuit breaker `max_retries`). */
  retriesActive = 0;
  /** Free-form state of the resilience layers (outlier detection, retry budget), keyed by them. */
  readonly state = new Map<string, unknown>();
  private readonly lb: LoadBalancer;
  private readonly waiters = new Set<HopState>();
  readonly manager: ClusterManager;

  constructor(manager: ClusterManager, name: string, policy: string, factory: LoadBalancerFactory) {
    this.manager = manager;
    this.name = name;
    this.policy = policy;
    this.lb = factory(
      {
        updatePicker: (picker) => {
          this.picker = picker;
          if (this.waiters.size > 0) this.serveWaiters();
        },
        locality: manager.locality,
        random: manager.random,
      },
      manager.config,
    );
  }

  /** Re-reads which endpoints are usable and gives them to the balancer (after a snapshot or a health change). */
  refresh(): void {
    const filters = this.manager.filters;
    let usable = this.endpoints;
    if (filters.length > 0 && usable.length > 0) {
      const ok = usable.filter((e) => filters.every((f) => f.usable(this, e)));
      this.panic = ok.length < usable.length * PANIC_THRESHOLD;
      if (!this.panic) usable = ok;
    } else this.panic = false;
    this.usable = usable;
    this.lb.updateEndpoints(usable);
    this.manager.onEndpoints?.(this);
  }

  /** Picks for `hop`: sets its endpoint and tracker; PENDING queues it; an error drops it. */
  pickFor(hop: HopState): ProxyError | 1 | undefined {
    const r = this.picker.pick(hop);
    if (r.kind === 'complete') {
      complete(hop, r, this.policy);
      return undefined;
    }
    if (r.kind === 'drop') return r.error;
    return this.enqueue(hop);
  }

  private enqueue(hop: HopState): ProxyError | 1 {
    const max = this.manager.maxPending;
    if (this.pending >= max) {
      hop.circuitOpen = 'max_pending_requests';
      this.manager.onCircuitOpen?.(this.name, 'max_pending_requests');
      return new ProxyError(MESH_ERROR.circuitOpen, `service "${this.name}" has no endpoint yet and ${this.pending} requests already wait for one, the most its circuit breaker allows (--max-pending-requests ${max})`);
    }
    this.waiters.add(hop);
    this.pending++;
    hop.retryTimer = setTimeout(onQueueTimeout, this.manager.queueTimeoutMs, this, hop);
    return 1;
  }

  /** Takes a queued hop out (it ended, or timed out). */
  dequeue(hop: HopState): boolean {
    if (!this.waiters.delete(hop)) return false;
    this.pending--;
    return true;
  }

  private serveWaiters(): void {
    for (const hop of [...this.waiters]) {
      const r = this.picker.pick(hop);
      if (r.kind === 'queue') return;
      this.dequeue(hop);
      clearTimeout(hop.retryTimer);
      hop.retryTimer = undefined;
      if (hop.ended) continue;
      if (r.kind === 'drop') hop.reject(r.error);
      else {
        complete(hop, r, this.policy);
        hop.resend();
      }
    }
  }

  close(): void {
    this.lb.close();
    for (const hop of [...this.waiters]) {
      this.dequeue(hop);
      if (!hop.ended) hop.reject(new ProxyError(MESH_ERROR.noEndpoint, `service "${this.name}" was removed while the request waited for an endpoint`));
    }
  }
}

function complete(hop: HopState, r: PickResult & { kind: 'complete' }, policy: string): void {
  hop.endpoint = r.endpoint;
  hop.tracker = r.tracker;
  hop.lbPolicy = policy;
}

function onQueueTimeout(cluster: Cluster, hop: HopState): void {
  hop.retryTimer = undefined;
  if (!cluster.dequeue(hop) || hop.ended) return;
  hop.reject(new ProxyError(MESH_ERROR.noEndpoint, `service "${cluster.name}" has no endpoints (waited ${cluster.manager.queueTimeoutMs} ms for one)`));
}

export class ClusterManager {
  readonly policy: string;
  readonly config: LoadBalancerConfig;
  readonly locality: Locality;
  readonly random: () => number;
  readonly queueTimeoutMs: number;
  readonly onEndpoints: ((cluster: Cluster) => void) | undefined;
  readonly maxPending: number;
  readonly onCircuitOpen: ((service: string, breaker: string) => void) | undefined;
  /** Decide together which endpoints are usable (outlier detection, active health checks): all must agree. */
  readonly filters: EndpointFilter[] = [];
  private readonly factory: LoadBalancerFactory;
  private readonly clusters = new Map<string, Cluster>();
  private readonly unsubscribe: () => void;

  /** Throws a ConfigError naming --lb-policy when the policy is not registered. */
  constructor(source: EndpointSource, o: ClusterOptions = {}) {
    this.policy = o.policy ?? DEFAULT_LB_POLICY;
    this.factory = loadBalancerFactory(this.policy);
    this.config = o.config ?? DEFAULT_LB_CONFIG;
    if (this.policy === 'locality') loadBalancerFactory(this.config.childPolicy, '--lb-locality-child');
    this.locality = o.locality ?? { node: '', zone: '' };
    this.random = o.random ?? Math.random;
    this.queueTimeoutMs = o.queueTimeoutMs ?? 1000;
    this.onEndpoints = o.onEndpoints;
    this.maxPending = o.maxPending ?? 1024;
    this.onCircuitOpen = o.onCircuitOpen;
    this.apply(source.current());
    this.unsubscribe = source.subscribe((snapshot) => this.apply(snapshot));
  }

  /** Adds a judge of usable endpoints (outlier detection, health checks) and re-reads every cluster. */
  addFilter(f: EndpointFilter): void {
    this.filters.push(f);
    for (const c of this.clusters.values()) c.refresh();
  }

  /** The cluster of `service`, or undefined when the service is unknown. */
  get(service: string): Cluster | undefined {
    return this.clusters.get(service);
  }

  all(): IterableIterator<Cluster> {
    return this.clusters.values();
  }

  private apply(snapshot: EndpointSnapshot): void {
    for (const [name, endpoints] of snapshot) {
      let c = this.clusters.get(name);
      if (c === undefined) {
        c = new Cluster(this, name, this.policy, this.factory);
        this.clusters.set(name, c);
      }
      c.endpoints = endpoints;
      c.refresh();
    }
    for (const [name, c] of this.clusters) {
      if (!snapshot.has(name)) {
        this.clusters.delete(name);
        c.close();
      }
    }
  }

  /** Stops following the source and closes every cluster. Safe to call twice. */
  close(): void {
    this.unsubscribe();
    for (const c of this.clusters.values()) c.close();
    this.clusters.clear();
  }
}
