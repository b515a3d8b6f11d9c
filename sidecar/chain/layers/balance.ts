// The balance layer: picks the endpoint. Outbound: the cluster of `hop.service` (its
// LoadBalancer's current picker); a cluster without endpoints yet queues the request; an
// unknown service is refused with NO_ENDPOINT. Inbound: always the local app. The pick's call
// tracker sees every try end (failed ones here, the last one in onEnd), which feeds the
// latency- and load-aware policies.

import { MESH_ERROR } from '../../../common/semconv.ts';
import type { ClusterManager } from '../../balancer/cluster.ts';
import type { Endpoint } from '../../endpoints/endpoints.ts';
import { ProxyError } from '../../errors.ts';
import type { Layer } from '../chain.ts';
import type { HopState } from '../hop.ts';

function unknownService(service: string): ProxyError {
  return new ProxyError(MESH_ERROR.noEndpoint, `service "${service}" is unknown to this sidecar; check the Host header and the endpoints file`);
}

/** Ends the current try's call tracker, once. */
export function endTry(hop: HopState, ok: boolean): void {
  const t = hop.tracker;
  if (t === undefined) return;
  hop.tracker = undefined;
  t.onCallEnded(performance.now() - hop.tryStartMs, ok);
}

/** Starts the tracker of the endpoint just picked (a first try or a retry). */
export function startTry(hop: HopState): void {
  hop.tryStartMs = performance.now();
  hop.tracker?.onCallStarted();
}

export function outboundBalanceLayer(clusters: ClusterManager): Layer {
  return {
    name: 'balance',
    onRequest(hop) {
      const cluster = clusters.get(hop.service);
      if (cluster === undefined) return unknownService(hop.service);
      hop.cluster = cluster;
      const r = cluster.pickFor(hop);
      if (r === undefined) startTry(hop);
      return r;
    },
    onUpstreamFailure(hop) {
      endTry(hop, false);
      return false;
    },
    onEnd(hop) {
      hop.cluster?.dequeue(hop);
      endTry(hop, hop.error === undefined && hop.status < 500 && !hop.downstreamAborted);
    },
  };
}

function localEndpoint(host: string, port: number): Endpoint {
  return { address: `${host}:${port}`, host, port, pod: undefined, node: undefined, namespace: undefined, zone: undefined, weight: 1, identity: undefined };
}

/** Inbound: the local app at `host:port` (a raw-TCP tunnel: the app on the tunnel's port). */
export function inboundBalanceLayer(host: string, port: number): Layer {
  const local = localEndpoint(host, port);
  return {
    name: 'balance',
    onRequest(hop) {
      hop.endpoint = hop.appPort === undefined || hop.appPort === port ? local : localEndpoint(host, hop.appPort);
      hop.tryStartMs = hop.startMs;
      return undefined;
    },
  };
}
