// The HTTP/2 codec's forwarding: streams a request to one upstream and its response back
// (trailers included), with backpressure and a timeout. A try that fails before its response
// head goes to the chain (`onUpstreamFailure`), which retries it or lets it fail; every failure
// becomes a response in one place, failExchange() (a gRPC status for gRPC calls). The upstream
// is an HTTP/2 stream on a pooled mTLS connection to a peer sidecar, an HTTP/2 stream on a
// pooled h2c connection (the local app, or peers when mTLS is off), or, inbound only, HTTP/1.1
// to the local app (node:http Agent) for HTTP/2 callers of an HTTP/1.1 app. Event handlers are
// module-level functions that find their exchange through a symbol on the emitter, so a
// request costs no closures.

import { editObject } from '../routing/headers.ts';
import { request, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { constants as h2constants, type ClientHttp2Stream, type Http2ServerResponse, type IncomingHttpHeaders as H2IncomingHeaders, type IncomingHttpStatusHeader } from 'node:http2';
import { MESH_ERROR, MESH_ERROR_HEADER } from '../../common/semconv.ts';
import type { FailureKind } from '../chain/chain.ts';
import type { LocalReply } from '../chain/reply.ts';
import { EXPECTED_TIMEOUT_HEADER } from '../chain/hop.ts';
import type { Endpoint } from '../endpoints/endpoints.ts';
import { spanIdOfTraceresponse, TRACERESPONSE, traceresponseFor } from '../../common/trace-context.ts';
import { ProxyError, synthesizeResponse, upstreamError } from '../errors.ts';
import type { H2Pool } from '../transport/h2-pool.ts';
import type { DownstreamRequest, DownstreamResponse, Exchange } from './exchange.ts';
import { endGrpcSpan, synthesizeGrpcError } from './grpc.ts';
import { downstreamResponseHeaders } from './headers.ts';

const kExchange = Symbol('tracemesh.exchange');
interface Carrier {
  [kExchange]?: Exchange;
}

function exchangeOf(emitter: object): Exchange {
  return (emitter as Carrier)[kExchange] as Exchange;
}

function attach(emitter: object, ex: Exchange): void {
  (emitter as Carrier)[kExchange] = ex;
}

function ignore(): void {}

/**
 * Starts tracking an exchange. From here on the observers run exactly once, when the
 * downstream response closes (finished, synthesized, or abandoned by the client).
 */
export function beginExchange(ex: Exchange): void {
  ex.ctx.chain.start(ex);
  attach(ex.req, ex);
  attach(ex.res, ex);
  ex.req.on('error', ignore);
  ex.res.on('error', ignore);
  ex.res.on('close', onDownstreamClose);
}

/**
 * Sends the exchange's request to `ex.endpoint` with `ex.upstreamHeaders`, over
 * `ex.upstreamProtocol`, and relays the response.
 *
 * Timeout: the upstream must start answering (send response headers) within
 * `upstreamTimeoutMs`; the clock restarts on every request-body chunk and when the request
 * body ends, so a slow upload is not counted against the upstream. A stalled response body
 * is not timed out. gRPC calls are not timed by the proxy: a unary call's headers come with
 * its answer and a stream's with its first message, so "time to headers" is the call's whole
 * length; the client's deadline (`grpc-timeout`, forwarded) bounds it instead.
 *
 * Retries are the chain's (see `resendExchange`).
 */
export function forward(ex: Exchange): void {
  armTimer(ex);
  sendUpstream(ex);
  if (ex.hasBody && ex.error === undefined) {
    ex.req.on('data', onRequestData);
    ex.req.on('end', onRequestEnd);
  }
}

/** Sends the request (again) to `ex.endpoint`: the first time after it waited for an endpoint, or a retry. */
export function resendExchange(ex: Exchange): void {
  if (ex.ended || ex.error !== undefined) return;
  if (ex.upstream === undefined && ex.h2conn === undefined) {
    forward(ex);
    return;
  }
  ex.upstream = undefined;
  ex.upstreamRes = undefined;
  ex.h2conn = undefined;
  clearTimeout(ex.timer);
  armTimer(ex);
  sendUpstream(ex);
}

/** Starts the try's clock (not for gRPC, see forward()); outbound, its time left travels in the request. */
function armTimer(ex: Exchange): void {
  if (ex.grpc) return;
  const ms = ex.nextTryTimeout();
  ex.timer = setTimeout(onUpstreamTimeout, ms, ex);
  if (ex.direction === 'outbound' && ex.upstreamHeaders !== undefined) ex.upstreamHeaders[EXPECTED_TIMEOUT_HEADER] = String(ms);
}

/** A try failed before its response head: the chain retries it, or the exchange fails. */
function tryFailed(ex: Exchange, kind: FailureKind, error: ProxyError): void {
  clearTimeout(ex.timer);
  ex.timer = undefined;
  cancelUpstream(ex);
  if (ex.ctx.chain.onUpstreamFailure(ex, { kind, error })) return;
  failExchange(ex, error);
}

/**
 * Ends the exchange with a mesh failure: tears down the upstream, discards the rest of the
 * request body, and synthesizes the error response, or, if the response has already started,
 * cuts the downstream connection so the client sees the truncation. The first failure wins.
 */
export function failExchange(ex: Exchange, err: ProxyError): void {
  ex.error ??= err;
  clearTimeout(ex.timer);
  ex.timer = undefined;
  cancelUpstream(ex);
  const req: DownstreamRequest = ex.req;
  req.removeListener('data', onRequestData);
  req.removeListener('end', onRequestEnd);
  if (!req.complete) req.resume();
  const res = ex.res;
  if (res.destroyed || res.writableEnded) return;
  if (ex.grpc && ex.downstreamH2) {
    // A gRPC client is told with a status (trailers-only, or trailers after a started response).
    if (!res.headersSent) ex.status = 200;
    ex.grpcStatus = synthesizeGrpcError(res as Http2ServerResponse, ex.error, ex.ctx.hop, ex.span.spanContext().traceId);
    return;
  }
  if (res.headersSent) {
    // Cut the response so the client sees the truncation; towards an HTTP/2 peer with an
    // error code (a reset without one could read as a complete, short response).
    if (ex.downstreamH2) (res as Http2ServerResponse).stream.close(h2constants.NGHTTP2_INTERNAL_ERROR);
    else res.destroy();
    return;
  }
  ex.status = ex.error.status;
  // Keep the connection only if no unread request body is left on it.
  ex.bytesOut += synthesizeResponse(res, ex.error, ex.ctx.hop, ex.span.spanContext().traceId, ex.hasBody && !req.complete, traceresponseFor(ex.span.spanContext(), ex.trace));
}

/**
 * Answers with a layer's own response (a route's redirect): its status and headers, no body.
 * A gRPC caller gets the same HTTP answer (gRPC has no redirects; its client reports the status).
 */
export function replyExchange(ex: Exchange, r: LocalReply): void {
  clearTimeout(ex.timer);
  ex.timer = undefined;
  cancelUpstream(ex);
  const req: DownstreamRequest = ex.req;
  req.removeListener('data', onRequestData);
  req.removeListener('end', onRequestEnd);
  if (!req.complete) req.resume();
  const res = ex.res;
  if (res.destroyed || res.writableEnded || res.headersSent) return;
  const headers: Record<string, string | string[]> = { 'content-length': '0', [TRACERESPONSE]: traceresponseFor(ex.span.spanContext(), ex.trace) };
  for (const [name, value] of r.headers) {
    const lc = name.toLowerCase();
    const old = headers[lc];
    headers[lc] = old === undefined ? value : Array.isArray(old) ? [...old, value] : [old, value];
  }
  // Keep an HTTP/1.1 connection only if no unread request body is left on it.
  if (!ex.downstreamH2 && ex.hasBody && !req.complete) headers['connection'] = 'close';
  ex.status = r.status;
  if (ex.downstreamH2) (res as Http2ServerResponse).writeHead(r.status, headers);
  else (res as ServerResponse).writeHead(r.status, headers);
  res.end();
}

/** Names the upstream in error messages; only called on failure paths. */
function upstreamName(ex: Exchange): string {
  const at = ex.endpoint?.address ?? '';
  if (ex.direction === 'inbound') return `local app at ${at}`;
  const pod = ex.endpoint?.pod;
  return `endpoint ${at}${pod === undefined ? '' : ` (pod ${pod})`} of service "${ex.service}"`;
}

function sendUpstream(ex: Exchange): void {
  const protocol = ex.upstreamProtocol;
  if (protocol === 'h1') sendUpstreamH1(ex);
  else sendUpstreamH2(ex, (protocol === 'h2' ? ex.ctx.h2 : ex.ctx.h2c) as H2Pool);
}

function sendUpstreamH1(ex: Exchange): void {
  let up: ClientRequest;
  const ep = ex.endpoint as Endpoint;
  try {
    up = request({
      host: ep.host,
      port: ep.port,
      method: ex.method,
      path: ex.target,
      headers: ex.upstreamHeaders,
      agent: ex.ctx.agent,
    });
  } catch (err) {
    failExchange(ex, upstreamError(err, upstreamName(ex)));
    return;
  }
  attach(up, ex);
  ex.upstream = up;
  up.on('response', onUpstreamResponse);
  up.on('error', onUpstreamError);
  if (ex.hasBody) up.on('drain', onUpstreamDrain);
  else up.end();
}

/**
 * Opens a stream to the upstream on a pooled HTTP/2 connection: mTLS to a peer sidecar, or
 * h2c (the local app, or a peer when mTLS is off).
 */
function sendUpstreamH2(ex: Exchange, pool: H2Pool): void {
  const conn = pool.acquire(ex.endpoint as Endpoint);
  ex.h2conn = conn;
  // Only an mTLS connection is a "peer" (its identity and TLS facts go on the span and log).
  if (conn.tls) ex.peer = conn;
  ex.reused = conn.secure;
  let up: ClientHttp2Stream;
  try {
    up = pool.request(conn, ex.upstreamHeaders as OutgoingHttpHeaders, !ex.hasBody);
  } catch (err) {
    const connFailure = connectionFailure(ex, err);
    if (connFailure !== undefined) tryFailed(ex, 'connect', connFailure);
    else failExchange(ex, upstreamError(err, upstreamName(ex)));
    return;
  }
  attach(up, ex);
  ex.upstream = up;
  up.on('response', onH2Response);
  up.on('trailers', onH2Trailers);
  up.on('error', onH2Error);
  up.on('close', onH2Close);
  if (ex.hasBody) up.on('drain', onUpstreamDrain);
}

/** The failure of the HTTP/2 connection itself (refused, TLS), when that explains `err`. */
function connectionFailure(ex: Exchange, err: unknown): ProxyError | undefined {
  const conn = ex.h2conn;
  if (conn === undefined) return undefined;
  // mTLS connections name the peer sidecar themselves; h2c ones are named as the upstream.
  return conn.tls ? conn.failureFor(err) : conn.failureFor(err, upstreamName(ex));
}

function onRequestData(this: DownstreamRequest, chunk: Buffer): void {
  const ex = exchangeOf(this);
  ex.bytesIn += chunk.length;
  ex.timer?.refresh();
  ex.bodyStarted = true;
  const up = ex.upstream;
  if (up !== undefined && !up.write(chunk)) this.pause();
}

function onUpstreamDrain(this: ClientRequest | ClientHttp2Stream): void {
  const ex = exchangeOf(this);
  if (this === ex.upstream) ex.req.resume();
}

function onRequestEnd(this: DownstreamRequest): void {
  const ex = exchangeOf(this);
  ex.timer?.refresh();
  ex.upstream?.end();
}

function onUpstreamResponse(this: ClientRequest, upRes: IncomingMessage): void {
  const ex = exchangeOf(this);
  if (this !== ex.upstream || ex.error !== undefined || ex.downstreamAborted) {
    upRes.resume();
    return;
  }
  clearTimeout(ex.timer);
  ex.timer = undefined;
  ex.status = upRes.statusCode ?? 502;
  if (ex.ctx.chain.onResponse(ex)) {
    // Retried on this status (from a timer): drop this answer.
    ex.upstream = undefined;
    upRes.resume();
    this.destroy();
    return;
  }
  attach(upRes, ex);
  ex.upstreamRes = upRes;
  upRes.on('error', ignore);
  upRes.on('close', onUpstreamResponseClose);
  if (!relayHead(ex, upRes.statusCode ?? 502, upRes.statusMessage, upRes.headers)) return;
  upRes.on('data', onResponseData);
  upRes.on('end', onResponseEnd);
}

/** Writes the upstream's response head downstream; false (and the exchange failed) if it cannot be relayed. */
function relayHead(ex: Exchange, status: number, message: string | undefined, headers: IncomingHttpHeaders): boolean {
  try {
    const out = downstreamResponseHeaders(headers);
    // Trace Context Level 2: the span that served the request, unless the answer names one.
    out[TRACERESPONSE] ??= traceresponseFor(ex.span.spanContext(), ex.trace);
    const edits = ex.route?.responseHeaders;
    if (edits !== undefined && edits.length > 0) editObject(out, edits);
    // HTTP/2 has no reason phrase (RFC 9113 §8.3.2). The compatibility API is kept for HTTP/2
    // responses on purpose: it holds the stream open until the last write has completed (it
    // waits for trailers), whereas a bare stream that ends with its last DATA frame can close
    // before that write's callback, and node then builds an error object per response.
    if (ex.downstreamH2) (ex.res as Http2ServerResponse).writeHead(status, out);
    else (ex.res as ServerResponse).writeHead(status, message, out);
  } catch (err) {
    failExchange(ex, new ProxyError(MESH_ERROR.upstreamReset, `${upstreamName(ex)} sent a response head that cannot be relayed: ${(err as Error).message}`, { cause: err }));
    return false;
  }
  ex.status = status;
  const cl = headers['content-length'];
  if (cl !== undefined) ex.responseLength = Number(cl);
  ex.res.on('drain', onDownstreamDrain);
  return true;
}

function onResponseData(this: IncomingMessage | ClientHttp2Stream, chunk: Buffer): void {
  const ex = exchangeOf(this);
  ex.bytesOut += chunk.length;
  if (ex.status >= 500) ex.keepErrorBody(chunk);
  if (!(ex.res as NodeJS.WritableStream).write(chunk)) this.pause();
}

function onDownstreamDrain(this: DownstreamResponse): void {
  exchangeOf(this).upstreamRes?.resume();
}

function onResponseEnd(this: IncomingMessage | ClientHttp2Stream): void {
  const ex = exchangeOf(this);
  // HTTP/1.1 trailers (chunked responses) are known at the end; HTTP/2 ones came as an event.
  if (ex.upstreamProtocol === 'h1' && (this as IncomingMessage).rawTrailers.length > 0) relayTrailers(ex, (this as IncomingMessage).trailers);
  if (this === ex.upstream && ex.bytesOut < ex.responseLength && ex.method !== 'HEAD' && ex.status !== 204 && ex.status !== 304) {
    // An HTTP/2 stream that ends short of its content-length was cut (HTTP/1.1's parser
    // reports that itself, as an error).
    failExchange(ex, new ProxyError(MESH_ERROR.upstreamReset, `${upstreamName(ex)} ended the response after ${ex.bytesOut} of ${ex.responseLength} bytes`));
    return;
  }
  const req = ex.req;
  if (!req.complete) {
    // The upstream answered before reading the whole body (e.g. 413): it needs no more.
    req.removeListener('data', onRequestData);
    req.removeListener('end', onRequestEnd);
    req.resume();
    ex.upstream?.destroy();
  }
  ex.res.end();
}

function onUpstreamResponseClose(this: IncomingMessage): void {
  const ex = exchangeOf(this);
  if (this.complete || ex.downstreamAborted || ex.error !== undefined) return;
  failExchange(ex, new ProxyError(MESH_ERROR.upstreamReset, `${upstreamName(ex)} closed the connection in the middle of the response`));
}

function onUpstreamError(this: ClientRequest, err: Error): void {
  const ex = exchangeOf(this);
  if (this !== ex.upstream || ex.error !== undefined || ex.downstreamAborted || ex.upstreamRes !== undefined) return;
  const code = (err as NodeJS.ErrnoException).code;
  const error = upstreamError(err, upstreamName(ex));
  if (ex.res.headersSent) {
    failExchange(ex, error);
    return;
  }
  const kind: FailureKind = error.code === MESH_ERROR.connectionRefused ? 'connect' : this.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE') ? 'stale' : 'reset';
  tryFailed(ex, kind, error);
}

function onH2Response(this: ClientHttp2Stream, headers: H2IncomingHeaders & IncomingHttpStatusHeader, flags: number): void {
  const ex = exchangeOf(this);
  if (this !== ex.upstream || ex.error !== undefined || ex.downstreamAborted) {
    this.resume();
    return;
  }
  clearTimeout(ex.timer);
  ex.timer = undefined;
  const trailersOnly = ex.grpc && (flags & h2constants.NGHTTP2_FLAG_END_STREAM) !== 0;
  ex.status = headers[':status'] ?? 502;
  // Set on every answer: a retried try's mesh error must not stick to the next try's answer.
  const m = ex.status >= 500 ? headers[MESH_ERROR_HEADER] : undefined;
  ex.upstreamMeshError = typeof m === 'string' ? m : undefined;
  const t = headers[TRACERESPONSE];
  ex.upstreamSpanId = typeof t === 'string' ? spanIdOfTraceresponse(t) : undefined;
  if (trailersOnly) {
    const g = headers['grpc-status'];
    if (typeof g === 'string' && g !== '') ex.grpcStatus = Number(g);
  }
  if (ex.ctx.chain.onResponse(ex)) {
    // Retried on this status (from a timer): drop this answer.
    ex.upstream = undefined;
    this.close(h2constants.NGHTTP2_CANCEL);
    return;
  }
  ex.upstreamRes = this;
  if (trailersOnly && ex.downstreamH2) {
    relayTrailersOnly(ex, this, headers);
    return;
  }
  if (!relayHead(ex, headers[':status'] ?? 502, undefined, headers)) return;
  this.on('data', onResponseData);
  this.on('end', onResponseEnd);
}

/**
 * A gRPC trailers-only response (status and `grpc-status` in one HEADERS frame with
 * END_STREAM) goes downstream in the same shape: headers set without writeHead make the
 * compatibility API send them with END_STREAM. Sent as headers plus empty trailers instead,
 * a gRPC client would report "call ended without gRPC status".
 */
function relayTrailersOnly(ex: Exchange, up: ClientHttp2Stream, headers: H2IncomingHeaders & IncomingHttpStatusHeader): void {
  const res = ex.res as Http2ServerResponse;
  const status = headers[':status'] ?? 502;
  noteGrpcStatus(ex, headers);
  try {
    const out = downstreamResponseHeaders(headers);
    // Trace Context Level 2: the span that served the request, unless the answer names one.
    out[TRACERESPONSE] ??= traceresponseFor(ex.span.spanContext(), ex.trace);
    const edits = ex.route?.responseHeaders;
    if (edits !== undefined && edits.length > 0) editObject(out, edits);
    for (const name in out) res.setHeader(name, out[name] as string | string[]);
    res.statusCode = status;
  } catch (err) {
    failExchange(ex, new ProxyError(MESH_ERROR.upstreamReset, `${upstreamName(ex)} sent a response head that cannot be relayed: ${(err as Error).message}`, { cause: err }));
    return;
  }
  ex.status = status;
  res.end();
  // Read the (empty) body so the stream ends before it closes (see onH2Close).
  up.resume();
}

function onH2Trailers(this: ClientHttp2Stream, trailers: H2IncomingHeaders): void {
  const ex = exchangeOf(this);
  if (this !== ex.upstream || ex.error !== undefined || ex.downstreamAborted) return;
  relayTrailers(ex, trailers);
}

/** Passes the upstream's trailers on (gRPC's `grpc-status` and `grpc-message` live there). */
function relayTrailers(ex: Exchange, trailers: IncomingHttpHeaders): void {
  if (ex.grpc) noteGrpcStatus(ex, trailers);
  try {
    // An HTTP/1.1 client only gets them on a chunked response (node drops them otherwise).
    ex.res.addTrailers(downstreamResponseHeaders(trailers) as Record<string, string>);
  } catch {
    // A trailer that cannot be relayed is dropped; the response itself is intact.
  }
}

function noteGrpcStatus(ex: Exchange, headers: IncomingHttpHeaders): void {
  const status = headers['grpc-status'];
  if (typeof status === 'string' && status !== '') ex.grpcStatus = Number(status);
  const message = headers['grpc-message'];
  if (typeof message === 'string' && message !== '') ex.grpcMessage = message;
}

/** Node reports streams refused by the peer (RST_STREAM REFUSED_STREAM, or beyond a GOAWAY) with these. */
function refusedByPeer(stream: ClientHttp2Stream, code: unknown): boolean {
  return stream.rstCode === h2constants.NGHTTP2_REFUSED_STREAM || code === 'ERR_HTTP2_GOAWAY_SESSION';
}

function onH2Error(this: ClientHttp2Stream, err: Error): void {
  const ex = exchangeOf(this);
  if (this !== ex.upstream || ex.error !== undefined || ex.downstreamAborted) return;
  h2Failed(ex, this, err);
}

function onH2Close(this: ClientHttp2Stream): void {
  const ex = exchangeOf(this);
  if (this !== ex.upstream || ex.error !== undefined || ex.downstreamAborted || ex.ended) return;
  if (ex.upstreamRes === undefined) {
    h2Failed(ex, this, Object.assign(new Error(`stream closed before a response (RST_STREAM code ${this.rstCode ?? 0})`), { code: 'ERR_HTTP2_STREAM_ERROR' }));
  } else if (!this.readableEnded && !ex.res.writableEnded) {
    failExchange(ex, new ProxyError(MESH_ERROR.upstreamReset, `${upstreamName(ex)} reset the stream in the middle of the response`));
  }
}

function h2Failed(ex: Exchange, stream: ClientHttp2Stream, err: Error): void {
  if (ex.upstreamRes !== undefined) {
    failExchange(ex, new ProxyError(MESH_ERROR.upstreamReset, `${upstreamName(ex)} reset the stream in the middle of the response (${err.message})`, { cause: err }));
    return;
  }
  const connFailure = connectionFailure(ex, err);
  if (connFailure !== undefined) {
    tryFailed(ex, 'connect', connFailure);
    return;
  }
  const error = upstreamError(err, upstreamName(ex));
  if (ex.res.headersSent) {
    failExchange(ex, error);
    return;
  }
  const code = (err as NodeJS.ErrnoException).code;
  // The peer said it did not process the stream; or the connection, which had been up, died
  // (like a dead keep-alive socket on HTTP/1.1); or the stream broke after it was sent.
  const kind: FailureKind = refusedByPeer(stream, code)
    ? 'refused'
    : ex.reused && (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_HTTP2_SESSION_ERROR')
      ? 'stale'
      : error.code === MESH_ERROR.connectionRefused
        ? 'connect'
        : 'reset';
  tryFailed(ex, kind, error);
}

function onUpstreamTimeout(ex: Exchange): void {
  ex.timer = undefined;
  if (ex.ended || ex.error !== undefined || ex.upstreamRes !== undefined) return;
  tryFailed(ex, 'timeout', new ProxyError(MESH_ERROR.timeout, `${upstreamName(ex)} did not answer within ${ex.tryTimeoutMs} ms (${ex.timeoutFlag(ex.ctx.timeoutFlag)})`));
}

/** Tears down the upstream request; an HTTP/2 stream is reset with CANCEL, so the peer knows it was not completed. */
function cancelUpstream(ex: Exchange): void {
  const up = ex.upstream;
  if (ex.h2conn !== undefined) {
    const stream = up as ClientHttp2Stream | undefined;
    if (stream !== undefined && !stream.destroyed && !stream.closed) stream.close(h2constants.NGHTTP2_CANCEL);
    return;
  }
  if (up !== undefined && !up.destroyed) up.destroy();
  const upRes = ex.upstreamRes;
  if (upRes !== undefined && !upRes.destroyed) upRes.destroy();
}

/**
 * Whether the downstream response was delivered whole. An HTTP/2 stream that the peer reset
 * counts as finished for node's writable side; its reset code tells the truth.
 */
function downstreamCompleted(ex: Exchange, res: DownstreamResponse): boolean {
  if (!res.writableFinished) return false;
  if (!ex.downstreamH2) return true;
  const rst = (res as Http2ServerResponse).stream.rstCode;
  return rst === undefined || rst === h2constants.NGHTTP2_NO_ERROR;
}

function onDownstreamClose(this: DownstreamResponse): void {
  const ex = exchangeOf(this);
  if (!downstreamCompleted(ex, this) && ex.error === undefined) {
    ex.downstreamAborted = true;
    cancelUpstream(ex);
  }
  endExchange(ex);
}

function endExchange(ex: Exchange): void {
  if (ex.ended) return;
  clearTimeout(ex.timer);
  ex.timer = undefined;
  if (ex.grpc) endGrpcSpan(ex);
  ex.ctx.chain.end(ex);
}
