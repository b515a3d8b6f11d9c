// The route layer: decides which service (cluster) a request is for. This is the extension
// point for routing rules: an HTTPRoute / GRPCRoute matcher (issue 13, part B) replaces
// `resolve` with one that matches path, method, headers and query and may pick a weighted
// backend, rewrite the target or set per-route timeouts and retries on the hop, before the
// balance layer picks an endpoint of `hop.service`. Until then, outbound requests go to the
// service named by their Host (`b`, `b:80`, `b.ns.svc.cluster.local`, absolute form), and
// inbound ones to this sidecar's own service.

import { MESH_ERROR } from '../../../common/semconv.ts';
import { ProxyError } from '../../errors.ts';
import { serviceOfHost } from '../../proxy/headers.ts';
import type { Layer, Pending } from '../chain.ts';
import type { HopState } from '../hop.ts';

const NO_HOST = new ProxyError(MESH_ERROR.noEndpoint, 'the request names no service: send it with a Host header such as "Host: b"');

/** Resolves the destination of an outbound request; undefined to go on, the error to answer with, or PENDING (see Layer.onRequest). */
export type RouteResolver = (hop: HopState) => ProxyError | Pending | undefined;

/** Today's resolver: the service named by the request's host. */
export const hostRoute: RouteResolver = (hop) => {
  const service = serviceOfHost(hop.host);
  if (service === '') return NO_HOST;
  hop.service = service;
  return undefined;
};

export function outboundRouteLayer(resolve: RouteResolver = hostRoute): Layer {
  return { name: 'route', onRequest: resolve };
}

/**
 * Inbound: everything is for this sidecar's own service. A raw-TCP tunnel (`hop.appPort` set
 * by the codec from its CONNECT) must be for one of `opaquePorts` (--opaque-ports), else it is
 * refused: a peer must not reach any port of the pod it likes.
 */
export function inboundRouteLayer(service: string, opaquePorts: ReadonlySet<number> = NO_PORTS): Layer {
  return {
    name: 'route',
    onRequest(hop) {
      hop.service = service;
      const port = hop.appPort;
      if (port !== undefined && !opaquePorts.has(port)) {
        return new ProxyError(MESH_ERROR.portNotOpaque, `raw TCP to port ${port} refused: the port is not declared opaque on this sidecar (--opaque-ports ${[...opaquePorts].join(',') || '(none)'})`);
      }
      return undefined;
    },
  };
}

const NO_PORTS: ReadonlySet<number> = new Set();
