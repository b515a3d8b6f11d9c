// The HTTP/2 codec's request entry (node:http2 compatibility API, and node:http for HTTP/1.1
// callers of an h2c-only app): read the target and trace context, start the hop's span, ask
// the chain where the request goes, rewrite headers, forward. The mesh's decisions are the
// chain's (sidecar/chain/stacks.ts); what is left here is framing.

import { editObject } from '../routing/headers.ts';
import { randomUUID } from 'node:crypto';
import type { Http2ServerRequest } from 'node:http2';
import { extractTraceContext, formatTraceparent, propagatedTraceFlags } from '../../common/trace-context.ts';
import { PENDING } from '../chain/chain.ts';
import { LocalReply } from '../chain/reply.ts';
import { EXPECTED_TIMEOUT_HEADER, inboundTimeout } from '../chain/hop.ts';
import { startExchangeSpan } from '../telemetry/spans.ts';
import { Exchange, type DownstreamRequest, type DownstreamResponse, type ProxyContext, type UpstreamProtocol } from './exchange.ts';
import { beginExchange, failExchange, forward, replyExchange } from './forward.ts';
import { isGrpcContentType, startGrpcSpan } from './grpc.ts';
import {
  absoluteForm,
  CLIENT_CERT_HEADER,
  ORIG_PROTO_H2,
  ORIG_PROTO_HEADER,
  REQUEST_ID_HEADER,
  SOURCE_WORKLOAD_HEADER,
  splitAuthority,
  upstreamRequestHeaders,
} from './headers.ts';

/** The listener both node:http and node:http2 (compat API) servers call. */
export type ProxyHandler = (req: DownstreamRequest, res: DownstreamResponse) => void;

const WORKLOAD_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

/**
 * The protocol of the hop upstream. Outbound (only HTTP/2 reaches this codec; HTTP/1.1 goes to
 * sidecar/h1): HTTP/2 over mTLS whenever mTLS is on, h2c otherwise. Inbound (to the app), by
 * `--app-protocol`: `auto` sends gRPC, requests the calling app made over HTTP/2 (told by the
 * outbound sidecar's x-tracemesh-orig-proto) and h2c from a plaintext client as h2c, the rest
 * as HTTP/1.1.
 */
function upstreamProtocol(ctx: ProxyContext, ex: Exchange): UpstreamProtocol {
  if (ctx.scope.direction === 'outbound') return ctx.h2 !== undefined ? 'h2' : 'h2c';
  if (ctx.h2c === undefined) return 'h1';
  const mode = ctx.appProtocol ?? 'auto';
  if (mode !== 'auto') return mode === 'h2c' ? 'h2c' : 'h1';
  if (!ex.downstreamH2) return 'h1';
  if (ex.grpc || ex.tlsMode !== 'mtls' || ex.req.headers[ORIG_PROTO_HEADER] === ORIG_PROTO_H2) return 'h2c';
  return 'h1';
}

/**
 * Builds the request listener for one direction. `x-request-id` is minted when missing; the
 * outbound destination is the chain's route layer's (by default the request's host).
 */
export function createProxyHandler(ctx: ProxyContext): ProxyHandler {
  const outbound = ctx.scope.direction === 'outbound';
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
      direction: ctx.scope.direction,
      req,
      method,
      path,
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
    const ex = new Exchange(
      ctx,
      req,
      res,
      { startMs, protocol: grpc ? 'grpc' : h2Downstream ? 'h2' : req.httpVersionMinor === 0 ? 'http/1.0' : 'http/1.1', method, target, authority, host, requestId, sourceWorkload, trace, span },
      { serverPort: port ?? 80, hasBody, grpc },
    );
    ex.timeoutMs = outbound ? ctx.upstreamTimeoutMs : inboundTimeout(ctx.upstreamTimeoutMs, typeof headers[EXPECTED_TIMEOUT_HEADER] === 'string' ? headers[EXPECTED_TIMEOUT_HEADER] : undefined);
    ex.perTryTimeoutMs = ctx.perTryTimeoutMs ?? 0;
    beginExchange(ex);

    const decision = ctx.chain.request(ex);
    if (decision instanceof LocalReply) {
      replyExchange(ex, decision);
      return;
    }
    if (decision !== undefined && decision !== PENDING) {
      failExchange(ex, decision);
      return;
    }

    const protocol = upstreamProtocol(ctx, ex);
    ex.upstreamProtocol = protocol;
    const h2Upstream = protocol !== 'h1';
    const out = upstreamRequestHeaders(headers, h2Upstream);
    if (h2Upstream) {
      out[':method'] = method;
      out[':path'] = ex.target;
      out[':scheme'] = protocol === 'h2' ? 'https' : 'http';
      out[':authority'] = authority === '' ? ex.service : authority;
      // The one TE value HTTP/2 allows (RFC 9113 §8.2.2); gRPC servers may check for it.
      const teValue = headers.te;
      if (teValue !== undefined && teValue.includes('trailers')) out.te = 'trailers';
    } else if (absolute || h2Downstream) {
      // RFC 9112 §3.2.2: an absolute-form target overrides Host; from HTTP/2, Host is :authority.
      out.host = authority;
    }
    const sc = span.spanContext();
    out.traceparent = formatTraceparent(sc.traceId, sc.spanId, propagatedTraceFlags(trace, sc.traceFlags));
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
    const route = ex.route;
    if (route !== undefined) {
      editObject(out, route.requestHeaders);
      if (route.authority !== undefined) {
        if (h2Upstream) out[':authority'] = route.authority;
        else out.host = route.authority;
      }
    }
    ex.upstreamHeaders = out;
    // Queued for an endpoint: the chain calls ex.resend() (→ forward) once it has one.
    if (decision !== PENDING) forward(ex);
  };
}
