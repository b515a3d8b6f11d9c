// The one engine-neutral view of a request and the state of its hop. Every codec (the raw
// HTTP/1.1 engine in sidecar/h1/, HTTP/2 and gRPC in sidecar/proxy/, and later WebSocket and
// TCP) makes its per-request object a subclass of HopState, so the chain's layers
// (sidecar/chain/layers/) and the observers (span, access log, metrics) read one shape
// without knowing which engine produced it. A subclass costs no allocation beyond the codec's
// own exchange object.

import type { Span } from '@opentelemetry/api';
import type { TraceContextResult } from '../../common/trace-context.ts';
import type { Cluster } from '../balancer/cluster.ts';
import type { CallTracker } from '../balancer/load-balancer.ts';
import type { Endpoint } from '../endpoints/endpoints.ts';
import type { ProxyError } from '../errors.ts';
import type { RouteFacts } from '../routing/facts.ts';
import type { LocalReply } from './reply.ts';

/** `outbound`: app → mesh (CLIENT span). `inbound`: mesh → local app (SERVER span). */
export type Direction = 'inbound' | 'outbound';

/**
 * `mesh.tls.mode` of a hop: `mtls` (verified peer), `plaintext` (no TLS on a sidecar that has
 * mTLS on: PERMISSIVE or DISABLE, or refused in STRICT), `none` (this sidecar has no mTLS).
 */
export type TlsMode = 'mtls' | 'plaintext' | 'none';

/** `mesh.policy.decision`. */
export type PolicyDecision = 'allow' | 'deny';

/**
 * What the downstream spoke: `http/1.0`, `http/1.1`, `h2` (HTTP/2, h2c or over TLS) or `grpc`
 * (a gRPC call over HTTP/2); for tunnels, `websocket` (an HTTP/1.1 `Upgrade: websocket`),
 * `upgrade` (any other HTTP/1.1 upgrade), `tcp` (raw TCP on an opaque port, carried between
 * sidecars as an HTTP/1.1 CONNECT).
 */
export type Protocol = 'http/1.0' | 'http/1.1' | 'h2' | 'grpc' | 'websocket' | 'upgrade' | 'tcp';

/**
 * Why a tunnel (WebSocket, other upgrade, TCP) ended, once its bytes flowed
 * (`mesh.connection.close_reason`, `close_reason` in the access log):
 * - `client_closed` / `upstream_closed`: that side closed its connection cleanly;
 * - `client_reset` / `upstream_reset`: that side's connection failed (reset, TLS error);
 * - `idle_timeout`: no byte either way for --tunnel-idle-timeout;
 * - `shutdown`: the sidecar was stopping and cut it.
 */
export type CloseReason = 'client_closed' | 'upstream_closed' | 'client_reset' | 'upstream_reset' | 'idle_timeout' | 'shutdown';

/** What a downstream connection proved, when it came through the mesh inbound listener. */
/** Bytes of an app's error response body recorded on its span (`mesh.error.body`). */
export const ERROR_BODY_BYTES = 256;

/** The data of a prefix of a chunked HTTP/1.1 body (as many whole or partial chunks as it holds). */
function dechunk(wire: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  while (i < wire.length) {
    const eol = wire.indexOf('\r\n', i, 'latin1');
    if (eol === -1) break;
    const size = Number.parseInt(wire.toString('latin1', i, eol).split(';')[0] ?? '', 16);
    if (!Number.isFinite(size) || size <= 0) break;
    const start = eol + 2;
    out.push(wire.subarray(start, Math.min(start + size, wire.length)));
    i = start + size + 2;
  }
  return Buffer.concat(out);
}

export interface DownstreamSecurity {
  readonly tlsMode: 'mtls' | 'plaintext';
  readonly peerIdentity: string | undefined;
  /** The client's certificate was refused: every request gets this answer, then the connection closes. */
  readonly rejection: ProxyError | undefined;
}

/** The connection facts of an outbound hop over mTLS (the pooled connection it went on). */
export interface PeerFacts {
  readonly peerIdentity: string | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
}

/** Facts of the listener a hop arrived on; one object per listener, shared by its hops. */
export interface HopScope {
  readonly direction: Direction;
  /** This sidecar has mTLS on (outbound hops are then mTLS, or fail). */
  readonly mtls: boolean;
}

/** What every codec knows when a request head has been read. */
export interface HopInit {
  readonly startMs: number;
  readonly protocol: Protocol;
  readonly method: string;
  readonly target: string;
  readonly authority: string;
  readonly host: string;
  readonly requestId: string;
  readonly sourceWorkload: string;
  readonly trace: TraceContextResult;
  readonly span: Span;
}

/** One failed try of a hop that was tried again (kept for the span of the recovered failure). */
export interface FailedAttempt {
  readonly attempt: number;
  readonly endpoint: Endpoint | undefined;
  /** The mesh failure of the try; for a retried response status, a description of it. */
  readonly error: ProxyError;
  /** The upstream's status when the try was retried on its answer (0 otherwise). */
  readonly status: number;
  /** The span id the upstream named in its `traceresponse` for this try's answer. */
  readonly peerSpanId: string | undefined;
  readonly startMs: number;
  readonly endMs: number;
}

export abstract class HopState {
  readonly scope: HopScope;
  readonly direction: Direction;
  readonly span: Span;
  /** `performance.now()` at arrival. */
  readonly startMs: number;
  readonly protocol: Protocol;
  /** Method as received. */
  readonly method: string;
  /** Path and query as forwarded upstream (origin-form); a layer may rewrite it (normalization). */
  target: string;
  /** Host (and port) the client addressed, as received (`Host`, `:authority` or absolute form). */
  readonly authority: string;
  /** `server.address`: the host part of `authority`. */
  readonly host: string;
  readonly requestId: string;
  /** Workload that sent the request, when known (`unknown` otherwise). */
  readonly sourceWorkload: string;
  readonly trace: TraceContextResult;

  /** Destination service: set by the route layer (outbound: from the Host; inbound: this sidecar's). */
  service = '';
  /** Set by the route layer when an HTTPRoute / GRPCRoute took the request: its edits, timeouts and retry policy. */
  route: RouteFacts | undefined = undefined;
  /** Outbound: the cluster of `service`, set by the balance layer. */
  cluster: Cluster | undefined = undefined;
  /** Where the request goes: the chosen endpoint (outbound) or the local app (inbound); set by the pick layer. */
  endpoint: Endpoint | undefined = undefined;
  /** The balancing policy that chose `endpoint` (outbound), for `mesh.lb.policy`. */
  lbPolicy: string | undefined = undefined;
  /** Sees the call to `endpoint` end (the balancer's load and latency bookkeeping). */
  tracker: CallTracker | undefined = undefined;
  /** 0 for the first try; incremented by each retry. */
  attempt = 0;
  /** Why the last retry happened (`mesh.retry.reason`). */
  retryReason: string | undefined = undefined;
  /** Tries that failed and were retried; undefined until one is. */
  failedAttempts: FailedAttempt[] | undefined = undefined;
  /** `performance.now()` when the current try started. */
  tryStartMs = 0;
  /** How long the whole leg may take to its response head (the codec's timeout, or less when the caller said so). */
  timeoutMs = 0;
  /** The time of one try; 0: only `timeoutMs`. */
  perTryTimeoutMs = 0;
  /** The timeout armed for the current try, ms. */
  tryTimeoutMs = 0;
  /** A retry is waiting for its backoff (or for an endpoint); cleared when it fires. */
  retryTimer: NodeJS.Timeout | undefined = undefined;
  /** A circuit breaker refused the request or a retry (`mesh.circuit.open`: its name). */
  circuitOpen: string | undefined = undefined;
  /** The breaker layer counts this hop in its cluster's requests in flight. */
  counted = false;
  /** A policy retry of this hop is in flight (the `max_retries` breaker counts it). */
  retryInFlight = false;
  /** gRPC: the status the client was given (`grpc-status`), -1 until known. */
  grpcStatus = -1;
  /** The `x-tracemesh-error` of a 5xx answer from a peer sidecar (set by the codecs at the response head). */
  upstreamMeshError: string | undefined = undefined;
  /** The span id in the upstream's `traceresponse`, when its answer had one (set by the codecs at the response head). */
  upstreamSpanId: string | undefined = undefined;
  /** The chosen endpoint was ejected by outlier detection when a retry had to pick again. */
  endpointEjected = false;
  /** Inbound: how the peer connected; outbound: how this sidecar reached the endpoint. */
  tlsMode: TlsMode | undefined = undefined;
  /** Inbound: the SPIFFE ID the client proved. (Outbound: read from `peer`.) */
  peerIdentity: string | undefined = undefined;
  /** Outbound over mTLS: the connection the request went on. */
  peer: PeerFacts | undefined = undefined;
  policyDecision: PolicyDecision | undefined = undefined;
  /** `ns/name` of the AuthorizationPolicy that decided, if one did. */
  policyName: string | undefined = undefined;
  /** Status sent downstream; 0 when no response was sent. */
  status = 0;
  /** Set when the mesh produced the failure. */
  error: ProxyError | undefined = undefined;
  /** The downstream client went away before the response completed. */
  downstreamAborted = false;
  /** The start of the app's error response body (inbound, status ≥ 500), for `mesh.error.body`. */
  errorBody: Buffer | undefined = undefined;
  errorBodyChunked = false;
  bytesIn = 0;
  bytesOut = 0;
  /** A tunnel (WebSocket, upgrade, TCP) was established: bytes flow both ways until one side closes. */
  tunneled = false;
  /** Why an established tunnel ended. */
  closeReason: CloseReason | undefined = undefined;
  /** Inbound raw TCP: the app port the tunnel is for (CONNECT's port); undefined: the app port. */
  appPort: number | undefined = undefined;
  /** The observers ran (the hop is over). */
  ended = false;

  constructor(scope: HopScope, init: HopInit) {
    this.scope = scope;
    this.direction = scope.direction;
    this.span = init.span;
    this.startMs = init.startMs;
    this.protocol = init.protocol;
    this.method = init.method;
    this.target = init.target;
    this.authority = init.authority;
    this.host = init.host;
    this.requestId = init.requestId;
    this.sourceWorkload = init.sourceWorkload;
    this.trace = init.trace;
  }

  /**
   * Keeps the start of an app's 5xx response body (inbound side only), so the span can say what
   * the app said. `chunked`: HTTP/1.1 wire bytes with chunk framing, decoded by errorBodyText.
   */
  keepErrorBody(chunk: Buffer, chunked = false): void {
    if (this.status < 500 || this.direction !== 'inbound') return;
    // Framing can take several bytes per body byte: keep more wire bytes of a chunked body.
    const cap = chunked ? ERROR_BODY_BYTES * 8 : ERROR_BODY_BYTES;
    const have = this.errorBody?.length ?? 0;
    if (have >= cap) return;
    const part = chunk.subarray(0, cap - have);
    this.errorBody = this.errorBody === undefined ? Buffer.from(part) : Buffer.concat([this.errorBody, part]);
    this.errorBodyChunked = chunked;
  }

  /** The kept error body as at most ERROR_BODY_BYTES of text; undefined when none was kept. */
  errorBodyText(): string | undefined {
    let body = this.errorBody;
    if (body === undefined) return undefined;
    if (this.errorBodyChunked) body = dechunk(body);
    const text = body
      .subarray(0, ERROR_BODY_BYTES)
      .toString('utf8')
      .replace(/\uFFFD$/, '') // a character cut at the end
      .replace(/[\u0000-\u001F\u007F]+/g, ' ')
      .trim();
    return text === '' ? undefined : text;
  }

  /** Arms the clock of a try: the per-try timeout, or what is left of the leg's, at least 1 ms. */
  nextTryTimeout(): number {
    const left = this.startMs + this.timeoutMs - performance.now();
    const t = this.perTryTimeoutMs > 0 && this.perTryTimeoutMs < left ? this.perTryTimeoutMs : left;
    this.tryTimeoutMs = Math.max(1, Math.round(t));
    return this.tryTimeoutMs;
  }

  /** The flag that set the timeout that just fired, for its error message. */
  timeoutFlag(legFlag: string): string {
    return this.perTryTimeoutMs > 0 && this.tryTimeoutMs === this.perTryTimeoutMs ? '--per-try-timeout' : legFlag;
  }

  /** `url.path`: the target without its query. */
  get path(): string {
    const q = this.target.indexOf('?');
    return q === -1 ? this.target : this.target.slice(0, q);
  }

  /** One request header by lower-case name (repeated values joined with `, `); for hash keys and routes. */
  abstract header(name: string): string | undefined;

  /** The request's header fields by lower-case name (for policy rules); may be built on demand. */
  abstract headers(): Readonly<Record<string, string | string[] | undefined>>;

  /** How the downstream connection was secured, as the inbound listener judged it; undefined: plaintext without the mesh listener. */
  abstract get security(): DownstreamSecurity | undefined;

  /** The downstream peer's address. */
  abstract get remoteAddress(): string | undefined;

  /**
   * The request could be sent again as it is: nothing of a body has to be replayed (no body,
   * or none read yet from the client and none written upstream).
   */
  abstract get replayable(): boolean;

  /**
   * The downstream connection must not carry more requests after this one (a refused
   * connection, plaintext in STRICT): HTTP/1.1 closes it, HTTP/2 sends the refusal GOAWAY.
   */
  abstract refuseConnection(): void;

  /**
   * Sends the request (again) to `endpoint`. Called by the chain for a retry, synchronously
   * from `onUpstreamFailure` or later from a backoff timer; never after the hop ended.
   */
  abstract resend(): void;

  /**
   * Ends the hop with a mesh failure, answered the codec's way (a synthesized response, a gRPC
   * status, or a cut connection when the response had started). Used by the chain when a
   * retry it took over cannot go on (no endpoint left, budget spent while waiting).
   */
  abstract reject(err: ProxyError): void;

  /**
   * Ends the hop with a response the mesh makes itself that is not a failure (a route's
   * redirect), answered the codec's way. Used by a layer that returned PENDING (a redirect
   * held by an injected delay); never after the hop ended or the response started.
   */
  abstract respond(reply: LocalReply): void;
}

/**
 * Request header an outbound sidecar sets to the time its try has left (ms), like Envoy's
 * `x-envoy-expected-rq-timeout-ms`. The inbound sidecar then times its app out a little
 * earlier (10%, at least 100 ms), so a slow app is reported once, by the sidecar beside it,
 * and the caller relays that answer instead of timing out itself. Never reaches an app.
 */
export const EXPECTED_TIMEOUT_HEADER = 'x-tracemesh-timeout-ms';

/** The inbound leg's timeout given the app timeout and the caller's header value (if valid). */
export function inboundTimeout(appTimeoutMs: number, header: string | undefined): number {
  if (header === undefined) return appTimeoutMs;
  const expected = Number(header);
  if (!Number.isInteger(expected) || expected <= 0) return appTimeoutMs;
  const margin = Math.max(100, expected * 0.1);
  return Math.max(1, Math.min(appTimeoutMs, Math.round(expected - margin)));
}
