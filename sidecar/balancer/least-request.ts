// Least request with the power of two choices (Envoy's default choice count): pick two
// endpoints at random, send to the one with fewer requests in flight (divided by its weight).
// Two random choices avoid the herd that "the least loaded of all" causes when many sidecars
// see the same stale counts, at the cost of two random numbers per pick.

import type { Endpoint } from '../endpoints/endpoints.ts';
import { registerLoadBalancer, type CallTracker, type LoadBalancer, type LoadBalancerHelper, type PickResult, type Picker } from './load-balancer.ts';
import { effectiveWeights } from './round-robin.ts';

export const LEAST_REQUEST = 'least_request';

/** Requests in flight to one endpoint; kept across pickers while the endpoint stays. */
export class ActiveRequests implements CallTracker {
  active = 0;
  onCallStarted(): void {
    this.active++;
  }
  onCallEnded(): void {
    this.active--;
  }
}

/** Two distinct random indexes in [0, n), n ≥ 2; the second is never the first. */
export function twoChoices(n: number, random: () => number): [number, number] {
  const a = Math.floor(random() * n);
  let b = Math.floor(random() * (n - 1));
  if (b >= a) b++;
  return [a, b];
}

/** Keeps a per-endpoint state object while an address stays in the list. */
export class StateByAddress<T> {
  private readonly states = new Map<string, T>();
  private readonly make: () => T;
  constructor(make: () => T) {
    this.make = make;
  }
  /** The states of `endpoints`, in order; forgets the addresses no longer listed. */
  sync(endpoints: readonly Endpoint[]): T[] {
    const seen = new Set<string>();
    const out = endpoints.map((e) => {
      seen.add(e.address);
      let s = this.states.get(e.address);
      if (s === undefined) {
        s = this.make();
        this.states.set(e.address, s);
      }
      return s;
    });
    for (const k of this.states.keys()) if (!seen.has(k)) this.states.delete(k);
    return out;
  }
}

class LeastRequestPicker implements Picker {
  private readonly results: readonly PickResult[];
  private readonly trackers: readonly ActiveRequests[];
  private readonly weights: readonly number[];
  private readonly random: () => number;

  constructor(endpoints: readonly Endpoint[], trackers: readonly ActiveRequests[], random: () => number) {
    this.trackers = trackers;
    this.results = endpoints.map((endpoint, i) => ({ kind: 'complete', endpoint, tracker: trackers[i] }));
    // A weight-0 endpoint (when others have weight) takes no traffic.
    this.weights = effectiveWeights(endpoints);
    this.random = random;
  }

  pick(): PickResult {
    const n = this.results.length;
    if (n === 1) return this.results[0] as PickResult;
    const [a, b] = twoChoices(n, this.random);
    return this.results[this.cost(a) <= this.cost(b) ? a : b] as PickResult;
  }

  private cost(i: number): number {
    const w = this.weights[i] as number;
    return w === 0 ? Infinity : ((this.trackers[i] as ActiveRequests).active + 1) / w;
  }
}

class LeastRequestBalancer implements LoadBalancer {
  private readonly helper: LoadBalancerHelper;
  private readonly states = new StateByAddress(() => new ActiveRequests());
  constructor(helper: LoadBalancerHelper) {
    this.helper = helper;
  }
  updateEndpoints(endpoints: readonly Endpoint[]): void {
    const trackers = this.states.sync(endpoints);
    this.helper.updatePicker(endpoints.length === 0 ? { pick: () => ({ kind: 'queue' }) } : new LeastRequestPicker(endpoints, trackers, this.helper.random));
  }
  close(): void {}
}

registerLoadBalancer(LEAST_REQUEST, (helper) => new LeastRequestBalancer(helper));
