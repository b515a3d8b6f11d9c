// Round-robin over the endpoints of each service. Each service's ring starts at a random
// offset so that many sidecars do not all hit the first endpoint together.

import { MESH_ERROR } from '../../common/semconv.ts';
import type { EndpointSnapshot } from '../endpoints/endpoints.ts';
import { ProxyError } from '../errors.ts';
import { registerPolicy, type PickResult, type Picker } from './picker.ts';

export const ROUND_ROBIN = 'round_robin';

class Ring {
  /** One precomputed result per endpoint, so a pick allocates nothing. */
  private readonly results: readonly PickResult[];
  private next: number;

  constructor(results: readonly PickResult[], start: number) {
    this.results = results;
    this.next = start;
  }

  pick(): PickResult | undefined {
    const n = this.results.length;
    if (n === 0) return undefined;
    const r = this.results[this.next % n];
    this.next = (this.next + 1) % n;
    return r;
  }
}

export class RoundRobinPicker implements Picker {
  private readonly rings: ReadonlyMap<string, Ring>;

  /** `random` returns a number in [0, 1); injectable for deterministic tests. */
  constructor(snapshot: EndpointSnapshot, random: () => number = Math.random) {
    const rings = new Map<string, Ring>();
    for (const [service, endpoints] of snapshot) {
      const results = endpoints.map((endpoint): PickResult => ({ kind: 'complete', endpoint }));
      rings.set(service, new Ring(results, Math.floor(random() * results.length)));
    }
    this.rings = rings;
  }

  pick(service: string): PickResult {
    const ring = this.rings.get(service);
    const r = ring?.pick();
    if (r !== undefined) return r;
    return {
      kind: 'fail',
      error: new ProxyError(
        MESH_ERROR.noEndpoint,
        ring === undefined
          ? `service "${service}" is unknown to this sidecar; check the Host header and the endpoints file`
          : `service "${service}" has no endpoints`,
      ),
    };
  }
}

registerPolicy(ROUND_ROBIN, (snapshot) => new RoundRobinPicker(snapshot));
