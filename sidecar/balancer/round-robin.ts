// Weighted round robin. Equal weights cycle through the endpoints in order; unequal ones use
// smooth weighted round robin (nginx's): each pick adds every endpoint's weight to its
// running score and takes the highest, so a 3:1 split interleaves (a a b a) instead of
// sending bursts. Each picker starts at a random offset so that many sidecars do not all hit
// the first endpoint together.

import type { Endpoint } from '../endpoints/endpoints.ts';
import { completions, registerLoadBalancer, SnapshotBalancer, type PickResult, type Picker } from './load-balancer.ts';

export const ROUND_ROBIN = 'round_robin';

/** Weights of `endpoints`, with every weight 1 when all are 0 (Envoy: weight 0 is not allowed; here all-zero means equal). */
export function effectiveWeights(endpoints: readonly Endpoint[]): number[] {
  const w = endpoints.map((e) => e.weight);
  return w.some((x) => x > 0) ? w : w.map(() => 1);
}

export class RoundRobinPicker implements Picker {
  private readonly results: readonly PickResult[];
  private readonly weights: readonly number[] | undefined;
  private readonly scores: Float64Array;
  private readonly total: number;
  private next: number;

  constructor(endpoints: readonly Endpoint[], random: () => number) {
    this.results = completions(endpoints);
    const weights = effectiveWeights(endpoints);
    const uniform = weights.every((w) => w === weights[0]);
    this.weights = uniform ? undefined : weights;
    this.total = weights.reduce((a, b) => a + b, 0);
    this.scores = new Float64Array(endpoints.length);
    this.next = Math.floor(random() * endpoints.length);
    // A random start for the weighted ring too: advance the scores a random number of steps.
    if (!uniform) for (let i = this.next; i > 0; i--) this.pickWeighted();
  }

  pick(): PickResult {
    if (this.weights !== undefined) return this.results[this.pickWeighted()] as PickResult;
    const n = this.results.length;
    const r = this.results[this.next] as PickResult;
    this.next = this.next + 1 === n ? 0 : this.next + 1;
    return r;
  }

  private pickWeighted(): number {
    const w = this.weights as readonly number[];
    const s = this.scores;
    let best = 0;
    for (let i = 0; i < s.length; i++) {
      s[i] = (s[i] as number) + (w[i] as number);
      if ((s[i] as number) > (s[best] as number)) best = i;
    }
    s[best] = (s[best] as number) - this.total;
    return best;
  }
}

registerLoadBalancer(ROUND_ROBIN, (helper) => new SnapshotBalancer(helper, (endpoints, h) => new RoundRobinPicker(endpoints, h.random)));
