// Maglev (Google's consistent hashing, as Envoy's maglev policy): a lookup table of a prime
// size (65537, Envoy's default) filled by each endpoint's own permutation (offset and skip
// from two hashes of its address), weighted by how many rounds it takes part in. A pick is
// one hash and one table read; a change of endpoints moves little more than its share.

import type { Endpoint } from '../endpoints/endpoints.ts';
import { hash32, hashInput, parseHashKey, type HashKey } from './hash-key.ts';
import { completions, registerLoadBalancer, SnapshotBalancer, type PickRequest, type PickResult, type Picker } from './load-balancer.ts';
import { effectiveWeights } from './round-robin.ts';

export const MAGLEV = 'maglev';
export const TABLE_SIZE = 65537;

/** Builds the table: entry → endpoint index. */
export function maglevTable(endpoints: readonly Endpoint[], size = TABLE_SIZE): Uint32Array {
  const n = endpoints.length;
  const weights = effectiveWeights(endpoints);
  const maxW = Math.max(...weights);
  const offset = endpoints.map((e) => hash32(e.address, 1) % size);
  const skip = endpoints.map((e) => (hash32(e.address, 2) % (size - 1)) + 1);
  const next = new Uint32Array(n);
  const table = new Int32Array(size).fill(-1);
  const credit = new Float64Array(n);
  let filled = 0;
  while (filled < size) {
    for (let i = 0; i < n && filled < size; i++) {
      // Weighted Maglev: an endpoint takes a turn only when its credit allows.
      credit[i] = (credit[i] as number) + (weights[i] as number) / maxW;
      if ((credit[i] as number) < 1) continue;
      credit[i] = (credit[i] as number) - 1;
      for (;;) {
        const c = ((offset[i] as number) + (next[i] as number) * (skip[i] as number)) % size;
        next[i] = (next[i] as number) + 1;
        if (table[c] === -1) {
          table[c] = i;
          filled++;
          break;
        }
      }
    }
  }
  return Uint32Array.from(table);
}

class MaglevPicker implements Picker {
  private readonly table: Uint32Array;
  private readonly results: readonly PickResult[];
  private readonly key: HashKey;
  private readonly random: () => number;

  constructor(endpoints: readonly Endpoint[], key: HashKey, random: () => number) {
    this.table = maglevTable(endpoints);
    this.results = completions(endpoints);
    this.key = key;
    this.random = random;
  }

  pick(r: PickRequest): PickResult {
    const input = hashInput(this.key, r);
    if (input === undefined) return this.results[Math.floor(this.random() * this.results.length)] as PickResult;
    return this.results[this.table[hash32(input) % this.table.length] as number] as PickResult;
  }
}

registerLoadBalancer(MAGLEV, (helper, config) => {
  const key = parseHashKey(config.hashKey);
  return new SnapshotBalancer(helper, (endpoints, h) => new MaglevPicker(endpoints, key, h.random));
});
