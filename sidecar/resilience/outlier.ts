// Outlier detection, with Envoy's semantics and defaults: an endpoint is ejected (taken out of
// its cluster's balancing) after N consecutive 5xx (failed tries count as 5xx) or N consecutive
// gateway errors (502, 503, 504, connection failures, resets, timeouts), or when its success
// rate over an interval falls below mean − stdev × factor among enough busy endpoints. An
// ejection lasts base × (times ejected), capped at 300 s; the multiplier shrinks again by one
// for each interval the endpoint stays in. At most max-ejection-percent of a cluster's
// endpoints are out at once, but one may always be. The cluster re-balances on each change.

import { ATTR } from '../../common/semconv.ts';
import type { Cluster, ClusterManager, EndpointFilter } from '../balancer/cluster.ts';
import type { Layer, UpstreamFailure } from '../chain/chain.ts';
import type { HopState } from '../chain/hop.ts';
import type { Endpoint } from '../endpoints/endpoints.ts';

export interface OutlierOptions {
  readonly consecutive5xx: number;
  readonly consecutiveGatewayErrors: number;
  readonly intervalMs: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionPercent: number;
  readonly successRateMinimumHosts: number;
  readonly successRateRequestVolume: number;
  /** 1900 = 1.9 standard deviations. */
  readonly successRateStdevFactor: number;
}

/** Envoy's max_ejection_time default. */
export const MAX_EJECTION_MS = 300_000;

export interface Ejection {
  readonly cluster: string;
  readonly endpoint: Endpoint;
  readonly reason: 'consecutive_5xx' | 'consecutive_gateway_errors' | 'success_rate';
  readonly untilMs: number;
}

class EndpointStats {
  consecutive5xx = 0;
  consecutiveGateway = 0;
  ejectedUntil = 0;
  ejections = 0;
  success = 0;
  total = 0;
}

const KEY = 'outlier';

export class OutlierDetector implements EndpointFilter {
  private readonly o: OutlierOptions;
  private readonly clusters: ClusterManager;
  private readonly timer: NodeJS.Timeout;
  private readonly onEject: ((e: Ejection) => void) | undefined;
  private readonly onChange: ((cluster: Cluster, ejected: number) => void) | undefined;

  constructor(clusters: ClusterManager, o: OutlierOptions, hooks: { onEject?: (e: Ejection) => void; onChange?: (cluster: Cluster, ejected: number) => void } = {}) {
    this.o = o;
    this.clusters = clusters;
    this.onEject = hooks.onEject;
    this.onChange = hooks.onChange;
    this.timer = setInterval(() => this.sweep(), o.intervalMs);
    this.timer.unref();
    clusters.addFilter(this);
  }

  private table(cluster: Cluster): Map<string, EndpointStats> {
    let t = cluster.state.get(KEY) as Map<string, EndpointStats> | undefined;
    if (t === undefined) {
      t = new Map();
      cluster.state.set(KEY, t);
    }
    return t;
  }

  private stats(cluster: Cluster, e: Endpoint): EndpointStats {
    const t = this.table(cluster);
    let s = t.get(e.address);
    if (s === undefined) {
      s = new EndpointStats();
      t.set(e.address, s);
    }
    return s;
  }

  usable(cluster: Cluster, e: Endpoint): boolean {
    const s = this.table(cluster).get(e.address);
    return s === undefined || s.ejectedUntil <= performance.now();
  }

  /** Whether `e` is ejected now. */
  ejected(cluster: Cluster, e: Endpoint): boolean {
    return !this.usable(cluster, e);
  }

  /** Records one try's outcome: `gateway` for 502/503/504 and failed tries, `error` for any 5xx. Returns true when it ejected the endpoint. */
  record(cluster: Cluster, e: Endpoint, error: boolean, gateway: boolean): boolean {
    const s = this.stats(cluster, e);
    s.total++;
    if (!error) {
      s.success++;
      s.consecutive5xx = 0;
      s.consecutiveGateway = 0;
      return false;
    }
    s.consecutive5xx++;
    if (gateway) s.consecutiveGateway++;
    else s.consecutiveGateway = 0;
    if (s.ejectedUntil > performance.now()) return false;
    if (this.o.consecutiveGatewayErrors > 0 && s.consecutiveGateway >= this.o.consecutiveGatewayErrors) return this.eject(cluster, e, s, 'consecutive_gateway_errors');
    if (this.o.consecutive5xx > 0 && s.consecutive5xx >= this.o.consecutive5xx) return this.eject(cluster, e, s, 'consecutive_5xx');
    return false;
  }

  private ejectedCount(cluster: Cluster): number {
    const now = performance.now();
    let n = 0;
    for (const s of this.table(cluster).values()) if (s.ejectedUntil > now) n++;
    return n;
  }

  private eject(cluster: Cluster, e: Endpoint, s: EndpointStats, reason: Ejection['reason']): boolean {
    const max = Math.max(1, Math.floor((cluster.endpoints.length * this.o.maxEjectionPercent) / 100));
    if (this.ejectedCount(cluster) >= max) return false;
    s.ejections++;
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    const untilMs = performance.now() + Math.min(MAX_EJECTION_MS, this.o.baseEjectionMs * s.ejections);
    s.ejectedUntil = untilMs;
    this.onEject?.({ cluster: cluster.name, endpoint: e, reason, untilMs });
    cluster.refresh();
    this.onChange?.(cluster, this.ejectedCount(cluster));
    return true;
  }

  /** Each interval: returns endpoints whose ejection ran out, judges success rates, resets the interval's counts. */
  sweep(): void {
    const now = performance.now();
    for (const cluster of this.clusters.all()) {
      const t = this.table(cluster);
      let changed = false;
      const present = new Set(cluster.endpoints.map((e) => e.address));
      for (const [addr, s] of t) {
        if (!present.has(addr)) t.delete(addr);
        else if (s.ejectedUntil !== 0 && s.ejectedUntil <= now) {
          s.ejectedUntil = 0;
          changed = true;
        } else if (s.ejectedUntil === 0 && s.ejections > 0) s.ejections--;
      }
      this.successRate(cluster, t);
      for (const s of t.values()) {
        s.success = 0;
        s.total = 0;
      }
      if (changed) {
        cluster.refresh();
        this.onChange?.(cluster, this.ejectedCount(cluster));
      }
    }
  }

  private successRate(cluster: Cluster, t: Map<string, EndpointStats>): void {
    if (this.o.successRateMinimumHosts === 0) return;
    const busy = cluster.endpoints.filter((e) => (t.get(e.address)?.total ?? 0) >= this.o.successRateRequestVolume);
    if (busy.length < this.o.successRateMinimumHosts) return;
    const rates = busy.map((e) => {
      const s = t.get(e.address) as EndpointStats;
      return s.success / s.total;
    });
    const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
    const stdev = Math.sqrt(rates.reduce((a, r) => a + (r - mean) ** 2, 0) / rates.length);
    const threshold = mean - stdev * (this.o.successRateStdevFactor / 1000);
    busy.forEach((e, i) => {
      const s = t.get(e.address) as EndpointStats;
      if ((rates[i] as number) < threshold && s.ejectedUntil <= performance.now()) this.eject(cluster, e, s, 'success_rate');
    });
  }

  close(): void {
    clearInterval(this.timer);
  }
}

const GATEWAY = new Set([502, 503, 504]);

/**
 * The outbound layer that feeds the detector: every failed try and every response head.
 * Marks `hop.endpointEjected` when this hop's try got its endpoint ejected.
 */
export function outlierLayer(detector: OutlierDetector): Layer {
  const note = (hop: HopState, error: boolean, gateway: boolean): void => {
    const c = hop.cluster;
    const e = hop.endpoint;
    if (c === undefined || e === undefined) return;
    if (detector.record(c, e, error, gateway)) {
      hop.endpointEjected = true;
      hop.span.addEvent('mesh.endpoint.ejected', { [ATTR.meshEndpoint]: e.address });
    }
  };
  return {
    name: 'outlier-detection',
    onUpstreamFailure(hop: HopState, _f: UpstreamFailure) {
      note(hop, true, true);
      return false;
    },
    onResponse(hop) {
      note(hop, hop.status >= 500, GATEWAY.has(hop.status));
      return false;
    },
  };
}
