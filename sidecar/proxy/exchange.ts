// The state of one proxied request/response, shared by the forwarding engine and the
// observers (span, access log, metrics) that record it when it ends.

import type { Agent, ClientRequest, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { ClientHttp2Stream, Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Span, Tracer } from '@opentelemetry/api';
import type { TraceContextResult } from '../../common/trace-context.ts';
import type { AppProtocol } from '../config.ts';
import type { Endpoint } from '../endpoints/endpoints.ts';
import type { Hop, ProxyError } from '../errors.ts';
import type { H2Pool, PeerConnection } from '../transport/h2-pool.ts';

/** `outbound`: app → mesh (CLIENT span). `inbound`: mesh → local app (SERVER span). */
export type Direction = 'inbound' | 'outbound';

/** A request as a listener receives it: HTTP/1.1 (node:http) or HTTP/2 (node:http2 compat). */
export type DownstreamRequest = IncomingMessage | Http2ServerRequest;
export type DownstreamResponse = ServerResponse | Http2ServerResponse;

/**
 * `mesh.tls.mode` of a hop: `mtls` (verified peer), `plaintext` (no TLS on a sidecar that has
 * mTLS on: PERMISSIVE or DISABLE, or refused in STRICT), `none` (this sidecar has no mTLS).
 */
export type TlsMode = 'mtls' | 'plaintext' | 'none';

/** `mesh.policy.decision`. */
export type PolicyDecision = 'allow' | 'deny';

/**
 * The protocol of an exchange's upstream request: HTTP/1.1 (`h1`), HTTP/2 over mTLS to a peer
 * sidecar (`h2`), or HTTP/2 over plain TCP with prior knowledge (`h2c`).
 */
export type UpstreamProtocol = 'h1' | 'h2' | 'h2c';

export interface ExchangeObserver {
  /**
   * Called exactly once per exchange, after the downstream response finished or was
   * abandoned. Runs on the request path: must not throw, block or do I/O synchronously.
   */
  onExchangeEnd(ex: Exchange): void;
}

/** Counts exchanges in flight so that shutdown can wait for them. */
export class InFlight {
  count = 0;
  private waiters: Array<() => void> = [];

  add(): void {
    this.count++;
  }

  done(): void {
    this.count--;
    if (this.count === 0 && this.waiters.length > 0) {
      const w = this.waiters;
      this.waiters = [];
      for (const resolve of w) resolve();
    }
  }

  /** Resolves when nothing is in flight, or after `timeoutMs`; true when drained. */
  drained(timeoutMs: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}

/** Everything a listener's exchanges share. One per listener (inbound or outbound). */
export interface ProxyContext {
  readonly direction: Direction;
  /** This sidecar, as named in synthesized error bodies. */
  readonly hop: Hop;
  readonly tracer: Tracer;
  /** Keep-alive agent for HTTP/1.1 upstream connections (the local app, or peers without mTLS). */
  readonly agent: Agent;
  /** Outbound only, when mTLS is on: HTTP/2 sessions to peer sidecars. */
  readonly h2?: H2Pool | undefined;
  /**
   * h2c sessions (no TLS): inbound, to the local app; outbound when mTLS is off, to peer
   * sidecars for requests the app made over HTTP/2. Without it every such hop is HTTP/1.1.
   */
  readonly h2c?: H2Pool | undefined;
  /** Inbound only: how to talk to the local app. Default `auto`. */
  readonly appProtocol?: AppProtocol | undefined;
  /** Inbound, when mTLS is on: this workload's SPIFFE ID now (for `x-forwarded-client-cert`). */
  readonly localIdentity?: (() => string) | undefined;
  /** See `forward()` for what the timeout covers. */
  readonly upstreamTimeoutMs: number;
  readonly observers: readonly ExchangeObserver[];
  readonly inFlight: InFlight;
}

export class Exchange {
  readonly ctx: ProxyContext;
  readonly req: DownstreamRequest;
  readonly res: DownstreamResponse;
  /** The downstream speaks HTTP/2 (a peer sidecar over mTLS). */
  readonly downstreamH2: boolean;
  /** `performance.now()` at arrival. */
  readonly startMs: number;
  /** Method as received. */
  readonly method: string;
  /** Path and query as forwarded upstream (origin-form); the inbound route may normalize it. */
  target: string;
  /** Logical destination service (outbound: from Host; inbound: this sidecar's service). */
  readonly service: string;
  /** Host and port the client addressed (`server.address`, `server.port`). */
  readonly serverAddress: string;
  readonly serverPort: number;
  readonly requestId: string;
  /** Workload that sent the request, when known (`unknown` otherwise). */
  readonly sourceWorkload: string;
  readonly trace: TraceContextResult;
  readonly span: Span;
  /** Whether the request has a body to stream (decides retry safety). */
  readonly hasBody: boolean;
  /** A gRPC call (HTTP/2 with content-type application/grpc[+proto|;…]). */
  readonly grpc: boolean;

  endpoint: Endpoint | undefined = undefined;
  /** Where the request is sent: the chosen endpoint (outbound) or the local app (inbound). */
  upstreamEndpoint: Endpoint | undefined = undefined;
  upstreamHost = '';
  upstreamPort = 0;
  upstreamHeaders: OutgoingHttpHeaders | undefined = undefined;
  upstreamProtocol: UpstreamProtocol = 'h1';
  /** HTTP/1.1 request, or the HTTP/2 stream (which is also `upstreamRes` once it answered). */
  upstream: ClientRequest | ClientHttp2Stream | undefined = undefined;
  upstreamRes: IncomingMessage | ClientHttp2Stream | undefined = undefined;
  /** Outbound over mTLS: the pooled connection the request went on. */
  peer: PeerConnection | undefined = undefined;
  /** The pooled HTTP/2 connection (mTLS or h2c) the request went on. */
  h2conn: PeerConnection | undefined = undefined;
  /** The request went on a connection that was already up (decides retry safety). */
  reused = false;
  /** Inbound: how the peer connected; outbound: how this sidecar reached the endpoint. */
  tlsMode: TlsMode | undefined = undefined;
  /** Inbound: the SPIFFE ID the client proved. (Outbound: read from `peer`.) */
  peerIdentity: string | undefined = undefined;
  policyDecision: PolicyDecision | undefined = undefined;
  /** `ns/name` of the AuthorizationPolicy that decided, if one did. */
  policyName: string | undefined = undefined;
  /** 0 for the first try; incremented by each retry. */
  attempt = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** The upstream response's content-length, when it gave one; -1 otherwise. */
  responseLength = -1;
  /** Status sent downstream; 0 when no response was sent. */
  status = 0;
  /** Set when the mesh produced the failure. */
  error: ProxyError | undefined = undefined;
  /** gRPC: the status the client was given (`grpc-status`), -1 until known. */
  grpcStatus = -1;
  /** gRPC: the upstream's `grpc-message`, for the span status. */
  grpcMessage: string | undefined = undefined;
  /** The downstream client went away before the response completed. */
  downstreamAborted = false;
  timer: NodeJS.Timeout | undefined = undefined;
  ended = false;

  constructor(
    ctx: ProxyContext,
    req: DownstreamRequest,
    res: DownstreamResponse,
    init: {
      readonly startMs: number;
      readonly method: string;
      readonly target: string;
      readonly service: string;
      readonly serverAddress: string;
      readonly serverPort: number;
      readonly requestId: string;
      readonly sourceWorkload: string;
      readonly trace: TraceContextResult;
      readonly span: Span;
      readonly hasBody: boolean;
      readonly grpc: boolean;
    },
  ) {
    this.ctx = ctx;
    this.req = req;
    this.res = res;
    this.downstreamH2 = req.httpVersionMajor === 2;
    this.startMs = init.startMs;
    this.method = init.method;
    this.target = init.target;
    this.service = init.service;
    this.serverAddress = init.serverAddress;
    this.serverPort = init.serverPort;
    this.requestId = init.requestId;
    this.sourceWorkload = init.sourceWorkload;
    this.trace = init.trace;
    this.span = init.span;
    this.hasBody = init.hasBody;
    this.grpc = init.grpc;
  }

  /** `url.path`: the target without its query. */
  get path(): string {
    const q = this.target.indexOf('?');
    return q === -1 ? this.target : this.target.slice(0, q);
  }
}
