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
import type { HopState } from '../chain/hop.ts';
import type { DownstreamRequest } from '../proxy/exchange.ts';
import { peerIdentityOf, tlsModeOf, type Direction, type HopObserver } from './hop.ts';

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

/** What the raw HTTP/1.1 engine knows of the downstream connection (instead of a node request). */
export interface DownstreamFacts {
  readonly userAgent: string | undefined;
  readonly peerAddress: string | undefined;
  readonly peerPort: number | undefined;
  /** `1.1` or `1.0`. */
  readonly httpVersion: string;
  /** The downstream connection is TLS. */
  readonly secure: boolean;
}

export interface SpanStart {
  readonly direction: Direction;
  /** The node:http / node:http2 request (HTTP/2 engine), or… */
  readonly req?: DownstreamRequest | undefined;
  /** …the facts the raw HTTP/1.1 engine parsed. */
  readonly facts?: DownstreamFacts | undefined;
  readonly method: string;
  readonly path: string;
  readonly serverAddress: string;
  readonly serverPort: number;
  readonly requestId: string;
  readonly trace: TraceContextResult;
}

function factsOf(req: DownstreamRequest): DownstreamFacts {
  const h2 = req.httpVersionMajor === 2;
  const ua = req.headers['user-agent'];
  return {
    userAgent: typeof ua === 'string' ? ua : undefined,
    peerAddress: req.socket.remoteAddress,
    peerPort: req.socket.remotePort,
    // OpenTelemetry writes HTTP/2 as "2", not node's "2.0". (HTTP/2 may be h2c: the socket says.)
    httpVersion: h2 ? '2' : req.httpVersion,
    secure: (req.socket as { encrypted?: boolean }).encrypted === true,
  };
}

/**
 * Starts the hop's span: SERVER for inbound, CLIENT for outbound, named by the HTTP method
 * (the route is unknown to the proxy). A found context becomes the remote parent; an invalid
 * one starts a new trace and its raw value is recorded as `mesh.trace_context.invalid`.
 */
export function startExchangeSpan(tracer: Tracer, s: SpanStart): Span {
  const known = KNOWN_METHODS.has(s.method);
  const server = s.direction === 'inbound';
  const f = s.facts ?? factsOf(s.req as DownstreamRequest);
  const attributes: Attributes = {
    [ATTR.httpRequestMethod]: known ? s.method : '_OTHER',
    [ATTR.urlPath]: s.path,
    // Inbound over mTLS the client spoke https.
    [ATTR.urlScheme]: server && f.secure ? 'https' : 'http',
    [ATTR.serverAddress]: s.serverAddress,
    [ATTR.serverPort]: s.serverPort,
    [ATTR.networkProtocolVersion]: f.httpVersion,
    [ATTR.meshDirection]: s.direction,
    [ATTR.requestId]: s.requestId,
  };
  if (!known) attributes['http.request.method_original'] = s.method;
  if (f.userAgent !== undefined) attributes[ATTR.userAgentOriginal] = f.userAgent;
  if (server) {
    if (f.peerAddress !== undefined) attributes[ATTR.networkPeerAddress] = f.peerAddress;
    if (f.peerPort !== undefined) attributes[ATTR.networkPeerPort] = f.peerPort;
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
export class SpanRecorder implements HopObserver {
  private readonly tracer: Tracer | undefined;

  /** `tracer` makes the spans of failed tries that were retried (without it they are not recorded). */
  constructor(tracer?: Tracer) {
    this.tracer = tracer;
  }

  onExchangeEnd(ex: HopState): void {
    const span = ex.span;
    if (!span.isRecording()) {
      span.end();
      return;
    }
    const outbound = ex.direction === 'outbound';
    if (ex.failedAttempts !== undefined) {
      if (outbound) {
        if (this.tracer !== undefined) recordFailedTries(this.tracer, ex);
      } else {
        // Tries to the local app stay inside this hop (the app is not another hop): one event each.
        for (const a of ex.failedAttempts) span.addEvent('mesh.retry', { [ATTR.meshRetryAttempt]: a.attempt, [ATTR.meshErrorCode]: a.error.code, 'exception.message': a.error.message }, a.endMs);
      }
    }
    span.setAttribute(ATTR.meshDestinationService, ex.service);
    if (ex.status > 0) span.setAttribute(ATTR.httpResponseStatusCode, ex.status);
    const errorBody = ex.errorBodyText();
    if (errorBody !== undefined) span.setAttribute(ATTR.meshErrorBody, errorBody);
    if (ex.attempt > 0) {
      if (!outbound) span.setAttribute(ATTR.meshRetryAttempt, ex.attempt);
      if (ex.retryReason !== undefined) span.setAttribute(ATTR.meshRetryReason, ex.retryReason);
    }
    if (ex.circuitOpen !== undefined) span.setAttribute(ATTR.meshCircuitOpen, ex.circuitOpen);
    if (ex.tunneled) {
      // The span covers the whole connection (WebSocket, upgrade, raw TCP).
      span.setAttribute(ATTR.networkProtocolName, ex.protocol);
      span.setAttribute(ATTR.meshConnectionBytesReceived, ex.bytesIn);
      span.setAttribute(ATTR.meshConnectionBytesSent, ex.bytesOut);
      if (ex.closeReason !== undefined) span.setAttribute(ATTR.meshConnectionCloseReason, ex.closeReason);
    }
    if (ex.lbPolicy !== undefined) span.setAttribute(ATTR.meshLbPolicy, ex.lbPolicy);
    const peer = ex.peer;
    const tlsMode = tlsModeOf(ex);
    if (tlsMode !== undefined) span.setAttribute(ATTR.meshTlsMode, tlsMode);
    const peerIdentity = peerIdentityOf(ex);
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
        if (ex.endpointEjected) span.setAttribute(ATTR.meshEndpointEjected, true);
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

/**
 * Outbound: one CLIENT span per failed try that was retried, a sibling of the hop's span (same parent,
 * same attributes, the try's own time, endpoint and error), so that the path API sees the try
 * as a failing call at the endpoint where it happened: a recovered failure when the hop
 * succeeded in the end. Only when the hop's own span is recorded (the same sampling decision).
 */
function recordFailedTries(tracer: Tracer, ex: HopState): void {
  const parent = ex.trace.kind === 'found' ? remoteParent(ex.trace.context) : trace.setSpan(ROOT_CONTEXT, ex.span);
  for (const a of ex.failedAttempts ?? []) {
    const attributes: Attributes = {
      [ATTR.httpRequestMethod]: KNOWN_METHODS.has(ex.method) ? ex.method : '_OTHER',
      [ATTR.urlPath]: ex.path,
      [ATTR.serverAddress]: ex.host,
      [ATTR.meshDirection]: ex.direction,
      [ATTR.meshDestinationService]: ex.service,
      [ATTR.requestId]: ex.requestId,
      [ATTR.meshRetryAttempt]: a.attempt,
      [ATTR.meshRetryRecovered]: true,
    };
    // A try retried on the upstream's answer failed there, not in the mesh.
    if (a.status > 0) {
      attributes[ATTR.httpResponseStatusCode] = a.status;
      attributes[ATTR.errorType] = String(a.status);
      if (a.peerSpanId !== undefined) attributes[ATTR.meshRetryPeerSpanId] = a.peerSpanId;
    } else {
      attributes[ATTR.meshErrorCode] = a.error.code;
      attributes[ATTR.errorType] = a.error.code;
    }
    if (ex.lbPolicy !== undefined) attributes[ATTR.meshLbPolicy] = ex.lbPolicy;
    const ep = a.endpoint;
    if (ep !== undefined) {
      attributes[ATTR.meshEndpoint] = ep.address;
      attributes[ATTR.networkPeerAddress] = ep.host;
      attributes[ATTR.networkPeerPort] = ep.port;
      if (ep.pod !== undefined) attributes[ATTR.meshEndpointPod] = ep.pod;
      if (ep.node !== undefined) attributes[ATTR.meshEndpointNode] = ep.node;
    }
    const s = tracer.startSpan(KNOWN_METHODS.has(ex.method) ? ex.method : 'HTTP', { kind: SpanKind.CLIENT, attributes, startTime: a.startMs }, parent);
    if (a.status === 0) s.recordException(a.error, a.endMs);
    s.setStatus({ code: SpanStatusCode.ERROR, message: a.error.message });
    s.end(a.endMs);
  }
}

