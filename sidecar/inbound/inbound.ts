// Inbound listener (mesh → local app), plaintext only (mTLS off; with mTLS on the mesh
// inbound listener in transport/ takes the port): every request goes to the app on
// 127.0.0.1:<app-port> after the inbound chain's security layer (sidecar/chain/layers/
// authorize.ts); the hop is recorded as a SERVER span whose context the app receives as its
// parent.

import type { ProxyContext } from '../proxy/exchange.ts';
import { createProxyHandler } from '../proxy/handler.ts';
import { ProxyListener, type Http1Handoff } from '../proxy/listener.ts';

/**
 * The plaintext-only inbound listener (mTLS off): h2c (from peers carrying HTTP/2 and gRPC) and
 * HTTP/1.1 on one port; `ctx.scope.direction` must be `inbound`. `http1` takes the HTTP/1.1
 * connections; without it a node:http server runs the handler (`--app-protocol h2c`, where
 * HTTP/1.1 callers are converted to h2c). Not yet listening.
 */
export function createInboundListener(ctx: ProxyContext, http1?: Http1Handoff): ProxyListener {
  return new ProxyListener({ handler: createProxyHandler(ctx), http1 });
}
