// Inbound listener (mesh → local app): every request goes to the app on 127.0.0.1:<app-port>;
// the hop is recorded as a SERVER span whose context the app receives as its parent.

import type { Server } from 'node:http';
import type { PickResult } from '../balancer/picker.ts';
import type { ProxyContext } from '../proxy/exchange.ts';
import { createProxyHandler } from '../proxy/handler.ts';
import { createProxyServer } from '../proxy/server.ts';

/** The inbound server; `ctx.direction` must be `inbound`. Not yet listening. */
export function createInboundServer(ctx: ProxyContext, appPort: number, appHost = '127.0.0.1'): Server {
  const local: PickResult = {
    kind: 'complete',
    endpoint: { address: `${appHost}:${appPort}`, host: appHost, port: appPort, pod: undefined, node: undefined, namespace: undefined },
  };
  return createProxyServer(createProxyHandler(ctx, () => local));
}
