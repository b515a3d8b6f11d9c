// The span of one hop: started when the request arrives (child of the incoming trace
// context) and ended by SpanRecorder with the HTTP and mesh attributes of the outcome.

import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  createTraceState,
  trace,
  type Attributes,
  type Span,
  type TraceState,
  type Tracer,
} from '@opentelemetry/api';
import { ATTR, MESH_ERROR } from '../../common/semconv.ts';
import type { TraceContext, TraceContextResult } from '../../common/trace-context.ts';
import type { Direction, DownstreamRequest, Exchange, ExchangeObserver } from '../proxy/exchange.ts';

const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE', 'QUERY']);
/**
 * OpenTelemetry `network.local.*`: on a CLIENT span whose TLS handshake failed, the local end
 * of the connection, which equals `network.peer.*` on the peer's handshake-failure span.
 */
export const NETWORK_LOCAL_ADDRESS = 'network.local.address';
export const NETWORK_LOCAL_PORT = 'network.local.port';

/** Bad trace headers are attacker-controlled; record enough to debug, not a megabyte. */
const MAX_INVALID_VALUE = 512;

/**
 * A TraceState that serializes to the header exactly as received and parses it only if
 * someone asks for a member; the proxy never does, so the hot path never parses it twice.
 */
class RawTraceState implements TraceState {
  private readonly raw: string;
  constructor(raw: string) {
    this.raw = raw;
  }
  set(key: string, value: string): TraceState {
    return createTraceState(this.raw).set(key, value);
  }
  unset(key: string): TraceState {
    return createTraceState(this.raw).unset(key);
  }
  get(key: string): string | undefined {
    return createTraceState(this.raw).get(key);
  }
  serialize(): string {
    return this.raw;
  }
}

function remoteParent(ctx: TraceContext) {
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: ctx.traceId,
    spanId: ctx.spanId,
    traceFlags: ctx.traceFlags,
    isRemote: true,
    ...(ctx.traceState === undefined ? {} : { traceState: new RawTraceState(ctx.traceState) }),
  });
}

export interface SpanStart {
  readonly direction: Direction;
  readonly req: DownstreamRequest;
  readonly method: string;
  readonly path: string;
  readonly service: string;
  readonly serverAddress: string;
  readonly serverPort: number;
  readonly requestId: string;
  readonly trace: TraceContextResult;
}

/**
 * Starts the hop's span: SERVER for inbound, CLIENT for outbound, named by the HTTP method
 * (the route is unknown to the proxy). A found context becomes the remote parent; an invalid
 * one starts a new trace and its raw value is recorded as `mesh.trace_context.invalid`.
 */
export function startExchangeSpan(tracer: Tracer, s: SpanStart): Span {
  const known = KNOWN_METHODS.has(s.method);
  const server = s.direction === 'inbound';
  const attributes: Attributes = {
    [ATTR.httpRequestMethod]: known ? s.method : '_OTHER',
    [ATTR.urlPath]: s.path,
    // Inbound over mTLS the client spoke https (HTTP/2 here is only ever over TLS).
    [ATTR.urlScheme]: server && (s.req.httpVersionMajor === 2 || (s.req.socket as { encrypted?: boolean }).encrypted === true) ? 'https' : 'http',
    [ATTR.serverAddress]: s.serverAddress,
    [ATTR.serverPort]: s.serverPort,
    // OpenTelemetry writes HTTP/2 as "2", not node's "2.0".
    [ATTR.networkProtocolVersion]: s.req.httpVersionMajor === 2 ? '2' : s.req.httpVersion,
    [ATTR.meshDirection]: s.direction,
    [ATTR.meshDestinationService]: s.service,
    [ATTR.requestId]: s.requestId,
  };
  if (!known) attributes['http.request.method_original'] = s.method;
  const ua = s.req.headers['user-agent'];
  if (ua !== undefined) attributes[ATTR.userAgentOriginal] = ua;
  if (server) {
    const sock = s.req.socket;
    if (sock.remoteAddress !== undefined) attributes[ATTR.networkPeerAddress] = sock.remoteAddress;
    if (sock.remotePort !== undefined) attributes[ATTR.networkPeerPort] = sock.remotePort;
  }
  const t = s.trace;
  if (t.kind === 'invalid') attributes[ATTR.meshInvalidTraceHeader] = t.value.slice(0, MAX_INVALID_VALUE);
  const span = tracer.startSpan(
    known ? s.method : 'HTTP',
    { kind: server ? SpanKind.SERVER : SpanKind.CLIENT, attributes },
    t.kind === 'found' ? remoteParent(t.context) : ROOT_CONTEXT,
  );
  if (t.kind === 'invalid') span.addEvent('mesh.trace_context.invalid', { header: t.header, reason: t.reason });
  return span;
}

/**
 * Ends the span with the outcome. Status rules follow the HTTP semantic conventions: 5xx is
 * an error on both kinds, 4xx only on CLIENT spans. A mesh failure sets `mesh.error.code`,
 * `error.type` (the same code) and an exception event; `http.response.status_code` is then
 * the synthesized status.
 */
export class SpanRecorder implements ExchangeObserver {
  onExchangeEnd(ex: Exchange): void {
    const span = ex.span;
    if (!span.isRecording()) {
      span.end();
      return;
    }
    const outbound = ex.ctx.direction === 'outbound';
    if (ex.status > 0) span.setAttribute(ATTR.httpResponseStatusCode, ex.status);
    const peer = ex.peer;
    const tlsMode = outbound ? (peer !== undefined ? 'mtls' : ex.ctx.h2 === undefined ? 'none' : undefined) : ex.tlsMode;
    if (tlsMode !== undefined) span.setAttribute(ATTR.meshTlsMode, tlsMode);
    const peerIdentity = outbound ? peer?.peerIdentity : ex.peerIdentity;
    if (peerIdentity !== undefined) span.setAttribute(ATTR.meshPeerIdentity, peerIdentity);
    if (ex.policyDecision !== undefined) {
      span.setAttribute(ATTR.meshPolicyDecision, ex.policyDecision);
      if (ex.policyName !== undefined) span.setAttribute(ATTR.meshPolicyName, ex.policyName);
    }
    if (outbound) {
      span.setAttribute(ATTR.meshRetryAttempt, ex.attempt);
      if (peer?.localPort !== undefined && ex.error?.code === MESH_ERROR.tlsHandshake) {
        if (peer.localAddress !== undefined) span.setAttribute(NETWORK_LOCAL_ADDRESS, peer.localAddress);
        span.setAttribute(NETWORK_LOCAL_PORT, peer.localPort);
      }
      const ep = ex.endpoint;
      if (ep !== undefined) {
        span.setAttribute(ATTR.meshEndpoint, ep.address);
        span.setAttribute(ATTR.networkPeerAddress, ep.host);
        span.setAttribute(ATTR.networkPeerPort, ep.port);
        if (ep.pod !== undefined) span.setAttribute(ATTR.meshEndpointPod, ep.pod);
        if (ep.node !== undefined) span.setAttribute(ATTR.meshEndpointNode, ep.node);
      }
    }
    const err = ex.error;
    if (err !== undefined) {
      span.setAttribute(ATTR.meshErrorCode, err.code);
      span.setAttribute(ATTR.errorType, err.code);
      span.recordException(err);
      span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
    } else if (ex.downstreamAborted) {
      span.setAttribute(ATTR.errorType, 'DOWNSTREAM_ABORTED');
      span.setStatus({ code: SpanStatusCode.ERROR, message: 'the client closed the connection before the response completed' });
    } else if (ex.status >= 500 || (outbound && ex.status >= 400)) {
      span.setAttribute(ATTR.errorType, String(ex.status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
  }
}
