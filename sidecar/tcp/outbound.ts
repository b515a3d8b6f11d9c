// The outbound half of raw TCP (opaque ports): an app connects to a local port this sidecar
// listens on for one mesh service port (`--tcp-listeners 15101=db:5432`); the connection is one
// hop through the outbound chain (route → circuit breaker → balance → retry → telemetry, the
// same layers as HTTP), carried to the chosen endpoint's sidecar as an HTTP/1.1 CONNECT on a
// fresh mTLS connection (plaintext when this sidecar has no identity). The peer's inbound half
// (h1/engine.ts, `--opaque-ports`) answers 200 and relays to the app port; from then on bytes
// flow both ways until one side closes. One CLIENT span and one access-log line per connection
// (bytes each way, duration, close reason).
//
// Until the peer's 200 the app's bytes wait in the kernel (the app socket is paused), so a try
// that fails (no connection, a peer that refuses, a timeout) can be retried on another endpoint
// as any request whose body was not sent. A connection the mesh cannot carry is reset, so the
// app sees a refused connection rather than a clean, empty one.

import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import type { Tracer } from '@opentelemetry/api';
import { MESH_ERROR, MESH_ERROR_HEADER } from '../../common/semconv.ts';
import { formatTraceparent, spanIdOfTraceresponse, TRACERESPONSE, type TraceContextResult } from '../../common/trace-context.ts';
import { PENDING, type Chain, type FailureKind } from '../chain/chain.ts';
import { EXPECTED_TIMEOUT_HEADER, HopState, type CloseReason, type DownstreamSecurity, type HopScope } from '../chain/hop.ts';
import { endTry } from '../chain/layers/balance.ts';
import type { LocalReply } from '../chain/reply.ts';
import type { TcpListenerSpec } from '../config.ts';
import type { Endpoint } from '../endpoints/endpoints.ts';
import { ProxyError, upstreamError, type Hop } from '../errors.ts';
import { findHeadEnd, parseResponseHead } from '../h1/parse.ts';
import type { ConnectionOwner, UpstreamConnection, UpstreamPool } from '../h1/pool.ts';
import { REQUEST_ID_HEADER, SOURCE_WORKLOAD_HEADER } from '../proxy/headers.ts';
import { startExchangeSpan } from '../telemetry/spans.ts';


export interface TcpContext {
  /** Outbound, with this sidecar's mTLS setting. */
  readonly scope: HopScope;
  /** This sidecar (its service is the source workload). */
  readonly hop: Hop;
  readonly tracer: Tracer;
  /** The outbound chain (sidecar/chain/stacks.ts), shared with HTTP. */
  readonly chain: Chain;
  /** The outbound HTTP/1.1 pool: its fresh connections carry the CONNECT (mTLS to peers when on); never returned to it. */
  readonly pool: UpstreamPool;
  /** Time for the peer's answer to the CONNECT, retries included (--outbound-timeout). */
  readonly upstreamTimeoutMs: number;
  /** One try's time (--per-try-timeout); 0: none. */
  readonly perTryTimeoutMs: number;
  /** An established tunnel with no byte either way this long is closed (--tunnel-idle-timeout). */
  readonly tunnelIdleTimeoutMs: number;
}

/** A closed tunnel's app connection that does not close its side is cut after this. */
const CLOSING_GRACE_MS = 5_000;
const NO_TRACE: TraceContextResult = Object.freeze({ kind: 'absent' });

/** One app connection: the hop's state for the chain and the observers. */
export class TcpHop extends HopState implements ConnectionOwner {
  readonly ctx: TcpContext;
  readonly app: Socket;
  readonly listener: TcpOutboundListener;
  conn: UpstreamConnection | undefined = undefined;
  /** Bytes of the peer's answer head read so far. */
  head: Buffer | undefined = undefined;
  timer: NodeJS.Timeout | undefined = undefined;
  appGone = false;

  constructor(listener: TcpOutboundListener, app: Socket, spec: TcpListenerSpec, startMs: number) {
    const ctx = listener.ctx;
    const target = `${spec.service}:${spec.port}`;
    const requestId = randomUUID();
    const span = startExchangeSpan(ctx.tracer, {
      direction: 'outbound',
      facts: { userAgent: undefined, peerAddress: app.remoteAddress, peerPort: app.remotePort, httpVersion: '1.1', secure: false },
      method: 'CONNECT',
      path: target,
      serverAddress: spec.service,
      serverPort: spec.port,
      requestId,
      trace: NO_TRACE,
    });
    super(ctx.scope, { startMs, protocol: 'tcp', method: 'CONNECT', target, authority: target, host: spec.service, requestId, sourceWorkload: ctx.hop.service, trace: NO_TRACE, span });
    this.ctx = ctx;
    this.app = app;
    this.listener = listener;
    this.timeoutMs = ctx.upstreamTimeoutMs;
    this.perTryTimeoutMs = ctx.perTryTimeoutMs;
  }

  header(): string | undefined {
    return undefined;
  }

  headers(): Readonly<Record<string, string | string[] | undefined>> {
    return EMPTY_HEADERS;
  }

  get security(): DownstreamSecurity | undefined {
    return undefined;
  }

  get remoteAddress(): string | undefined {
    return this.app.remoteAddress;
  }

  /** Nothing of the app's bytes has been read before the tunnel is up. */
  get replayable(): boolean {
    return !this.tunneled;
  }

  refuseConnection(): void {}

  resend(): void {
    if (this.ended) return;
    dropUpstream(this);
    send(this);
  }

  reject(err: ProxyError): void {
    fail(this, err);
  }

  respond(_reply: LocalReply): void {
    fail(this, new ProxyError(MESH_ERROR.tunnelUnsupported, 'a raw TCP connection cannot be answered with an HTTP response'));
  }

  onUpstreamData(conn: UpstreamConnection, chunk: Buffer): void {
    if (conn !== this.conn || this.ended) return;
    if (this.tunneled) {
      this.bytesOut += chunk.length;
      this.timer?.refresh();
      if (!this.appGone && !this.app.write(chunk)) conn.socket.pause();
      return;
    }
    readAnswer(this, conn, chunk);
  }

  onUpstreamDrain(conn: UpstreamConnection): void {
    if (conn === this.conn && this.tunneled && !this.appGone) this.app.resume();
  }

  onUpstreamGone(conn: UpstreamConnection, err: Error | undefined): void {
    if (conn !== this.conn || this.ended) return;
    if (this.tunneled) {
      closeTunnel(this, err === undefined ? 'upstream_closed' : 'upstream_reset');
      return;
    }
    const kind: FailureKind = conn.ready ? 'reset' : 'connect';
    const error =
      (err === undefined ? undefined : conn.failureFor(err, `sidecar ${conn.describe()}`)) ??
      conn.failure ??
      (err === undefined
        ? new ProxyError(MESH_ERROR.upstreamReset, `sidecar ${conn.describe()} of service "${this.service}" closed the connection before answering the tunnel's CONNECT`)
        : upstreamError(err, `sidecar ${conn.describe()}`));
    tryFailed(this, kind, error);
  }
}

const EMPTY_HEADERS: Readonly<Record<string, string>> = Object.freeze(Object.create(null) as Record<string, string>);

function upstreamName(hop: TcpHop): string {
  const ep = hop.endpoint;
  return `endpoint ${ep?.address ?? ''}${ep?.pod === undefined ? '' : ` (pod ${ep.pod})`} of service "${hop.service}"`;
}

/** The CONNECT the peer's inbound sidecar reads (h1/engine.ts): the app port, trace context, source. */
function connectHead(hop: TcpHop): string {
  const sc = hop.span.spanContext();
  return (
    `CONNECT ${hop.target} HTTP/1.1\r\nhost: ${hop.target}\r\n` +
    `traceparent: ${formatTraceparent(sc.traceId, sc.spanId, sc.traceFlags)}\r\n` +
    `${REQUEST_ID_HEADER}: ${hop.requestId}\r\n${SOURCE_WORKLOAD_HEADER}: ${hop.ctx.hop.service}\r\n` +
    `${EXPECTED_TIMEOUT_HEADER}: ${hop.tryTimeoutMs}\r\n\r\n`
  );
}

function send(hop: TcpHop): void {
  const conn = hop.ctx.pool.acquire(hop.endpoint as Endpoint, hop, true);
  hop.conn = conn;
  hop.head = undefined;
  if (conn.tls) hop.peer = conn;
  else hop.tlsMode = 'none';
  hop.nextTryTimeout();
  hop.timer = setTimeout(onTryTimeout, hop.tryTimeoutMs, hop);
  // Buffered until the connection (and its TLS handshake) is up.
  conn.write(connectHead(hop));
}

function onTryTimeout(hop: TcpHop): void {
  hop.timer = undefined;
  if (hop.ended || hop.tunneled) return;
  tryFailed(hop, 'timeout', new ProxyError(MESH_ERROR.timeout, `${upstreamName(hop)} did not open the tunnel within ${hop.tryTimeoutMs} ms (${hop.timeoutFlag('--outbound-timeout')})`));
}

/** The peer's answer to the CONNECT: 200 opens the tunnel; anything else refuses the connection. */
function readAnswer(hop: TcpHop, conn: UpstreamConnection, chunk: Buffer): void {
  const buf = hop.head === undefined ? chunk : Buffer.concat([hop.head, chunk]);
  let end: number;
  let status: number;
  let names: readonly string[];
  let values: readonly string[];
  try {
    end = findHeadEnd(buf, 0);
    if (end === -1) {
      hop.head = buf;
      return;
    }
    ({ status, names, values } = parseResponseHead(buf, end));
  } catch (err) {
    tryFailed(hop, 'reset', new ProxyError(MESH_ERROR.upstreamReset, `sidecar ${conn.describe()} answered the tunnel's CONNECT with something that is not HTTP: ${(err as Error).message}`, { cause: err }));
    return;
  }
  hop.head = undefined;
  clearTimeout(hop.timer);
  hop.timer = undefined;
  hop.status = status;
  const i = status >= 500 ? names.indexOf(MESH_ERROR_HEADER) : -1;
  hop.upstreamMeshError = i === -1 ? undefined : values[i];
  const t = names.indexOf(TRACERESPONSE);
  hop.upstreamSpanId = t === -1 ? undefined : spanIdOfTraceresponse(values[t]);
  // A retry on the answer (a peer that never reached its app) takes the hop over.
  if (hop.ctx.chain.onResponse(hop)) {
    dropUpstream(hop);
    return;
  }
  if (status !== 200) {
    // Refused by the peer (a port that is not opaque, a policy, no app listening): the app's
    // connection is reset; the span and access log carry the peer's status and error code.
    dropUpstream(hop);
    resetApp(hop);
    finish(hop);
    return;
  }
  openTunnel(hop, conn, end < buf.length ? buf.subarray(end) : undefined);
}

/** The tunnel is up: the balancer sees the call end (a connection's lifetime is not latency); bytes flow until one side closes. */
function openTunnel(hop: TcpHop, conn: UpstreamConnection, rest: Buffer | undefined): void {
  hop.tunneled = true;
  endTry(hop, true);
  if (rest !== undefined && rest.length > 0) {
    hop.bytesOut += rest.length;
    if (!hop.app.write(rest)) conn.socket.pause();
  }
  hop.timer = setTimeout(onTunnelIdle, hop.ctx.tunnelIdleTimeoutMs, hop);
  hop.app.resume();
}

function onTunnelIdle(hop: TcpHop): void {
  hop.timer = undefined;
  closeTunnel(hop, 'idle_timeout');
}

/** A try failed before the peer's answer: the chain retries it, or the connection is refused. */
function tryFailed(hop: TcpHop, kind: FailureKind, error: ProxyError): void {
  clearTimeout(hop.timer);
  hop.timer = undefined;
  dropUpstream(hop);
  if (hop.ctx.chain.onUpstreamFailure(hop, { kind, error })) return;
  fail(hop, error);
}

/** Ends the hop with a mesh failure: the app's connection is reset (or cut, once the tunnel is up). The first failure wins. */
function fail(hop: TcpHop, err: ProxyError): void {
  if (hop.ended) return;
  hop.error ??= err;
  clearTimeout(hop.timer);
  hop.timer = undefined;
  dropUpstream(hop);
  resetApp(hop);
  finish(hop);
}

function dropUpstream(hop: TcpHop): void {
  const conn = hop.conn;
  hop.conn = undefined;
  conn?.destroy();
}

function resetApp(hop: TcpHop): void {
  if (hop.appGone) return;
  hop.appGone = true;
  hop.app.resetAndDestroy();
}

/**
 * Ends a tunnel, once: the side that closed cleanly has its close passed on (queued bytes are
 * flushed first); after a reset, an idle timeout or at shutdown both connections are cut.
 * Half-closed connections are not kept open (as for WebSocket tunnels).
 */
function closeTunnel(hop: TcpHop, reason: CloseReason): void {
  if (hop.ended) return;
  hop.closeReason = reason;
  clearTimeout(hop.timer);
  hop.timer = undefined;
  const conn = hop.conn;
  hop.conn = undefined;
  if (conn !== undefined) {
    conn.owner = undefined;
    if (reason === 'client_closed') conn.socket.end();
    else conn.socket.destroy();
  }
  if (!hop.appGone) {
    if (reason === 'upstream_closed') {
      hop.app.end();
      hop.app.setTimeout(CLOSING_GRACE_MS, onClosingGrace);
    } else if (reason !== 'client_closed') {
      hop.appGone = true;
      hop.app.destroy();
    }
  }
  finish(hop);
}

function onClosingGrace(this: Socket): void {
  this.destroy();
}

/** Runs the observers, once. */
function finish(hop: TcpHop): void {
  if (hop.ended) return;
  clearTimeout(hop.timer);
  hop.timer = undefined;
  hop.listener.live.delete(hop);
  hop.ctx.chain.end(hop);
}

// --- the app's socket ----------------------------------------------------------------------

const kHop = Symbol('tracemesh.tcpHop');
interface Carrier {
  [kHop]?: TcpHop;
}

function hopOf(s: Socket): TcpHop {
  return (s as Carrier)[kHop] as TcpHop;
}

function onAppData(this: Socket, chunk: Buffer): void {
  const hop = hopOf(this);
  if (!hop.tunneled || hop.ended) return;
  hop.bytesIn += chunk.length;
  hop.timer?.refresh();
  const conn = hop.conn;
  if (conn !== undefined && !conn.write(chunk)) this.pause();
}

function onAppDrain(this: Socket): void {
  const hop = hopOf(this);
  if (hop.tunneled && !hop.ended) hop.conn?.socket.resume();
}

function onAppEnd(this: Socket): void {
  const hop = hopOf(this);
  if (hop.tunneled) closeTunnel(hop, 'client_closed');
}

function onAppError(): void {
  // 'close' follows with hadError set.
}

function onAppClose(this: Socket): void {
  const hop = hopOf(this);
  hop.appGone = true;
  if (hop.ended) return;
  if (hop.tunneled) {
    closeTunnel(hop, 'client_reset');
    return;
  }
  // The app gave up before the tunnel was up.
  hop.downstreamAborted = true;
  dropUpstream(hop);
  finish(hop);
}

/**
 * One listener per `--tcp-listeners` entry, on 127.0.0.1. Limits: --max-downstream-connections
 * (connections closed at accept, set by the caller with capConnections), --max-concurrent-requests
 * and the circuit breakers (a connection is a request in flight until it closes: refused with a
 * reset), --outbound-timeout (to the peer's 200), --tunnel-idle-timeout (an open tunnel).
 */
export class TcpOutboundListener {
  readonly ctx: TcpContext;
  readonly spec: TcpListenerSpec;
  readonly server: Server;
  /** Hops not yet ended, for shutdown. */
  readonly live = new Set<TcpHop>();

  constructor(ctx: TcpContext, spec: TcpListenerSpec) {
    this.ctx = ctx;
    this.spec = spec;
    this.server = createServer({ noDelay: true, pauseOnConnect: true }, (socket) => this.serve(socket));
  }

  private serve(app: Socket): void {
    const startMs = performance.now();
    const hop = new TcpHop(this, app, this.spec, startMs);
    (app as Carrier)[kHop] = hop;
    app.on('data', onAppData);
    app.on('drain', onAppDrain);
    app.on('end', onAppEnd);
    app.on('error', onAppError);
    app.on('close', onAppClose);
    this.live.add(hop);
    const chain = this.ctx.chain;
    chain.start(hop);
    const decision = chain.request(hop);
    if (decision === undefined) send(hop);
    else if (decision === PENDING) return;
    else if (decision instanceof ProxyError) fail(hop, decision);
    else hop.respond(decision);
  }

  /** Cuts every connection (shutdown): open tunnels end with `shutdown`. */
  closeAll(): void {
    for (const hop of [...this.live]) {
      if (hop.tunneled) closeTunnel(hop, 'shutdown');
      else fail(hop, new ProxyError(MESH_ERROR.upstreamReset, 'the sidecar is shutting down'));
    }
  }
}
