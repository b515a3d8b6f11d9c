// The circuit-breaker layer (outbound), Envoy's per-cluster thresholds: requests in flight
// (`max_requests`, default 1024) and requests waiting for an endpoint (`max_pending_requests`,
// 1024, enforced by the cluster's queue). Past a threshold the request is refused at once with
// 503 CIRCUIT_OPEN and `mesh.circuit.open` names the breaker; nothing waits. Retries in flight
// (`max_retries`) are the retry layer's.

import { MESH_ERROR } from '../../../common/semconv.ts';
import type { ClusterManager } from '../../balancer/cluster.ts';
import { ProxyError } from '../../errors.ts';
import type { Layer } from '../chain.ts';

export function breakerLayer(clusters: ClusterManager, maxRequests: number, onOpen?: (service: string, breaker: string) => void): Layer {
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
      c.active++;
      hop.cluster = c;
      hop.counted = true;
      return undefined;
    },
    onEnd(hop) {
      if (hop.counted && hop.cluster !== undefined) hop.cluster.active--;
    },
  };
}
