// The state of one HTTP/2 (or node:http) request/response: the engine-neutral HopState that
// the chain and the observers read, plus what this codec needs to relay it.

import type { Agent, ClientRequest, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { ClientHttp2Stream, Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Tracer } from '@opentelemetry/api';
import type { Chain } from '../chain/chain.ts';
import { HopState, type DownstreamSecurity, type HopInit, type HopScope } from '../chain/hop.ts';
import type { AppProtocol } from '../config.ts';
import type { Hop, ProxyError } from '../errors.ts';
import type { LocalReply } from '../chain/reply.ts';
import { failExchange, replyExchange, resendExchange } from './forward.ts';
import { inboundConnectionOf, refuseOnConnection } from '../transport/inbound-listener.ts';
import type { H2Pool, PeerConnection } from '../transport/h2-pool.ts';

export type { Direction, PolicyDecision, TlsMode } from '../chain/hop.ts';
export { InFlight } from '../chain/layers/telemetry.ts';

/** A request as a listener receives it: HTTP/1.1 (node:http) or HTTP/2 (node:http2 compat). */
export type DownstreamRequest = IncomingMessage | Http2ServerRequest;
export type DownstreamResponse = ServerResponse | Http2ServerResponse;

/**
 * The protocol of an exchange's upstream request: HTTP/1.1 (`h1`), HTTP/2 over mTLS to a peer
 * sidecar (`h2`), or HTTP/2 over plain TCP with prior knowledge (`h2c`).
 */
export type UpstreamProtocol = 'h1' | 'h2' | 'h2c';

/** Everything a listener's exchanges share. One per listener (inbound or outbound). */
export interface ProxyContext {
  /** Direction and mTLS of the listener. */
  readonly scope: HopScope;
  /** This sidecar, as named in synthesized error bodies. */
  readonly hop: Hop;
  readonly tracer: Tracer;
  /** The mesh's decisions for every request (sidecar/chain/stacks.ts). */
  readonly chain: Chain;
  /** Inbound: keep-alive agent for HTTP/1.1 to the local app (for HTTP/2 callers of an HTTP/1.1 app). */
  readonly agent?: Agent | undefined;
  /** Outbound only, when mTLS is on: HTTP/2 sessions to peer sidecars. */
  readonly h2?: H2Pool | undefined;
  /**
   * h2c sessions (no TLS): inbound, to the local app; outbound when mTLS is off, to peer
   * sidecars for requests the app made over HTTP/2.
   */
  readonly h2c?: H2Pool | undefined;
  /** Inbound only: how to talk to the local app. Default `auto`. */
  readonly appProtocol?: AppProtocol | undefined;
  /** Inbound, when mTLS is on: this workload's SPIFFE ID now (for `x-forwarded-client-cert`). */
  readonly localIdentity?: (() => string) | undefined;
  /** The leg's timeout to the response head (outbound: retries included); see `forward()`. */
  readonly upstreamTimeoutMs: number;
  /** Outbound: the time of one try; 0 for none. */
  readonly perTryTimeoutMs?: number;
  /** Names the timeout's flag in its error message. */
  readonly timeoutFlag: string;
}

export class Exchange extends HopState {
  readonly ctx: ProxyContext;
  readonly req: DownstreamRequest;
  readonly res: DownstreamResponse;
  /** The downstream speaks HTTP/2 (a peer sidecar over mTLS, or h2c). */
  readonly downstreamH2: boolean;
  /** Host and port the client addressed (`server.address`, `server.port`). */
  readonly serverPort: number;
  /** Whether the request has a body to stream (decides retry safety). */
  readonly hasBody: boolean;
  /** A gRPC call (HTTP/2 with content-type application/grpc[+proto|;…]). */
  readonly grpc: boolean;

  upstreamHeaders: OutgoingHttpHeaders | undefined = undefined;
  upstreamProtocol: UpstreamProtocol = 'h1';
  /** HTTP/1.1 request, or the HTTP/2 stream (which is also `upstreamRes` once it answered). */
  upstream: ClientRequest | ClientHttp2Stream | undefined = undefined;
  upstreamRes: IncomingMessage | ClientHttp2Stream | undefined = undefined;
  /** The pooled HTTP/2 connection (mTLS or h2c) the request went on. */
  h2conn: PeerConnection | undefined = undefined;
  /** The request went on a connection that was already up (decides retry safety). */
  reused = false;
  /** Request body bytes were written upstream (the request can no longer be replayed). */
  bodyStarted = false;
  /** The upstream response's content-length, when it gave one; -1 otherwise. */
  responseLength = -1;
  /** gRPC: the upstream's `grpc-message`, for the span status. */
  grpcMessage: string | undefined = undefined;
  timer: NodeJS.Timeout | undefined = undefined;

  constructor(ctx: ProxyContext, req: DownstreamRequest, res: DownstreamResponse, init: HopInit, extra: { readonly serverPort: number; readonly hasBody: boolean; readonly grpc: boolean }) {
    super(ctx.scope, init);
    this.ctx = ctx;
    this.req = req;
    this.res = res;
    this.downstreamH2 = req.httpVersionMajor === 2;
    this.serverPort = extra.serverPort;
    this.hasBody = extra.hasBody;
    this.grpc = extra.grpc;
  }

  header(name: string): string | undefined {
    const v = this.req.headers[name];
    return typeof v === 'string' ? v : Array.isArray(v) ? v.join(', ') : undefined;
  }

  headers(): Readonly<Record<string, string | string[] | undefined>> {
    return this.req.headers;
  }

  get security(): DownstreamSecurity | undefined {
    return inboundConnectionOf(this.req);
  }

  get remoteAddress(): string | undefined {
    return inboundConnectionOf(this.req)?.remoteAddress ?? this.req.socket.remoteAddress;
  }

  get replayable(): boolean {
    return !this.hasBody && !this.bodyStarted;
  }

  refuseConnection(): void {
    const conn = inboundConnectionOf(this.req);
    if (conn?.rejection !== undefined) refuseOnConnection(this.req, this.res, conn);
    else if (!this.downstreamH2) (this.res as ServerResponse).shouldKeepAlive = false;
  }

  resend(): void {
    if (!this.ended) resendExchange(this);
  }

  reject(err: ProxyError): void {
    failExchange(this, err);
  }

  respond(r: LocalReply): void {
    if (!this.ended) replyExchange(this, r);
  }
}
