// Outbound listener (app → mesh): the app addresses a service by Host (or :authority); the
// outbound chain (sidecar/chain/stacks.ts) routes it and picks one of its endpoints (a peer
// sidecar's inbound port); the hop is recorded as a CLIENT span. The port speaks HTTP/1.1 and
// HTTP/2 with prior knowledge (h2c, what gRPC clients send): the first bytes of each
// connection decide (proxy/listener.ts). HTTP/1.1 goes to the raw-socket engine (sidecar/h1),
// HTTP/2 to node:http2.

import type { ProxyContext } from '../proxy/exchange.ts';
import { createProxyHandler } from '../proxy/handler.ts';
import { ProxyListener, type Http1Handoff } from '../proxy/listener.ts';

/** The outbound listener (h2c and HTTP/1.1 on one port); `ctx.scope.direction` must be `outbound`. Not yet listening. */
export function createOutboundListener(ctx: ProxyContext, http1: Http1Handoff): ProxyListener {
  return new ProxyListener({ handler: createProxyHandler(ctx), http1 });
}
