// The circuit-breaker layer (outbound), Envoy's per-cluster thresholds: requests in flight
// (`max_requests`, default 1024), upstream connections in use (`max_connections`, default
// 1024) and requests waiting for an endpoint (`max_pending_requests`, 1024, enforced by the
// cluster's queue). Past a threshold the request is refused at once with 503 CIRCUIT_OPEN and
// `mesh.circuit.open` names the breaker; nothing waits. Retries in flight (`max_retries`) are
// the retry layer's.
//
// Connections: an HTTP/1.1 request holds one upstream connection for as long as it is in
// flight (keep-alive reuses it afterwards), so a cluster's HTTP/1.1 requests in flight are its
// connections in use; HTTP/2 and gRPC requests share one multiplexed connection per endpoint
// (at most 4, see transport/h2-pool.ts) and are not counted. Envoy queues an HTTP/1.1 request
// that finds the cluster at max_connections until a connection frees; tracemesh refuses it at
// once, as Envoy does once its pending queue is full too.

import { MESH_ERROR } from '../../../common/semconv.ts';
import type { ClusterManager } from '../../balancer/cluster.ts';
import { ProxyError } from '../../errors.ts';
import type { Layer } from '../chain.ts';
import type { HopState } from '../hop.ts';

export interface BreakerOptions {
  /** `max_requests`: requests in flight per cluster. */
  readonly maxRequests: number;
  /** `max_connections`: upstream connections in use per cluster (HTTP/1.1 requests in flight). */
  readonly maxConnections: number;
  readonly onOpen?: ((service: string, breaker: string) => void) | undefined;
}

/** The hop holds an upstream connection of its own while in flight (HTTP/1.1, and every tunnel: WebSocket, upgrade, raw TCP). */
function ownConnection(hop: HopState): boolean {
  return hop.protocol !== 'h2' && hop.protocol !== 'grpc';
}

export function breakerLayer(clusters: ClusterManager, o: BreakerOptions): Layer {
  const { maxRequests, maxConnections, onOpen } = o;
  return {
    name: 'circuit-breaker',
    onRequest(hop) {
      const c = clusters.get(hop.service);
      if (c === undefined) return undefined;
      if (c.active >= maxRequests) {
        hop.circuitOpen = 'max_requests';
        onOpen?.(c.name, 'max_requests');
        return new ProxyError(MESH_ERROR.circuitOpen, `service "${c.name}" has ${c.active} requests in flight from this sidecar, the most its circuit breaker allows (--max-requests ${maxRequests}); the service is overloaded or slow`);
      }
      const conn = ownConnection(hop);
      if (conn && c.connectionsActive >= maxConnections) {
        hop.circuitOpen = 'max_connections';
        onOpen?.(c.name, 'max_connections');
        return new ProxyError(MESH_ERROR.circuitOpen, `service "${c.name}" has ${c.connectionsActive} HTTP/1.1 connections in use from this sidecar, the most its circuit breaker allows (--max-connections ${maxConnections}); the service is overloaded or slow`);
      }
      c.active++;
      if (conn) c.connectionsActive++;
      hop.cluster = c;
      hop.counted = true;
      return undefined;
    },
    onEnd(hop) {
      if (!hop.counted || hop.cluster === undefined) return;
      hop.cluster.active--;
      if (ownConnection(hop)) hop.cluster.connectionsActive--;
    },
  };
}
