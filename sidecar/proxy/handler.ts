// The per-request pipeline both listeners share: read the target and trace context, start
// the hop's span, route, rewrite headers, forward. Direction-specific parts come in as a route.

import { randomUUID } from 'node:crypto';
import type { Http2ServerRequest } from 'node:http2';
import { extractTraceContext, formatTraceparent } from '../../common/trace-context.ts';
import type { PickResult } from '../balancer/picker.ts';
import { startExchangeSpan } from '../telemetry/spans.ts';
import { Exchange, type DownstreamRequest, type DownstreamResponse, type ProxyContext, type UpstreamProtocol } from './exchange.ts';
import { beginExchange, failExchange, forward } from './forward.ts';
import { isGrpcContentType, startGrpcSpan } from './grpc.ts';
import {
  absoluteForm,
  CLIENT_CERT_HEADER,
  ORIG_PROTO_H2,
  ORIG_PROTO_HEADER,
  REQUEST_ID_HEADER,
  SOURCE_WORKLOAD_HEADER,
  serviceOfHost,
  splitAuthority,
  upstreamRequestHeaders,
} from './headers.ts';

/**
 * Chooses the upstream for a request to `service`. Synchronous; never throws. It may record
 * what it learned on the exchange (peer identity, policy decision) for the span and log.
 */
export type Route = (service: string, ex: Exchange) => PickResult;

/** The listener both node:http and node:http2 (compat API) servers call. */
export type ProxyHandler = (req: DownstreamRequest, res: DownstreamResponse) => void;

const WORKLOAD_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

/**
 * The protocol of the hop upstream. Outbound: HTTP/2 over mTLS whenever mTLS is on; without
 * mTLS, h2c for what the app sent over HTTP/2 (gRPC included) and HTTP/1.1 for the rest.
 * Inbound (to the app), by `--app-protocol`: `auto` sends gRPC, requests the calling app made
 * over HTTP/2 (told by the outbound sidecar's x-tracemesh-orig-proto) and h2c from a plaintext
 * client as h2c, the rest as HTTP/1.1.
 */
function upstreamProtocol(ctx: ProxyContext, ex: Exchange): UpstreamProtocol {
  if (ctx.direction === 'outbound') {
    if (ctx.h2 !== undefined) return 'h2';
    return ex.downstreamH2 && ctx.h2c !== undefined ? 'h2c' : 'h1';
  }
  if (ctx.h2c === undefined) return 'h1';
  const mode = ctx.appProtocol ?? 'auto';
  if (mode !== 'auto') return mode === 'h2c' ? 'h2c' : 'h1';
  if (!ex.downstreamH2) return 'h1';
  if (ex.grpc || ex.tlsMode !== 'mtls' || ex.req.headers[ORIG_PROTO_HEADER] === ORIG_PROTO_H2) return 'h2c';
  return 'h1';
}

/**
 * Builds the request listener for one direction. Outbound: the destination service is the
 * request's host (`Host: b`, `b:80`, `b.ns.svc.cluster.local`, or an absolute-form URL) and
 * `x-request-id` is minted when missing. Inbound: the destination is this sidecar's service.
 */
export function createProxyHandler(ctx: ProxyContext, route: Route): ProxyHandler {
  const outbound = ctx.direction === 'outbound';
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
    const path = pathEnd === -1 ? target : target.slice(0, pathEnd);
    const span = startExchangeSpan(ctx.tracer, {
      direction: ctx.direction,
      req,
      method,
      path,
      service,
      serverAddress: host,
      serverPort: port ?? 80,
      requestId,
      trace,
    });
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    const hasBody = h2Downstream ? !(req as Http2ServerRequest).stream.endAfterHeaders : te !== undefined || (cl !== undefined && cl !== '0');
    // gRPC needs HTTP/2 end to end; only an HTTP/2 request can be a gRPC call.
    const grpc = h2Downstream && isGrpcContentType(headers['content-type']);
    if (grpc) startGrpcSpan(span, path);
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
      grpc,
    });
    beginExchange(ex);

    const pick = route(service, ex);
    if (pick.kind === 'fail') {
      failExchange(ex, pick.error);
      return;
    }
    const endpoint = pick.endpoint;
    if (outbound) ex.endpoint = endpoint;

    const protocol = upstreamProtocol(ctx, ex);
    ex.upstreamProtocol = protocol;
    const h2Upstream = protocol !== 'h1';
    const out = upstreamRequestHeaders(headers, h2Upstream);
    if (h2Upstream) {
      out[':method'] = method;
      out[':path'] = ex.target;
      out[':scheme'] = protocol === 'h2' ? 'https' : 'http';
      out[':authority'] = authority === '' ? service : authority;
      // The one TE value HTTP/2 allows (RFC 9113 §8.2.2); gRPC servers may check for it.
      const teValue = headers.te;
      if (teValue !== undefined && teValue.includes('trailers')) out.te = 'trailers';
    } else if (absolute || h2Downstream) {
      // RFC 9112 §3.2.2: an absolute-form target overrides Host; from HTTP/2, Host is :authority.
      out.host = authority;
    }
    const sc = span.spanContext();
    out.traceparent = formatTraceparent(sc.traceId, sc.spanId, sc.traceFlags);
    const ts = trace.kind === 'found' ? trace.context.traceState : undefined;
    if (ts !== undefined) out.tracestate = ts;
    out[REQUEST_ID_HEADER] = requestId;
    if (outbound) {
      out[SOURCE_WORKLOAD_HEADER] = ctx.hop.service;
      if (h2Downstream) out[ORIG_PROTO_HEADER] = ORIG_PROTO_H2;
    } else if (ex.tlsMode === 'mtls' && ex.peerIdentity !== undefined) {
      const self = ctx.localIdentity?.();
      if (self !== undefined) out[CLIENT_CERT_HEADER] = `By=${self};URI=${ex.peerIdentity}`;
    }
    forward(ex, endpoint, out);
  };
}
