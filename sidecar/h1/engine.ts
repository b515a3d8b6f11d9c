// The HTTP/1.1 engine: proxies requests on raw sockets. It parses each request head
// (sidecar/h1/parse.ts), starts the hop's span, routes, rewrites the hop-by-hop and trace
// headers, and relays the body and the response byte for byte over a pooled keep-alive
// connection (sidecar/h1/pool.ts): to a peer sidecar (mTLS) on the outbound side, to the local
// app on the inbound side. Why not node:http: see parse.ts.
//
// The engine is a codec: the mesh's decisions (route, authorize, pick, retry, telemetry) are
// the policy chain's (sidecar/chain/), asked at these points:
// - a request head was read → `chain.request(ex)`: send to `ex.endpoint`, answer with an
//   error, or wait (the chain calls `ex.resend()` / `ex.reject()` later);
// - a try failed before its response head → `chain.onUpstreamFailure(ex, failure)`: the
//   chain retries (`ex.resend()`) or the engine answers with the error;
// - the response head arrived → `chain.onResponse(ex)`; the exchange ended → `chain.end(ex)`.
// Failures become a synthesized JSON response when no response byte was sent yet, or a cut
// connection otherwise, in one place: fail(). The upstream must start its response within
// `--upstream-timeout`; the clock restarts on every request-body chunk.
// One request at a time per downstream connection: a pipelined request waits, unread, until
// the response before it is complete.
//
// Tunnels (sidecar/README.md, "WebSocket, upgrades and raw TCP"): a request with `Upgrade`
// (WebSocket and any other protocol but h2c) goes through the chain like any request and is
// sent on with its Upgrade; a 101 answer turns both connections into a byte relay until one
// side closes (`openTunnel`, `closeTunnel`). An inbound CONNECT from a peer sidecar carries raw
// TCP for an opaque app port: the chain authorizes it, the engine connects to the app and
// answers 200. Either way the hop's span and access log cover the whole connection.

import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Tracer } from '@opentelemetry/api';
import { MESH_ERROR, MESH_ERROR_HEADER } from '../../common/semconv.ts';
import { extractTraceContext, formatTraceparent, propagatedTraceFlags, spanIdOfTraceresponse, TRACE_HEADERS, TRACERESPONSE, traceresponseFor, type TraceContextResult } from '../../common/trace-context.ts';
import { PENDING, type Chain, type FailureKind } from '../chain/chain.ts';
import { LocalReply } from '../chain/reply.ts';
import { EXPECTED_TIMEOUT_HEADER, HopState, inboundTimeout, type CloseReason, type DownstreamSecurity, type HopInit, type HopScope } from '../chain/hop.ts';
import type { Endpoint } from '../endpoints/endpoints.ts';
import { errorBody, ProxyError, upstreamError, type Hop } from '../errors.ts';
import { editLines, type HeaderLines } from '../routing/headers.ts';
import { absoluteForm, CLIENT_CERT_HEADER, REQUEST_ID_HEADER, SOURCE_WORKLOAD_HEADER, splitAuthority } from '../proxy/headers.ts';
import { startExchangeSpan } from '../telemetry/spans.ts';
import { endTry } from '../chain/layers/balance.ts';
import {
  BodyScanner,
  emptyLinesBefore,
  findHeadEnd,
  H1ParseError,
  parseRequestHead,
  parseResponseHead,
  requestBodyKind,
  responseBodyKind,
  type RequestHead,
  type ResponseHead,
} from './parse.ts';
import type { ConnectionOwner, UpstreamConnection, UpstreamPool } from './pool.ts';

export type { DownstreamSecurity } from '../chain/hop.ts';

export interface H1Context {
  /** Direction and mTLS of the listener. */
  readonly scope: HopScope;
  readonly hop: Hop;
  readonly tracer: Tracer;
  /** The mesh's decisions for every request (sidecar/chain/stacks.ts). */
  readonly chain: Chain;
  /** The leg's timeout to the response head (outbound: retries included). */
  readonly upstreamTimeoutMs: number;
  /** Outbound: the time of one try; 0 for none. */
  readonly perTryTimeoutMs?: number;
  /** Names the timeout's flag in its error message. */
  readonly timeoutFlag: string;
  readonly pool: UpstreamPool;
  /** Inbound over mTLS: this workload's SPIFFE ID now (for `x-forwarded-client-cert`). */
  readonly localIdentity?: (() => string) | undefined;
  /** Downstream timeouts (sidecar/limits/); default: 10 s for a request head, 60 s idle. */
  readonly downstreamLimits?: DownstreamLimits | undefined;
  /** An established tunnel (WebSocket, upgrade, raw TCP) with no byte either way this long is closed (--tunnel-idle-timeout); default 1 h. */
  readonly tunnelIdleTimeoutMs?: number;
}

/** Envoy's tcp_proxy idle_timeout default. */
export const DEFAULT_TUNNEL_IDLE_TIMEOUT_MS = 3_600_000;

export interface DownstreamLimits {
  /** A request head must be complete this long after its first byte; then 408 and close. */
  readonly requestHeadersTimeoutMs: number;
  /** A connection without a request in flight for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Told of every head that timed out (counting). */
  readonly onHeadersTimeout?: () => void;
  /** Told of every connection closed for being idle (counting). */
  readonly onIdleTimeout?: () => void;
}

const DEFAULT_DOWNSTREAM_LIMITS: DownstreamLimits = { requestHeadersTimeoutMs: 10_000, idleTimeoutMs: 60_000 };

const HEADERS_TIMEOUT_BODY = JSON.stringify({ error: { code: 'REQUEST_HEADERS_TIMEOUT', message: 'the request head did not arrive in time (sidecar flag --request-headers-timeout)' } });
const HEADERS_TIMEOUT = `HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(HEADERS_TIMEOUT_BODY)}\r\n${MESH_ERROR_HEADER}: REQUEST_HEADERS_TIMEOUT\r\nconnection: close\r\n\r\n${HEADERS_TIMEOUT_BODY}`;

/** Sent for a request head that cannot be relayed (no span: it never became a request). */
function badRequest(err: H1ParseError): string {
  const body = JSON.stringify({ error: { code: 'BAD_REQUEST', message: err.message } });
  return `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${MESH_ERROR_HEADER}: BAD_REQUEST\r\nconnection: close\r\n\r\n${body}`;
}

const CONNECT_FROM_APP = new ProxyError(
  MESH_ERROR.tunnelUnsupported,
  'CONNECT is not carried from an app: the outbound side has no raw-TCP listener yet (only peer sidecars may send CONNECT, for ports the receiving sidecar declares in --opaque-ports)',
  { status: 405 },
);

/** Request headers that stay on their hop (RFC 9110 §7.6.1) or that the proxy writes itself. */
const REQUEST_DROPPED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
  ...TRACE_HEADERS,
  SOURCE_WORKLOAD_HEADER,
  REQUEST_ID_HEADER,
  CLIENT_CERT_HEADER,
  EXPECTED_TIMEOUT_HEADER,
]);
const RESPONSE_DROPPED = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'http2-settings']);
const TRACE_HEADER_SET = new Set(TRACE_HEADERS);
const WORKLOAD_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;
/** After the last response of a closing connection, how long the client has to close its side. */
const CLOSING_GRACE_MS = 5_000;

const kDown = Symbol('tracemesh.h1downstream');
interface Carrier {
  [kDown]?: Downstream;
}

/** One downstream (client) connection. */
class Downstream {
  readonly socket: Socket;
  readonly listener: H1Listener;
  readonly security: DownstreamSecurity | undefined;
  readonly secure: boolean;
  /** Unparsed bytes: a head in progress, or the next pipelined request. */
  buf: Buffer | undefined = undefined;
  searched = 0;
  ex: H1Exchange | undefined = undefined;
  /** Close once the current response is written. */
  closing = false;
  gone = false;
  /** readRequests is on the stack: an exchange that ends at once leaves the next request to its loop. */
  reading = false;
  /** The client closed its side cleanly (FIN), as opposed to a reset. */
  endSeen = false;
  /** Runs while a request head is incomplete (--request-headers-timeout). */
  headTimer: NodeJS.Timeout | undefined = undefined;

  constructor(listener: H1Listener, socket: Socket, security: DownstreamSecurity | undefined) {
    this.listener = listener;
    this.socket = socket;
    this.security = security;
    this.secure = (socket as { encrypted?: boolean }).encrypted === true;
  }
}

export class H1Exchange extends HopState implements ConnectionOwner {
  readonly ctx: H1Context;
  readonly down: Downstream;
  readonly head: RequestHead;
  readonly absolute: boolean;
  readonly serverPort: number;
  /** `upgrade`: the request asked for an Upgrade (WebSocket, …); `connect`: an inbound CONNECT for raw TCP. */
  readonly tunnel: 'upgrade' | 'connect' | undefined;

  /** The connection the request is on. */
  conn: UpstreamConnection | undefined = undefined;
  /** The upstream request head (kept for a retry). */
  upstreamHead = '';
  readonly reqBody = new BodyScanner();
  readonly resBody = new BodyScanner();
  /** The whole request (head and body) was received from downstream. */
  requestDone = false;
  /** Request body bytes received before an upstream connection existed (only before routing). */
  early: Buffer | undefined = undefined;
  /** The final response head was written downstream. */
  headersSent = false;
  /** Bytes of the response (head or body) came from the upstream. */
  responseStarted = false;
  upstreamClose = false;
  /** Reading a peer sidecar's mTLS refusal (its body gives the reason). */
  collecting = false;
  refusal: Buffer | undefined = undefined;
  refusalLength = -1;
  timer: NodeJS.Timeout | undefined = undefined;

  constructor(ctx: H1Context, down: Downstream, head: RequestHead, init: HopInit, absolute: boolean, serverPort: number) {
    super(ctx.scope, init);
    this.ctx = ctx;
    this.down = down;
    this.head = head;
    this.absolute = absolute;
    this.serverPort = serverPort;
    this.tunnel = head.upgrade ? 'upgrade' : head.method === 'CONNECT' ? 'connect' : undefined;
  }

  /** Close the downstream connection after this exchange (a refused connection, plaintext in STRICT). */
  refuseConnection(): void {
    this.down.closing = true;
  }

  get security(): DownstreamSecurity | undefined {
    return this.down.security;
  }

  get remoteAddress(): string | undefined {
    return this.down.socket.remoteAddress;
  }

  /** Nothing of a body was read from the client or sent upstream. */
  get replayable(): boolean {
    return this.reqBody.kind === 'none' && this.early === undefined;
  }

  header(name: string): string | undefined {
    const { names, values } = this.head;
    let out: string | undefined;
    for (let i = 0; i < names.length; i++) {
      if (names[i] === name) out = out === undefined ? (values[i] as string) : `${out}, ${values[i] as string}`;
    }
    return out;
  }

  resend(): void {
    if (this.ended) return;
    dropUpstream(this);
    this.nextTryTimeout();
    // Rebuilt: the try's time left travels in it (outbound).
    this.upstreamHead = upstreamHead(this);
    send(this, this.attempt > 0);
  }

  reject(err: ProxyError): void {
    fail(this, err);
  }

  respond(r: LocalReply): void {
    reply(this, r);
  }

  /** The request's header fields as an object (for policy header rules); built on demand. */
  headers(): Record<string, string> {
    // Prototype-free: a header named `__proto__` or `constructor` is a header like any other.
    const out = Object.create(null) as Record<string, string>;
    const { names, values } = this.head;
    for (let i = 0; i < names.length; i++) {
      const n = names[i] as string;
      const prev = out[n];
      out[n] = prev === undefined ? (values[i] as string) : `${prev}, ${values[i] as string}`;
    }
    return out;
  }

  onUpstreamData(conn: UpstreamConnection, chunk: Buffer): void {
    if (conn !== this.conn || this.ended) return;
    if (this.tunneled) {
      tunnelToClient(this, conn, chunk);
      return;
    }
    if (this.collecting) {
      collectRefusal(this, conn, chunk);
      return;
    }
    this.responseStarted = true;
    if (!this.headersSent) {
      readResponseHead(this, conn, chunk);
      return;
    }
    relayResponseBody(this, conn, chunk, 0);
  }

  onUpstreamDrain(conn: UpstreamConnection): void {
    if (conn === this.conn && !this.down.gone) this.down.socket.resume();
  }

  onUpstreamReady(conn: UpstreamConnection): void {
    // An inbound CONNECT: the app's port accepted the connection; nothing is sent first.
    if (conn !== this.conn || this.ended || this.tunnel !== 'connect' || this.tunneled) return;
    this.status = 200;
    openTunnel(this, conn, `HTTP/1.1 200 Connection Established\r\n${TRACERESPONSE}: ${traceresponseFor(this.span.spanContext(), this.trace)}\r\n\r\n`, undefined);
  }

  onUpstreamGone(conn: UpstreamConnection, err: Error | undefined): void {
    if (conn !== this.conn || this.ended) return;
    if (this.tunneled) {
      closeTunnel(this, err === undefined ? 'upstream_closed' : 'upstream_reset');
      return;
    }
    if (this.collecting) {
      collectRefusal(this, conn, undefined);
      return;
    }
    this.conn = undefined;
    upstreamGone(this, conn, err);
  }
}

/** The downstream connections of one listener direction, for shutdown. */
export class H1Listener {
  readonly ctx: H1Context;
  private readonly conns = new Set<Downstream>();
  private stopping = false;

  readonly limits: DownstreamLimits;

  constructor(ctx: H1Context) {
    this.ctx = ctx;
    this.limits = ctx.downstreamLimits ?? DEFAULT_DOWNSTREAM_LIMITS;
  }

  /** Takes over a connected socket (plain or TLS) and serves HTTP/1.1 on it. */
  serve(socket: Socket, security?: DownstreamSecurity): void {
    const d = new Downstream(this, socket, security);
    (socket as Carrier)[kDown] = d;
    this.conns.add(d);
    socket.setNoDelay(true);
    socket.setTimeout(this.limits.idleTimeoutMs, onDownTimeout);
    socket.on('data', onDownData);
    socket.on('end', onDownEnd);
    socket.on('close', onDownClose);
    socket.on('drain', onDownDrain);
    socket.on('error', ignore);
    // A socket whose first bytes were peeked with a 'readable' listener stays paused otherwise.
    socket.resume();
    if (this.stopping) d.closing = true;
  }

  /** Connections open now. */
  get size(): number {
    return this.conns.size;
  }

  forget(d: Downstream): void {
    this.conns.delete(d);
    if (this.conns.size === 0) this.onEmpty?.();
  }

  private onEmpty: (() => void) | undefined = undefined;

  /** Shutdown, first step: idle connections close now, busy ones after their response. */
  closeIdle(): void {
    this.stopping = true;
    for (const d of this.conns) {
      d.closing = true;
      if (d.ex === undefined) d.socket.end();
      // A tunnel has no end to wait for (a WebSocket may stay open for hours): cut it now.
      else if (d.ex.tunneled && !d.ex.ended) closeTunnel(d.ex, 'shutdown');
    }
  }

  /**
   * Shutdown, last step: cut the connections with an exchange still running; the others close
   * once their last response has been flushed.
   */
  closeAll(flushMs = 1000): Promise<void> {
    this.stopping = true;
    for (const d of this.conns) {
      if (d.ex !== undefined && !d.ex.ended) d.socket.destroy();
      // An ended socket closes once its peer has read the last response (destroying it now
      // could cut encrypted bytes still queued under TLS); the deadline below backs this up.
      else if (!d.socket.writableEnded) d.socket.end();
    }
    if (this.conns.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        for (const d of this.conns) d.socket.destroy();
        resolve();
      }, flushMs);
      this.onEmpty = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

function ignore(): void {}

function downOf(socket: Socket): Downstream {
  return (socket as Carrier)[kDown] as Downstream;
}

function onDownTimeout(this: Socket): void {
  const d = downOf(this);
  // Only an idle keep-alive connection (or a stalled head) times out; exchanges have their own
  // clock. A closed tunnel's client that does not close its side is cut after the grace.
  if (d.ex === undefined || (d.ex.tunneled && d.ex.ended)) {
    // A closing connection (after a 408, or the client's end) was not cut for idleness.
    if (d.ex === undefined && !d.closing) d.listener.limits.onIdleTimeout?.();
    this.destroy();
  }
}

function onDownData(this: Socket, chunk: Buffer): void {
  const d = downOf(this);
  const ex = d.ex;
  if (ex !== undefined) {
    if (ex.tunneled) {
      if (!ex.ended) tunnelToUpstream(ex, chunk);
      return;
    }
    if (!ex.requestDone) {
      let end: number;
      try {
        end = ex.reqBody.feed(chunk, 0);
      } catch (err) {
        badRequestBody(ex, err);
        return;
      }
      if (end === -1) {
        relayRequestBody(ex, chunk);
        return;
      }
      relayRequestBody(ex, end === chunk.length ? chunk : chunk.subarray(0, end));
      requestComplete(ex);
      if (end === chunk.length) return;
      chunk = chunk.subarray(end);
    }
    // The next pipelined request waits until this response is complete.
    d.buf = d.buf === undefined ? chunk : Buffer.concat([d.buf, chunk]);
    this.pause();
    return;
  }
  d.buf = d.buf === undefined ? chunk : Buffer.concat([d.buf, chunk]);
  readRequests(d);
}

function onDownEnd(this: Socket): void {
  const d = downOf(this);
  // The client shut its side. Sockets here are not half-open (as with node:http), so node ends
  // ours too and 'close' follows: an exchange still running is recorded as DOWNSTREAM_ABORTED.
  d.closing = true;
  d.endSeen = true;
  if (d.ex === undefined) this.end();
}

/** Starts the request-head clock, once per head (a trickling client does not reset it). */
function armHeadTimer(d: Downstream): void {
  if (d.headTimer !== undefined) return;
  d.headTimer = setTimeout(onHeadTimeout, d.listener.limits.requestHeadersTimeoutMs, d);
  d.headTimer.unref();
}

function clearHeadTimer(d: Downstream): void {
  if (d.headTimer === undefined) return;
  clearTimeout(d.headTimer);
  d.headTimer = undefined;
}

function onHeadTimeout(d: Downstream): void {
  d.headTimer = undefined;
  if (d.ex !== undefined || d.gone) return;
  d.listener.limits.onHeadersTimeout?.();
  d.buf = undefined;
  d.closing = true;
  d.socket.end(HEADERS_TIMEOUT, 'latin1');
  // What the client still trickles is dropped; it gets a short grace to read the 408, then the cut.
  d.socket.setTimeout(1_000);
  d.socket.resume();
}

function onDownClose(this: Socket): void {
  const d = downOf(this);
  clearHeadTimer(d);
  d.gone = true;
  d.listener.forget(d);
  const ex = d.ex;
  if (ex !== undefined && !ex.ended) {
    if (ex.tunneled) {
      closeTunnel(ex, d.endSeen ? 'client_closed' : 'client_reset');
      return;
    }
    ex.downstreamAborted = true;
    dropUpstream(ex);
    finish(ex);
  }
}

function onDownDrain(this: Socket): void {
  const d = downOf(this);
  const conn = d.ex?.conn;
  if (conn !== undefined) conn.socket.resume();
}

/** Parses and starts every complete request head in `d.buf`, one exchange at a time. */
function readRequests(d: Downstream): void {
  if (d.reading) return;
  d.reading = true;
  try {
    readRequestsLoop(d);
  } finally {
    d.reading = false;
  }
}

function readRequestsLoop(d: Downstream): void {
  while (d.ex === undefined && d.buf !== undefined && !d.gone) {
    if (d.socket.writableEnded) {
      d.buf = undefined;
      return;
    }
    const buf = d.buf;
    let end: number;
    let head: RequestHead;
    if (d.searched === 0 && buf[0] === 0x0d) {
      // Empty lines before a request line are ignored (RFC 9112 §2.2), as node:http does.
      const skip = emptyLinesBefore(buf);
      if (skip === -1) return; // its LF has not arrived
      if (skip > 0) {
        d.buf = skip < buf.length ? buf.subarray(skip) : undefined;
        continue;
      }
    }
    try {
      // Not a request line (a TLS ClientHello to a plaintext port, say): refuse at once.
      if (d.searched === 0 && !isTokenByte(buf[0] as number)) throw new H1ParseError(400, 'the connection does not speak HTTP/1.1 (no request line)');
      end = findHeadEnd(buf, d.searched);
      if (end === -1) {
        d.searched = buf.length;
        armHeadTimer(d);
        d.socket.resume();
        return;
      }
      head = parseRequestHead(buf, end);
    } catch (err) {
      d.buf = undefined;
      d.socket.end(badRequest(err instanceof H1ParseError ? err : new H1ParseError(400, String(err))), 'latin1');
      return;
    }
    clearHeadTimer(d);
    d.searched = 0;
    d.buf = end < buf.length ? buf.subarray(end) : undefined;
    // h2c's upgrade is ignored (RFC 9113 removed it; clients use prior knowledge): a plain request.
    if (head.upgrade && upgradeProtocol(head) === 'h2c') head.upgrade = false;
    startExchange(d, head);
  }
}

/** The first protocol an Upgrade header names, lower case. */
function upgradeProtocol(head: RequestHead | ResponseHead): string {
  const i = head.names.indexOf('upgrade');
  if (i === -1) return '';
  const v = (head.values[i] as string).toLowerCase();
  const comma = v.indexOf(',');
  const first = (comma === -1 ? v : v.slice(0, comma)).trim();
  const slash = first.indexOf('/');
  return slash === -1 ? first : first.slice(0, slash);
}

/** The Upgrade header's value as sent, for the next hop. */
function upgradeValue(head: RequestHead | ResponseHead): string {
  const i = head.names.indexOf('upgrade');
  return i === -1 ? '' : (head.values[i] as string);
}

/** The port of a CONNECT target (`host:port`, `[v6]:port`), or undefined. */
function connectPort(target: string): number | undefined {
  const colon = target.lastIndexOf(':');
  if (colon === -1 || colon < target.lastIndexOf(']')) return undefined;
  const text = target.slice(colon + 1);
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

function isTokenByte(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || '!#$%&\'*+-.^_`|~'.includes(String.fromCharCode(c));
}

function startExchange(d: Downstream, head: RequestHead): void {
  const ctx = d.listener.ctx;
  const startMs = performance.now();
  const outbound = ctx.scope.direction === 'outbound';
  let target = head.target;
  let authority = head.host;
  let absolute = false;
  const connect = head.method === 'CONNECT';
  if (connect) authority = target; // authority-form (RFC 9112 §3.2.3)
  else if (target.charCodeAt(0) !== 0x2f /* '/' */ && target !== '*') {
    const abs = absoluteForm(target);
    if (abs !== undefined) {
      authority = abs.authority;
      target = abs.target;
      absolute = true;
    }
  }
  const { host, port } = splitAuthority(authority);
  // Every line of a repeated trace header is kept: a repeated traceparent must restart the
  // trace, a tracestate sent on several lines keeps all its members.
  let traceHeaders: Record<string, string[]> | undefined;
  let rid: string | undefined;
  let src: string | undefined;
  let ua: string | undefined;
  let expected: string | undefined;
  const { names, values } = head;
  for (let i = 0; i < names.length; i++) {
    const n = names[i] as string;
    if (n === REQUEST_ID_HEADER) rid = values[i];
    else if (n === EXPECTED_TIMEOUT_HEADER) expected = values[i];
    else if (n === 'user-agent') ua = values[i];
    else if (n === SOURCE_WORKLOAD_HEADER) src = values[i];
    else if (TRACE_HEADER_SET.has(n)) ((traceHeaders ??= {})[n] ??= []).push(values[i] as string);
  }
  const trace: TraceContextResult = traceHeaders === undefined ? { kind: 'absent' } : extractTraceContext(traceHeaders);
  const requestId = rid !== undefined && rid !== '' ? rid : randomUUID();
  const sourceWorkload = outbound ? ctx.hop.service : src !== undefined && WORKLOAD_NAME.test(src) ? src : 'unknown';
  const q = target.indexOf('?');
  const span = startExchangeSpan(ctx.tracer, {
    direction: ctx.scope.direction,
    facts: {
      userAgent: ua,
      peerAddress: d.socket.remoteAddress,
      peerPort: d.socket.remotePort,
      httpVersion: head.minor === 1 ? '1.1' : '1.0',
      secure: d.secure,
    },
    method: head.method,
    path: q === -1 ? target : target.slice(0, q),
    serverAddress: host,
    serverPort: port ?? 80,
    requestId,
    trace,
  });
  const ex = new H1Exchange(
    ctx,
    d,
    head,
    { startMs, protocol: head.upgrade ? (upgradeProtocol(head) === 'websocket' ? 'websocket' : 'upgrade') : connect ? 'tcp' : head.minor === 1 ? 'http/1.1' : 'http/1.0', method: head.method, target, authority, host, requestId, sourceWorkload, trace, span },
    absolute,
    port ?? 80,
  );
  ex.timeoutMs = outbound ? ctx.upstreamTimeoutMs : inboundTimeout(ctx.upstreamTimeoutMs, expected);
  ex.perTryTimeoutMs = ctx.perTryTimeoutMs ?? 0;
  ctx.chain.start(ex);
  d.ex = ex;
  // A connection that asked for a tunnel carries no further request, whatever the answer.
  if (head.close || ex.tunnel !== undefined) d.closing = true;
  d.socket.setTimeout(0);
  ex.reqBody.reset(requestBodyKind(head), head.contentLength);
  // Body bytes that came with the head.
  if (ex.reqBody.done) ex.requestDone = true;
  else if (d.buf !== undefined) {
    const buf = d.buf;
    let end: number;
    try {
      end = ex.reqBody.feed(buf, 0);
    } catch (err) {
      badRequestBody(ex, err);
      return;
    }
    ex.early = end === -1 ? buf : buf.subarray(0, end);
    d.buf = end === -1 || end === buf.length ? undefined : buf.subarray(end);
    if (end !== -1) ex.requestDone = true;
  }
  if (d.buf !== undefined) d.socket.pause();

  if (connect) {
    // Raw TCP comes only from peer sidecars (sidecar/tcp/ sends it); the port must be opaque (route layer).
    const p = connectPort(target);
    if (outbound || p === undefined) {
      fail(ex, outbound ? CONNECT_FROM_APP : new ProxyError(MESH_ERROR.tunnelUnsupported, `CONNECT target "${target}" names no port`, { status: 400 }));
      return;
    }
    ex.appPort = p;
  }
  const decision = ctx.chain.request(ex);
  if (decision === undefined) {
    ex.nextTryTimeout();
    ex.upstreamHead = upstreamHead(ex);
    send(ex, false);
  } else if (decision instanceof LocalReply) reply(ex, decision);
  else if (decision !== PENDING) fail(ex, decision);
}

/** The request head for the upstream: hop-by-hop and trace headers replaced. */
function upstreamHead(ex: H1Exchange): string {
  const head = ex.head;
  const ctx = ex.ctx;
  let h = `${ex.method} ${ex.target} HTTP/1.${head.minor}\r\n`;
  const route = ex.route;
  const { rawNames, names, values, connectionNames } = head;
  if (route === undefined) {
    if (ex.absolute) h += `host: ${ex.authority}\r\n`;
    for (let i = 0; i < names.length; i++) {
      const n = names[i] as string;
      if (REQUEST_DROPPED.has(n) || (ex.absolute && n === 'host') || (connectionNames !== undefined && connectionNames.includes(n))) continue;
      h += `${rawNames[i] as string}: ${values[i] as string}\r\n`;
    }
  } else {
    // An HTTPRoute's header edits and Host rewrite (only routed requests take this path).
    const lines: HeaderLines = [['host', route.authority ?? ex.authority]];
    for (let i = 0; i < names.length; i++) {
      const n = names[i] as string;
      if (REQUEST_DROPPED.has(n) || n === 'host' || (connectionNames !== undefined && connectionNames.includes(n))) continue;
      lines.push([rawNames[i] as string, values[i] as string]);
    }
    editLines(lines, route.requestHeaders);
    for (const [name, value] of lines) h += `${name}: ${value}\r\n`;
  }
  if (ex.tunnel === 'upgrade') h += `connection: upgrade\r\nupgrade: ${upgradeValue(head)}\r\n`;
  const sc = ex.span.spanContext();
  h += `traceparent: ${formatTraceparent(sc.traceId, sc.spanId, propagatedTraceFlags(ex.trace, sc.traceFlags))}\r\n`;
  const ts = ex.trace.kind === 'found' ? ex.trace.context.traceState : undefined;
  if (ts !== undefined) h += `tracestate: ${ts}\r\n`;
  h += `${REQUEST_ID_HEADER}: ${ex.requestId}\r\n`;
  if (ctx.scope.direction === 'outbound') h += `${SOURCE_WORKLOAD_HEADER}: ${ctx.hop.service}\r\n${EXPECTED_TIMEOUT_HEADER}: ${ex.tryTimeoutMs}\r\n`;
  else if (ex.tlsMode === 'mtls' && ex.peerIdentity !== undefined) {
    const self = ctx.localIdentity?.();
    if (self !== undefined) h += `${CLIENT_CERT_HEADER}: By=${self};URI=${ex.peerIdentity}\r\n`;
  }
  return h + '\r\n';
}

/** Names the upstream in error messages; only called on failure paths. */
function upstreamName(ex: H1Exchange): string {
  const at = ex.endpoint?.address ?? '';
  if (ex.direction === 'inbound') return `local app at ${at}`;
  const pod = ex.endpoint?.pod;
  return `endpoint ${at}${pod === undefined ? '' : ` (pod ${pod})`} of service "${ex.service}"`;
}

function send(ex: H1Exchange, fresh: boolean): void {
  // Raw TCP never goes on a pooled connection (it may be to the app's HTTP port).
  const conn = ex.ctx.pool.acquire(ex.endpoint as Endpoint, ex, fresh || ex.tunnel === 'connect');
  ex.conn = conn;
  ex.responseStarted = false;
  if (conn.tls) ex.peer = conn;
  else if (ex.direction === 'outbound') ex.tlsMode = 'none';
  conn.pending = undefined;
  ex.resBody.reset('none');
  ex.timer = setTimeout(onUpstreamTimeout, ex.tryTimeoutMs, ex);
  // Inbound raw TCP: the app gets the bytes and nothing else (onUpstreamReady opens the tunnel).
  if (ex.tunnel === 'connect') {
    if (conn.ready) ex.onUpstreamReady(conn);
    return;
  }
  conn.write(ex.upstreamHead);
  const early = ex.early;
  if (early !== undefined) {
    ex.early = undefined;
    if (!conn.write(early)) ex.down.socket.pause();
  }
}

function relayRequestBody(ex: H1Exchange, chunk: Buffer): void {
  const conn = ex.conn;
  if (conn === undefined) return; // failed already: discard
  ex.timer?.refresh();
  if (!conn.write(chunk)) ex.down.socket.pause();
}

function requestComplete(ex: H1Exchange): void {
  ex.requestDone = true;
  ex.timer?.refresh();
  // A response that finished before the request did.
  if (ex.ended) nextRequest(ex.down);
}

function onUpstreamTimeout(ex: H1Exchange): void {
  ex.timer = undefined;
  // An interim response (100 Continue) is not the response head: the clock still runs.
  if (ex.ended || ex.headersSent) return;
  const error = new ProxyError(MESH_ERROR.timeout, `${upstreamName(ex)} did not answer within ${ex.tryTimeoutMs} ms (${ex.timeoutFlag(ex.ctx.timeoutFlag)})`);
  tryFailed(ex, 'timeout', error);
}

function readResponseHead(ex: H1Exchange, conn: UpstreamConnection, chunk: Buffer): void {
  let buf = conn.pending === undefined ? chunk : Buffer.concat([conn.pending, chunk]);
  conn.pending = undefined;
  for (;;) {
    let end: number;
    let head: ResponseHead;
    try {
      end = findHeadEnd(buf, 0);
      if (end === -1) {
        conn.pending = buf;
        return;
      }
      head = parseResponseHead(buf, end);
    } catch (err) {
      dropUpstream(ex);
      fail(ex, upstreamError(err, upstreamName(ex)));
      return;
    }
    if (head.status >= 100 && head.status < 200) {
      if (head.status === 101 && ex.tunnel === 'upgrade') {
        startUpgrade(ex, conn, head, buf, end);
        return;
      }
      if (head.status === 101) {
        dropUpstream(ex);
        fail(ex, upstreamError(new Error('101 Switching Protocols to a request that asked for no upgrade'), upstreamName(ex)));
        return;
      }
      // Interim response (100 Continue, 103 Early Hints): relay it to an HTTP/1.1 client.
      if (ex.head.minor === 1) ex.down.socket.write(buf.subarray(0, end));
      if (end === buf.length) return;
      buf = buf.subarray(end);
      continue;
    }
    startResponse(ex, conn, head, buf, end);
    return;
  }
}

function startResponse(ex: H1Exchange, conn: UpstreamConnection, head: ResponseHead, buf: Buffer, end: number): void {
  clearTimeout(ex.timer);
  ex.timer = undefined;
  const d = ex.down;
  const kind = responseBodyKind(ex.method, head);
  ex.status = head.status;
  // Set on every answer: a retried try's mesh error must not stick to the next try's answer.
  const i = head.status >= 500 ? head.names.indexOf(MESH_ERROR_HEADER) : -1;
  ex.upstreamMeshError = i === -1 ? undefined : head.values[i];
  const t = head.names.indexOf(TRACERESPONSE);
  ex.upstreamSpanId = t === -1 ? undefined : spanIdOfTraceresponse(head.values[t]);
  ex.resBody.reset(kind, head.contentLength);
  // An upgrade the upstream refused: the connection may be in any state; never reuse it.
  ex.upstreamClose = head.close || kind === 'close' || ex.tunnel !== undefined;
  // Over mTLS, a peer sidecar that refused this sidecar's certificate answers 403
  // TLS_HANDSHAKE_FAILED: read its reason and report the failure as this hop's own.
  if (conn.tls && conn.requests === 1 && head.status === 403 && isRefusal(head)) {
    ex.collecting = true;
    ex.refusalLength = head.contentLength;
    collectRefusal(ex, conn, buf.subarray(end));
    return;
  }
  if (ex.ctx.chain.onResponse(ex)) {
    // The chain retries on this status: drop the answer (and its connection, body unread).
    dropUpstream(ex);
    return;
  }
  if (kind === 'close') d.closing = true;
  let h = `HTTP/1.1 ${head.status} ${head.reason}\r\n`;
  const { rawNames, names, values, connectionNames } = head;
  const edits = ex.route?.responseHeaders;
  if (edits === undefined || edits.length === 0) {
    for (let i = 0; i < names.length; i++) {
      const n = names[i] as string;
      if (RESPONSE_DROPPED.has(n) || (connectionNames !== undefined && connectionNames.includes(n))) continue;
      h += `${rawNames[i] as string}: ${values[i] as string}\r\n`;
    }
  } else {
    const lines: HeaderLines = [];
    for (let i = 0; i < names.length; i++) {
      const n = names[i] as string;
      if (RESPONSE_DROPPED.has(n) || (connectionNames !== undefined && connectionNames.includes(n))) continue;
      lines.push([rawNames[i] as string, values[i] as string]);
    }
    editLines(lines, edits);
    for (const [name, value] of lines) h += `${name}: ${value}\r\n`;
  }
  // Trace Context Level 2: the span that served the request, unless the answer already names
  // one (the app's own span, or the peer sidecar's: deeper in the same trace).
  if (!names.includes(TRACERESPONSE)) h += `${TRACERESPONSE}: ${traceresponseFor(ex.span.spanContext(), ex.trace)}\r\n`;
  if (d.closing) h += 'connection: close\r\n';
  else if (ex.head.minor === 0) h += 'connection: keep-alive\r\n'; // HTTP/1.0 closes without it
  h += '\r\n';
  ex.headersSent = true;
  // Head and the body bytes that came with it leave in one write (one syscall, one TLS record batch).
  const sock = d.socket;
  if (!d.gone) {
    sock.cork();
    sock.write(h, 'latin1');
  }
  if (end < buf.length || ex.resBody.done) relayResponseBody(ex, conn, buf, end);
  if (!d.gone) sock.uncork();
}

function isRefusal(head: ResponseHead): boolean {
  const i = head.names.indexOf(MESH_ERROR_HEADER);
  return i !== -1 && head.values[i] === MESH_ERROR.tlsHandshake;
}

/** Most bytes of a refusal body read for its reason. */
const MAX_REFUSAL_BYTES = 8192;

/** Gathers the peer's refusal body (its JSON names the reason), then fails the exchange with it. */
function collectRefusal(ex: H1Exchange, conn: UpstreamConnection, chunk: Buffer | undefined): void {
  const body = chunk === undefined || chunk.length === 0 ? (ex.refusal ?? Buffer.alloc(0)) : Buffer.concat([ex.refusal ?? Buffer.alloc(0), chunk]);
  ex.refusal = body;
  const wanted = ex.refusalLength < 0 ? MAX_REFUSAL_BYTES : Math.min(ex.refusalLength, MAX_REFUSAL_BYTES);
  if (chunk !== undefined && body.length < wanted) return;
  let reason = 'no reason given';
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { error?: { message?: unknown } };
    if (typeof parsed.error?.message === 'string') reason = parsed.error.message;
  } catch {
    // keep the generic reason
  }
  ex.collecting = false;
  conn.failure ??= new ProxyError(MESH_ERROR.tlsHandshake, `the sidecar at ${conn.describe()} refused this sidecar's mTLS connection: ${reason}`);
  ex.ctx.pool.handshakeFailed('rejected_by_peer');
  ex.status = 0;
  dropUpstream(ex);
  fail(ex, conn.failure);
}

function relayResponseBody(ex: H1Exchange, conn: UpstreamConnection, buf: Buffer, start: number): void {
  let end: number;
  try {
    end = ex.resBody.feed(buf, start);
  } catch (err) {
    dropUpstream(ex);
    fail(ex, upstreamError(err, upstreamName(ex)));
    return;
  }
  const stop = end === -1 ? buf.length : end;
  const d = ex.down;
  if (stop > start) {
    const part = start === 0 && stop === buf.length ? buf : buf.subarray(start, stop);
    if (ex.status >= 500) ex.keepErrorBody(part, ex.resBody.kind === 'chunked');
    if (!d.gone && !d.socket.write(part)) conn.socket.pause();
  }
  if (end === -1) return;
  // Bytes after the response's end: the upstream broke framing; never reuse the connection.
  if (end < buf.length) ex.upstreamClose = true;
  responseComplete(ex);
}

function responseComplete(ex: H1Exchange): void {
  const conn = ex.conn;
  ex.conn = undefined;
  if (conn !== undefined) {
    if (!ex.upstreamClose && ex.requestDone && conn.failure === undefined) ex.ctx.pool.release(conn);
    else conn.destroy();
  }
  finish(ex);
  // The response ended before the whole request arrived: the rest cannot be skipped safely.
  if (!ex.requestDone) ex.down.closing = true;
  nextRequest(ex.down);
}

/** The upstream connection failed or closed before the response was complete. */
function upstreamGone(ex: H1Exchange, conn: UpstreamConnection, err: Error | undefined): void {
  if (ex.headersSent) {
    // A body delimited by the connection's close is complete now.
    if (err === undefined && ex.resBody.kind === 'close') {
      ex.upstreamClose = true;
      responseComplete(ex);
      return;
    }
    ex.error ??= upstreamError(err ?? Object.assign(new Error('the connection closed in the middle of the response'), { code: 'ECONNRESET' }), upstreamName(ex));
    ex.down.socket.destroy();
    finish(ex);
    return;
  }
  // A connection-level failure (refused, TLS): nothing was sent.
  const failure = conn.failureFor(err ?? Object.assign(new Error('connection closed before the TLS handshake finished'), { code: 'ECONNRESET' }), conn.tls ? undefined : upstreamName(ex));
  if (failure !== undefined) {
    tryFailed(ex, 'connect', failure);
    return;
  }
  const error = upstreamError(err ?? Object.assign(new Error('closed the connection before answering'), { code: 'ECONNRESET' }), upstreamName(ex));
  // Before any response byte: a reused keep-alive connection that the upstream had already
  // closed ("stale"), or one that broke after the request went out.
  tryFailed(ex, error.code === MESH_ERROR.connectionRefused ? 'connect' : conn.requests > 1 && !ex.responseStarted ? 'stale' : 'reset', error);
}

/** A try failed before its response head: the chain retries it or the exchange fails. */
function tryFailed(ex: H1Exchange, kind: FailureKind, error: ProxyError): void {
  clearTimeout(ex.timer);
  ex.timer = undefined;
  dropUpstream(ex);
  if (ex.ctx.chain.onUpstreamFailure(ex, { kind, error })) return;
  fail(ex, error);
}

function dropUpstream(ex: H1Exchange): void {
  const conn = ex.conn;
  ex.conn = undefined;
  conn?.destroy();
}

/**
 * Ends the exchange with a mesh failure: synthesizes the error response, or cuts the
 * downstream connection when the response has already started. The first failure wins.
 */
function fail(ex: H1Exchange, err: ProxyError): void {
  if (ex.ended) return;
  ex.error ??= err;
  clearTimeout(ex.timer);
  ex.timer = undefined;
  dropUpstream(ex);
  const d = ex.down;
  if (ex.headersSent) {
    d.socket.destroy();
    finish(ex);
    return;
  }
  const e = ex.error;
  // The rest of an unread request body would be taken for the next request: close instead.
  if (!ex.requestDone) d.closing = true;
  const body = errorBody(e, ex.ctx.hop, ex.span.spanContext().traceId);
  const length = Buffer.byteLength(body);
  ex.status = e.status;
  ex.bytesOut += length;
  if (!d.gone) {
    d.socket.write(
      `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n${MESH_ERROR_HEADER}: ${e.code}\r\n${TRACERESPONSE}: ${traceresponseFor(ex.span.spanContext(), ex.trace)}\r\n${d.closing ? 'connection: close\r\n' : ex.head.minor === 0 ? 'connection: keep-alive\r\n' : ''}\r\n${body}`,
    );
  }
  finish(ex);
  nextRequest(d);
}

/** Answers with a layer's own response (a route's redirect): its status and headers, no body. */
function reply(ex: H1Exchange, r: LocalReply): void {
  if (ex.ended || ex.headersSent) return;
  clearTimeout(ex.timer);
  ex.timer = undefined;
  dropUpstream(ex);
  const d = ex.down;
  // The rest of an unread request body would be taken for the next request: close instead.
  if (!ex.requestDone) d.closing = true;
  ex.status = r.status;
  if (!d.gone) {
    let h = `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? ''}\r\n`;
    for (const [name, value] of r.headers) h += `${name}: ${value}\r\n`;
    h += `content-length: 0\r\n${TRACERESPONSE}: ${traceresponseFor(ex.span.spanContext(), ex.trace)}\r\n${d.closing ? 'connection: close\r\n' : ex.head.minor === 0 ? 'connection: keep-alive\r\n' : ''}\r\n`;
    d.socket.write(h, 'latin1');
  }
  finish(ex);
  nextRequest(d);
}

/** The client broke its request body's chunked framing: 400 (or a cut once the response has started), then close. */
function badRequestBody(ex: H1Exchange, err: unknown): void {
  const d = ex.down;
  dropUpstream(ex);
  d.buf = undefined;
  d.ex = undefined;
  if (ex.headersSent || d.gone) d.socket.destroy();
  else {
    const e = err instanceof H1ParseError ? err : new H1ParseError(400, String(err));
    ex.status = e.status;
    d.socket.end(badRequest(e), 'latin1');
  }
  finish(ex);
}

/** Runs the observers, once. */
function finish(ex: H1Exchange): void {
  if (ex.ended) return;
  // Body sizes without chunked framing; a synthesized body was counted by fail(). A tunnel
  // counted its bytes as they went.
  if (!ex.tunneled) {
    ex.bytesIn = ex.reqBody.payload;
    ex.bytesOut += ex.resBody.payload;
  }
  clearTimeout(ex.timer);
  ex.timer = undefined;
  ex.ctx.chain.end(ex);
}

/** After an exchange ended: close, or go on with the next request on the connection. */
function nextRequest(d: Downstream): void {
  const ex = d.ex;
  if (ex === undefined || !ex.ended || d.gone) return;
  // Still receiving the body of a request whose response is done: wait for its end.
  if (!ex.requestDone && !d.closing) return;
  d.ex = undefined;
  if (d.closing) {
    d.buf = undefined;
    d.socket.end();
    // Read (and drop) whatever the client still sends, so its close is seen; a client that
    // neither reads nor closes is cut after a grace period.
    d.socket.setTimeout(CLOSING_GRACE_MS);
    d.socket.resume();
    return;
  }
  d.socket.setTimeout(d.listener.limits.idleTimeoutMs);
  d.socket.resume();
  if (d.buf !== undefined) readRequests(d);
}

// --- tunnels -------------------------------------------------------------------------------

/** The upstream switched protocols (101): relay its head, then bytes both ways. */
function startUpgrade(ex: H1Exchange, conn: UpstreamConnection, head: ResponseHead, buf: Buffer, end: number): void {
  ex.status = 101;
  let h = `HTTP/1.1 101 ${head.reason}\r\n`;
  const { rawNames, names, values, connectionNames } = head;
  for (let i = 0; i < names.length; i++) {
    const n = names[i] as string;
    if (RESPONSE_DROPPED.has(n) || (connectionNames !== undefined && connectionNames.includes(n))) continue;
    h += `${rawNames[i] as string}: ${values[i] as string}\r\n`;
  }
  h += `connection: upgrade\r\nupgrade: ${upgradeValue(head) || upgradeValue(ex.head)}\r\n`;
  if (!names.includes(TRACERESPONSE)) h += `${TRACERESPONSE}: ${traceresponseFor(ex.span.spanContext(), ex.trace)}\r\n`;
  openTunnel(ex, conn, h + '\r\n', end < buf.length ? buf.subarray(end) : undefined);
}

/**
 * Both connections become one byte relay: the answer's head goes downstream, then whatever
 * either side sends. The balancer sees the call end here (a tunnel's lifetime is not latency);
 * a route's request timeout stops here too. From now on only --tunnel-idle-timeout applies.
 */
function openTunnel(ex: H1Exchange, conn: UpstreamConnection, head: string, rest: Buffer | undefined): void {
  clearTimeout(ex.timer);
  ex.timer = undefined;
  if (ex.ctx.chain.onResponse(ex)) {
    dropUpstream(ex);
    return;
  }
  ex.tunneled = true;
  ex.headersSent = true;
  ex.responseStarted = true;
  conn.pending = undefined;
  endTry(ex, true);
  const facts = ex.route;
  if (facts?.timer !== undefined) {
    clearTimeout(facts.timer);
    facts.timer = undefined;
  }
  const d = ex.down;
  if (!d.gone) {
    d.socket.cork();
    d.socket.write(head, 'latin1');
    if (rest !== undefined && rest.length > 0) {
      ex.bytesOut += rest.length;
      d.socket.write(rest);
    }
    d.socket.uncork();
  }
  // Bytes the client sent after its request head, before the answer (they waited in d.buf).
  const early = d.buf;
  d.buf = undefined;
  if (early !== undefined && early.length > 0) {
    ex.bytesIn += early.length;
    conn.write(early);
  }
  ex.timer = setTimeout(onTunnelIdle, ex.ctx.tunnelIdleTimeoutMs ?? DEFAULT_TUNNEL_IDLE_TIMEOUT_MS, ex);
  if (!d.gone) d.socket.resume();
}

function tunnelToClient(ex: H1Exchange, conn: UpstreamConnection, chunk: Buffer): void {
  ex.bytesOut += chunk.length;
  ex.timer?.refresh();
  const d = ex.down;
  if (!d.gone && !d.socket.write(chunk)) conn.socket.pause();
}

function tunnelToUpstream(ex: H1Exchange, chunk: Buffer): void {
  ex.bytesIn += chunk.length;
  ex.timer?.refresh();
  const conn = ex.conn;
  if (conn !== undefined && !conn.write(chunk)) ex.down.socket.pause();
}

function onTunnelIdle(ex: H1Exchange): void {
  ex.timer = undefined;
  closeTunnel(ex, 'idle_timeout');
}

/**
 * Ends a tunnel, once: the side that closed cleanly has its close passed on (queued bytes are
 * flushed first); after a reset, an idle timeout or at shutdown both connections are cut.
 */
function closeTunnel(ex: H1Exchange, reason: CloseReason): void {
  if (ex.ended) return;
  ex.closeReason = reason;
  clearTimeout(ex.timer);
  ex.timer = undefined;
  const conn = ex.conn;
  ex.conn = undefined;
  if (conn !== undefined) {
    conn.owner = undefined;
    if (reason === 'client_closed') conn.socket.end();
    else conn.socket.destroy();
  }
  const d = ex.down;
  if (!d.gone) {
    if (reason === 'upstream_closed') {
      d.socket.end();
      d.socket.setTimeout(CLOSING_GRACE_MS);
    } else if (reason !== 'client_closed') d.socket.destroy();
  }
  finish(ex);
}
