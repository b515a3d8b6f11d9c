// The per-request pipeline both listeners share: read the target and trace context, start
// the hop's span, route, rewrite headers, forward. Direction-specific parts come in as a route.

import { randomUUID } from 'node:crypto';
import type { Http2ServerRequest } from 'node:http2';
import { extractTraceContext, formatTraceparent } from '../../common/trace-context.ts';
import type { PickResult } from '../balancer/picker.ts';
import { startExchangeSpan } from '../telemetry/spans.ts';
import { Exchange, type DownstreamRequest, type DownstreamResponse, type ProxyContext } from './exchange.ts';
import { beginExchange, failExchange, forward } from './forward.ts';
import { CLIENT_CERT_HEADER, REQUEST_ID_HEADER, SOURCE_WORKLOAD_HEADER, serviceOfHost, splitAuthority, upstreamRequestHeaders } from './headers.ts';

/**
 * Chooses the upstream for a request to `service`. Synchronous; never throws. It may record
 * what it learned on the exchange (peer identity, policy decision) for the span and log.
 */
export type Route = (service: string, ex: Exchange) => PickResult;

/** The listener both node:http and node:http2 (compat API) servers call. */
export type ProxyHandler = (req: DownstreamRequest, res: DownstreamResponse) => void;

const WORKLOAD_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

/** Absolute-form targets (`GET http://b/x`) come from apps that use the sidecar as an HTTP proxy. */
function absoluteForm(url: string): { authority: string; target: string } | undefined {
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:') return undefined;
    return { authority: u.host, target: u.pathname + u.search };
  } catch {
    return undefined;
  }
}

/**
 * Builds the request listener for one direction. Outbound: the destination service is the
 * request's host (`Host: b`, `b:80`, `b.ns.svc.cluster.local`, or an absolute-form URL) and
 * `x-request-id` is minted when missing. Inbound: the destination is this sidecar's service.
 */
export function createProxyHandler(ctx: ProxyContext, route: Route): ProxyHandler {
  const outbound = ctx.direction === 'outbound';
  const h2Upstream = ctx.h2 !== undefined;
  return function handle(req: DownstreamRequest, res: DownstreamResponse): void {
    const startMs = performance.now();
    const headers = req.headers;
    const method = req.method ?? 'GET';
    const h2Downstream = req.httpVersionMajor === 2;
    let target = req.url ?? '/';
    let authority = (h2Downstream ? headers[':authority'] : headers.host) ?? '';
    if (typeof authority !== 'string') authority = '';
    let absolute = false;
    if (target.charCodeAt(0) !== 0x2f /* '/' */ && target !== '*') {
      const abs = absoluteForm(target);
      if (abs !== undefined) {
        authority = abs.authority;
        target = abs.target;
        absolute = true;
      }
    }
    const { host, port } = splitAuthority(authority);
    const service = outbound ? serviceOfHost(host) : ctx.hop.service;
    const trace = extractTraceContext(headers);
    const rid = headers[REQUEST_ID_HEADER];
    const requestId = typeof rid === 'string' && rid !== '' ? rid : randomUUID();
    let sourceWorkload = ctx.hop.service;
    if (!outbound) {
      const src = headers[SOURCE_WORKLOAD_HEADER];
      sourceWorkload = typeof src === 'string' && WORKLOAD_NAME.test(src) ? src : 'unknown';
    }
    const pathEnd = target.indexOf('?');
    const span = startExchangeSpan(ctx.tracer, {
      direction: ctx.direction,
      req,
      method,
      path: pathEnd === -1 ? target : target.slice(0, pathEnd),
      service,
      serverAddress: host,
      serverPort: port ?? 80,
      requestId,
      trace,
    });
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    const hasBody = h2Downstream ? !(req as Http2ServerRequest).stream.endAfterHeaders : te !== undefined || (cl !== undefined && cl !== '0');
    const ex = new Exchange(ctx, req, res, {
      startMs,
      method,
      target,
      service,
      serverAddress: host,
      serverPort: port ?? 80,
      requestId,
      sourceWorkload,
      trace,
      span,
      hasBody,
    });
    beginExchange(ex);

    const pick = route(service, ex);
    if (pick.kind === 'fail') {
      failExchange(ex, pick.error);
      return;
    }
    const endpoint = pick.endpoint;
    if (outbound) ex.endpoint = endpoint;

    const out = upstreamRequestHeaders(headers, h2Upstream);
    if (h2Upstream) {
      out[':method'] = method;
      out[':path'] = ex.target;
      out[':scheme'] = 'https';
      out[':authority'] = authority === '' ? service : authority;
    } else if (absolute || h2Downstream) {
      // RFC 9112 §3.2.2: an absolute-form target overrides Host; from HTTP/2, Host is :authority.
      out.host = authority;
    }
    const sc = span.spanContext();
    out.traceparent = formatTraceparent(sc.traceId, sc.spanId, sc.traceFlags);
    const ts = trace.kind === 'found' ? trace.context.traceState : undefined;
    if (ts !== undefined) out.tracestate = ts;
    out[REQUEST_ID_HEADER] = requestId;
    if (outbound) out[SOURCE_WORKLOAD_HEADER] = ctx.hop.service;
    else if (ex.tlsMode === 'mtls' && ex.peerIdentity !== undefined) {
      const self = ctx.localIdentity?.();
      if (self !== undefined) out[CLIENT_CERT_HEADER] = `By=${self};URI=${ex.peerIdentity}`;
    }
    forward(ex, endpoint.host, endpoint.port, out);
  };
}
