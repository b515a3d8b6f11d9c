// What the observers (span, access log, metrics) read of a finished hop. Both engines fill it:
// the HTTP/2 engine's Exchange (sidecar/proxy/exchange.ts) and the raw HTTP/1.1 engine's
// H1Exchange (sidecar/h1/engine.ts).

import type { Span } from '@opentelemetry/api';
import type { Endpoint } from '../endpoints/endpoints.ts';
import type { ProxyError } from '../errors.ts';

export type Direction = 'inbound' | 'outbound';
export type TlsMode = 'mtls' | 'plaintext' | 'none';

export interface HopRecord {
  readonly ctx: {
    readonly direction: Direction;
    /** HTTP/2 engine: the outbound mTLS pool (its presence means mTLS is on). */
    readonly h2?: unknown;
    /** HTTP/1.1 engine: this sidecar has mTLS on. */
    readonly mtls?: boolean;
  };
  readonly span: Span;
  /** `performance.now()` at arrival. */
  readonly startMs: number;
  readonly method: string;
  /** `url.path`. */
  readonly path: string;
  readonly service: string;
  readonly requestId: string;
  readonly sourceWorkload: string;
  readonly status: number;
  readonly error: ProxyError | undefined;
  readonly downstreamAborted: boolean;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly attempt: number;
  readonly upstreamHost: string;
  readonly upstreamPort: number;
  readonly endpoint: Endpoint | undefined;
  /** Inbound: how the peer connected. Outbound: set by the HTTP/1.1 engine; derived from `peer`/`ctx.h2` otherwise. */
  readonly tlsMode: TlsMode | undefined;
  /** Inbound: the SPIFFE ID the client proved. */
  readonly peerIdentity: string | undefined;
  /** Outbound over mTLS: the connection the request went on. */
  readonly peer: { readonly peerIdentity: string | undefined; readonly localAddress: string | undefined; readonly localPort: number | undefined } | undefined;
  readonly policyDecision: 'allow' | 'deny' | undefined;
  readonly policyName: string | undefined;
}

export interface HopObserver {
  /** Called exactly once per hop, after it ended. Must not throw, block or do I/O synchronously. */
  onExchangeEnd(hop: HopRecord): void;
}

/** `mesh.tls.mode` of a hop, or undefined when unknown (an outbound hop that never reached a peer). */
export function tlsModeOf(hop: HopRecord): TlsMode | undefined {
  if (hop.tlsMode !== undefined) return hop.tlsMode;
  if (hop.ctx.direction === 'inbound') return undefined;
  if (hop.peer !== undefined) return 'mtls';
  return (hop.ctx.mtls ?? hop.ctx.h2 !== undefined) ? undefined : 'none';
}

/** `mesh.peer.identity`: the client (inbound) or server sidecar (outbound) SPIFFE ID. */
export function peerIdentityOf(hop: HopRecord): string | undefined {
  return hop.ctx.direction === 'outbound' ? hop.peer?.peerIdentity : hop.peerIdentity;
}
