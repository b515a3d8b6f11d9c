// Outbound listener (app → mesh): the app addresses a service by Host; the balancer picks one
// of its endpoints (a peer sidecar's inbound port); the hop is recorded as a CLIENT span.

import type { Server } from 'node:http';
import { MESH_ERROR } from '../../common/semconv.ts';
import type { Balancer } from '../balancer/balancer.ts';
import type { PickResult } from '../balancer/picker.ts';
import { ProxyError } from '../errors.ts';
import type { ProxyContext } from '../proxy/exchange.ts';
import { createProxyHandler } from '../proxy/handler.ts';
import { createProxyServer } from '../proxy/server.ts';

const NO_HOST: PickResult = {
  kind: 'fail',
  error: new ProxyError(MESH_ERROR.noEndpoint, 'the request names no service: send it with a Host header such as "Host: b"'),
};

/** The outbound server; `ctx.direction` must be `outbound`. Not yet listening. */
export function createOutboundServer(ctx: ProxyContext, balancer: Balancer): Server {
  return createProxyServer(createProxyHandler(ctx, (service) => (service === '' ? NO_HOST : balancer.picker.pick(service))));
}
