// Locality-aware balancing: endpoints on this sidecar's node first, then in its zone, then
// anywhere; inside the chosen tier a child policy balances (--lb-locality-child, default
// peak_ewma). The cluster gives the balancer only usable endpoints (outlier detection and
// health checks filter the rest), so when every local endpoint is ejected or unhealthy the
// next tier takes over at once, and traffic comes back when a local one recovers.

import type { Endpoint } from '../endpoints/endpoints.ts';
import { loadBalancerFactory, registerLoadBalancer, type LoadBalancer, type LoadBalancerConfig, type LoadBalancerHelper, type Locality, type PickRequest, type PickResult, type Picker } from './load-balancer.ts';

export const LOCALITY = 'locality';
export type Tier = 'node' | 'zone' | 'any';

/** The tier of an endpoint as seen from `here`. */
export function tierOf(e: Endpoint, here: Locality): Tier {
  if (here.node !== '' && e.node === here.node) return 'node';
  if (here.zone !== '' && e.zone === here.zone) return 'zone';
  return 'any';
}

class LocalityBalancer implements LoadBalancer {
  private readonly helper: LoadBalancerHelper;
  private readonly config: LoadBalancerConfig;
  /** One child balancer per tier, kept so their latency state survives endpoint changes. */
  private readonly children = new Map<Tier, { lb: LoadBalancer; picker: Picker | undefined }>();
  private active: Tier | undefined = undefined;

  constructor(helper: LoadBalancerHelper, config: LoadBalancerConfig) {
    this.helper = helper;
    this.config = config;
  }

  private child(tier: Tier): { lb: LoadBalancer; picker: Picker | undefined } {
    let c = this.children.get(tier);
    if (c === undefined) {
      const slot: { lb: LoadBalancer; picker: Picker | undefined } = { lb: undefined as unknown as LoadBalancer, picker: undefined };
      slot.lb = loadBalancerFactory(this.config.childPolicy, '--lb-locality-child')(
        {
          locality: this.helper.locality,
          random: this.helper.random,
          updatePicker: (p) => {
            slot.picker = p;
            if (this.active === tier) this.helper.updatePicker(new LocalityPicker(p, tier));
          },
        },
        this.config,
      );
      c = slot;
      this.children.set(tier, c);
    }
    return c;
  }

  updateEndpoints(endpoints: readonly Endpoint[]): void {
    const byTier: Record<Tier, Endpoint[]> = { node: [], zone: [], any: [] };
    for (const e of endpoints) byTier[tierOf(e, this.helper.locality)].push(e);
    // The zone tier includes the node tier's endpoints' zone peers only; "any" is everything.
    const zone = [...byTier.node, ...byTier.zone];
    const tiers: Array<[Tier, Endpoint[]]> = [
      ['node', byTier.node],
      ['zone', zone],
      ['any', endpoints.slice()],
    ];
    const chosen = tiers.find(([, list]) => list.length > 0)?.[0] ?? 'any';
    this.active = chosen;
    for (const [tier, list] of tiers) {
      if (tier === chosen) this.child(tier).lb.updateEndpoints(list);
    }
  }

  close(): void {
    for (const c of this.children.values()) c.lb.close();
  }
}

/** Wraps the chosen tier's picker; the tier is exposed for tests and /debug. */
export class LocalityPicker implements Picker {
  readonly tier: Tier;
  private readonly inner: Picker;
  constructor(inner: Picker, tier: Tier) {
    this.inner = inner;
    this.tier = tier;
  }
  pick(r: PickRequest): PickResult {
    return this.inner.pick(r);
  }
}

registerLoadBalancer(LOCALITY, (helper, config) => new LocalityBalancer(helper, config));
