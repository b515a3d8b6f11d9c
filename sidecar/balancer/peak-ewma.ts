// Peak EWMA (Finagle's, as Linkerd balances): each endpoint's cost is a moving average of its
// latency times its requests in flight + 1; picks compare two random endpoints (power of two
// choices) and take the cheaper. "Peak": a latency above the average replaces it at once, and
// lower ones decay into it with time constant DECAY_MS, so one slow endpoint loses its traffic
// within a request or two and wins it back slowly once it is fast again. A failed try counts
// as at least FAILURE_PENALTY_MS (a fast failure must not make an endpoint look attractive).

import type { Endpoint } from '../endpoints/endpoints.ts';
import { registerLoadBalancer, type CallTracker, type LoadBalancer, type LoadBalancerHelper, type PickResult, type Picker } from './load-balancer.ts';
import { StateByAddress, twoChoices } from './least-request.ts';

export const PEAK_EWMA = 'peak_ewma';

/** Linkerd's defaults: the latency an endpoint is assumed to have before it answered, and the decay. */
export const DEFAULT_RTT_MS = 30;
export const DECAY_MS = 10_000;
export const FAILURE_PENALTY_MS = 1_000;

export class EwmaTracker implements CallTracker {
  /** The moving latency average, ms. */
  ewma = DEFAULT_RTT_MS;
  active = 0;
  private stamp = performance.now();

  onCallStarted(): void {
    this.active++;
  }

  onCallEnded(latencyMs: number, ok: boolean): void {
    this.active--;
    this.observe(ok ? latencyMs : Math.max(latencyMs, FAILURE_PENALTY_MS));
  }

  observe(rtt: number): void {
    const now = performance.now();
    const elapsed = Math.max(0, now - this.stamp);
    this.stamp = now;
    if (rtt > this.ewma) this.ewma = rtt;
    else {
      const w = Math.exp(-elapsed / DECAY_MS);
      this.ewma = this.ewma * w + rtt * (1 - w);
    }
  }

  /**
   * Latency × (in flight + 1). The average is decayed to now first (towards 0 when nothing
   * is measured), so an endpoint that has been penalized gets probed again after a while.
   */
  cost(now: number): number {
    const w = Math.exp(-Math.max(0, now - this.stamp) / DECAY_MS);
    // Calls in flight with no recent answer must not look free (Finagle's penalty for that case).
    const rtt = this.active > 0 ? Math.max(this.ewma * w, DEFAULT_RTT_MS) : this.ewma * w;
    return rtt * (this.active + 1);
  }
}

class PeakEwmaPicker implements Picker {
  private readonly results: readonly PickResult[];
  private readonly trackers: readonly EwmaTracker[];
  private readonly random: () => number;

  constructor(endpoints: readonly Endpoint[], trackers: readonly EwmaTracker[], random: () => number) {
    this.trackers = trackers;
    this.results = endpoints.map((endpoint, i) => ({ kind: 'complete', endpoint, tracker: trackers[i] }));
    this.random = random;
  }

  pick(): PickResult {
    const n = this.results.length;
    if (n === 1) return this.results[0] as PickResult;
    const [a, b] = twoChoices(n, this.random);
    const now = performance.now();
    const ca = (this.trackers[a] as EwmaTracker).cost(now);
    const cb = (this.trackers[b] as EwmaTracker).cost(now);
    return this.results[ca <= cb ? a : b] as PickResult;
  }
}

class PeakEwmaBalancer implements LoadBalancer {
  private readonly helper: LoadBalancerHelper;
  private readonly states = new StateByAddress(() => new EwmaTracker());
  constructor(helper: LoadBalancerHelper) {
    this.helper = helper;
  }
  updateEndpoints(endpoints: readonly Endpoint[]): void {
    const trackers = this.states.sync(endpoints);
    this.helper.updatePicker(endpoints.length === 0 ? { pick: () => ({ kind: 'queue' }) } : new PeakEwmaPicker(endpoints, trackers, this.helper.random));
  }
  close(): void {}
}

registerLoadBalancer(PEAK_EWMA, (helper) => new PeakEwmaBalancer(helper));
