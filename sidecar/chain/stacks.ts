// The one place where the inbound and outbound chains are assembled, layer by layer, in the
// order their hooks run. A new behaviour is one layer module plus one line here:
//
//   outbound (app → mesh):  [concurrency] → route → circuit-breaker → connection-retry → outlier-detection → balance → retry → fault-delay → telemetry
//   inbound  (mesh → app):  [concurrency] → route → authorize → connection-retry → balance → telemetry
//
// Every codec of a direction (HTTP/1.1, HTTP/2, gRPC, WebSocket and other upgrades, raw TCP)
// runs the same chain. The order matters where hooks meet: a dead keep-alive connection is retried
// (connection-retry) before outlier detection or the balancer count it against the endpoint;
// outlier detection sees a failed try before the retry layer picks again, so an ejection
// already steers the retry.

import type { ClusterManager } from '../balancer/cluster.ts';
import type { InboundPolicy } from '../inbound/authorization.ts';
import { outlierLayer, type OutlierDetector } from '../resilience/outlier.ts';
import type { HopObserver } from '../telemetry/hop.ts';
import { Chain, type Layer } from './chain.ts';
import { authorizeLayer } from './layers/authorize.ts';
import { inboundBalanceLayer, outboundBalanceLayer } from './layers/balance.ts';
import { breakerLayer } from './layers/breaker.ts';
import { connectionRetryLayer, retryLayer, type RetryOptions } from './layers/retry.ts';
import { inboundRouteLayer, outboundRouteLayer } from './layers/route.ts';
import { faultDelayLayer, routeLayer, type RouteLayerOptions } from '../routing/layer.ts';
import { telemetryLayer, type InFlight } from './layers/telemetry.ts';

export interface OutboundStackDeps {
  readonly clusters: ClusterManager;
  readonly observers: readonly HopObserver[];
  readonly inFlight: InFlight;
  /** HTTPRoute / GRPCRoute matching (sidecar/routing/); default: the service named by the Host. */
  readonly routes?: RouteLayerOptions;
  /** The --max-concurrent-requests layer (sidecar/limits/), first of all. */
  readonly concurrency?: Layer;
  /** Circuit breaker `max_requests`; default 1024. */
  readonly maxRequests?: number;
  /** Circuit breaker `max_connections` (HTTP/1.1 connections in use); default 1024. */
  readonly maxConnections?: number;
  /** Policy retries (the sidecar's flags and the route rules' `retry`); none without. */
  readonly retry?: RetryOptions | undefined;
  /** Outlier detection; none without. */
  readonly outliers?: OutlierDetector | undefined;
  readonly onCircuitOpen?: (service: string, breaker: string) => void;
}

export function outboundStack(d: OutboundStackDeps): Chain {
  const layers: Layer[] = [
    ...(d.concurrency !== undefined ? [d.concurrency] : []),
    d.routes === undefined ? outboundRouteLayer() : routeLayer(d.routes),
    breakerLayer(d.clusters, { maxRequests: d.maxRequests ?? 1024, maxConnections: d.maxConnections ?? 1024, onOpen: d.onCircuitOpen }),
    connectionRetryLayer(),
    ...(d.outliers === undefined ? [] : [outlierLayer(d.outliers)]),
    outboundBalanceLayer(d.clusters),
    ...(d.retry === undefined ? [] : [retryLayer(d.retry)]),
    faultDelayLayer(),
    telemetryLayer(d.observers, d.inFlight),
  ];
  return new Chain(layers);
}

export interface InboundStackDeps {
  readonly service: string;
  readonly policy: InboundPolicy;
  /** The sidecar has mTLS on. */
  readonly mtls: boolean;
  readonly appHost: string;
  readonly appPort: number;
  readonly observers: readonly HopObserver[];
  readonly inFlight: InFlight;
  readonly concurrency?: Layer;
  /** App ports that raw-TCP tunnels may reach (--opaque-ports); none by default. */
  readonly opaquePorts?: ReadonlySet<number>;
}

export function inboundStack(d: InboundStackDeps): Chain {
  const layers: Layer[] = [
    ...(d.concurrency !== undefined ? [d.concurrency] : []),
    inboundRouteLayer(d.service, d.opaquePorts),
    authorizeLayer(d.policy, d.mtls, d.appPort),
    connectionRetryLayer(),
    inboundBalanceLayer(d.appHost, d.appPort),
    telemetryLayer(d.observers, d.inFlight),
  ];
  return new Chain(layers);
}
