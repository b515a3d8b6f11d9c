// Outbound listener (app → mesh): the app addresses a service by Host (or :authority); the
// balancer picks one of its endpoints (a peer sidecar's inbound port); the hop is recorded as
// a CLIENT span. The port speaks HTTP/1.1 and HTTP/2 with prior knowledge (h2c, what gRPC
// clients send): the first bytes of each connection decide (proxy/listener.ts).

import { MESH_ERROR } from '../../common/semconv.ts';
import type { Balancer } from '../balancer/balancer.ts';
import type { PickResult } from '../balancer/picker.ts';
import { ProxyError } from '../errors.ts';
import type { ProxyContext } from '../proxy/exchange.ts';
import { createProxyHandler, type ProxyHandler } from '../proxy/handler.ts';
import { ProxyListener, type Http1Handoff } from '../proxy/listener.ts';

const NO_HOST: PickResult = {
  kind: 'fail',
  error: new ProxyError(MESH_ERROR.noEndpoint, 'the request names no service: send it with a Host header such as "Host: b"'),
};

/** The outbound request handler (HTTP/2 requests, and HTTP/1.1 ones on node:http); `ctx.direction` must be `outbound`. */
export function createOutboundHandler(ctx: ProxyContext, balancer: Balancer): ProxyHandler {
  return createProxyHandler(ctx, (service) => (service === '' ? NO_HOST : balancer.picker.pick(service)));
}

export interface OutboundListenerOptions {
  /**
   * Takes the connections that are not HTTP/2 (HTTP/1.1). Default: a node:http server running
   * the outbound handler. This is the seam for another HTTP/1.1 engine.
   */
  readonly http1?: Http1Handoff | undefined;
}

/** The outbound listener (h2c and HTTP/1.1 on one port); `ctx.direction` must be `outbound`. Not yet listening. */
export function createOutboundListener(ctx: ProxyContext, balancer: Balancer, options: OutboundListenerOptions = {}): ProxyListener {
  return new ProxyListener({ handler: createOutboundHandler(ctx, balancer), http1: options.http1 });
}
