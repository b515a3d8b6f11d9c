// Ring hash (Ketama, as Envoy's ring_hash): each endpoint gets POINTS_PER_ENDPOINT points on a
// 32-bit ring (Ketama's 160), scaled by its weight against the heaviest; the count does not
// depend on how many endpoints there are, so other endpoints' arcs stay put when one comes or
// goes (Envoy's min_ring_size scaling moves them). A request goes to the first
// point at or after the hash of its key (--lb-hash-key). Adding or removing one endpoint moves
// only the keys of its own arcs. A request without the key is balanced at random.

import type { Endpoint } from '../endpoints/endpoints.ts';
import { hash32, hashInput, parseHashKey, type HashKey } from './hash-key.ts';
import { completions, registerLoadBalancer, SnapshotBalancer, type PickRequest, type PickResult, type Picker } from './load-balancer.ts';
import { effectiveWeights } from './round-robin.ts';

export const RING_HASH = 'ring_hash';
export const POINTS_PER_ENDPOINT = 160;
const MAX_RING_SIZE = 1 << 20;

export class RingHashPicker implements Picker {
  private readonly hashes: Uint32Array;
  private readonly owners: Uint32Array;
  private readonly results: readonly PickResult[];
  private readonly key: HashKey;
  private readonly random: () => number;

  constructor(endpoints: readonly Endpoint[], key: HashKey, random: () => number) {
    this.key = key;
    this.random = random;
    this.results = completions(endpoints);
    const weights = effectiveWeights(endpoints);
    const maxW = Math.max(...weights);
    const perUnit = Math.max(1, Math.min(POINTS_PER_ENDPOINT, Math.floor(MAX_RING_SIZE / endpoints.length)));
    const points: Array<[number, number]> = [];
    for (let i = 0; i < endpoints.length; i++) {
      const n = Math.ceil(((weights[i] as number) / maxW) * perUnit);
      const addr = (endpoints[i] as Endpoint).address;
      for (let j = 0; j < n; j++) points.push([hash32(`${addr}_${j}`), i]);
    }
    points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.hashes = Uint32Array.from(points, (p) => p[0]);
    this.owners = Uint32Array.from(points, (p) => p[1]);
  }

  pick(r: PickRequest): PickResult {
    const input = hashInput(this.key, r);
    if (input === undefined) return this.results[Math.floor(this.random() * this.results.length)] as PickResult;
    const h = hash32(input);
    const hs = this.hashes;
    let lo = 0;
    let hi = hs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((hs[mid] as number) < h) lo = mid + 1;
      else hi = mid;
    }
    return this.results[this.owners[lo === hs.length ? 0 : lo] as number] as PickResult;
  }
}

registerLoadBalancer(RING_HASH, (helper, config) => {
  const key = parseHashKey(config.hashKey);
  return new SnapshotBalancer(helper, (endpoints, h) => new RingHashPicker(endpoints, key, h.random));
});
