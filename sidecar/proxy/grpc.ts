// gRPC over the proxy: which requests are gRPC calls, the gRPC status a mesh failure becomes
// (a trailers-only response, so a gRPC client sees a status and not a protocol error), and the
// RPC attributes of the hop's span (OpenTelemetry semantic conventions for gRPC).

import { SpanStatusCode, type Span } from '@opentelemetry/api';
import type { Http2ServerResponse } from 'node:http2';
import { ATTR, MESH_ERROR_HEADER, type MeshErrorCode } from '../../common/semconv.ts';
import type { Hop, ProxyError } from '../errors.ts';
import type { Exchange } from './exchange.ts';
import { grpcStatusName } from '../../common/grpc-status.ts';

/** The gRPC status codes the proxy produces or reasons about (grpc/doc/statuscodes.md). */
export const GRPC_STATUS = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export { grpcStatusName };

/**
 * Whether a content-type names a gRPC call: `application/grpc`, `application/grpc+proto`,
 * `application/grpc;charset=…`. gRPC-Web (`application/grpc-web…`, an HTTP/1.1 protocol) is not.
 */
export function isGrpcContentType(value: unknown): boolean {
  if (typeof value !== 'string' || !value.startsWith('application/grpc')) return false;
  const next = value.charCodeAt(16);
  return Number.isNaN(next) || next === 0x2b /* + */ || next === 0x3b /* ; */;
}

/**
 * The status a mesh failure becomes for a gRPC client. Connection failures are UNAVAILABLE
 * (clients may retry them); an upstream that did not answer in time is DEADLINE_EXCEEDED (it
 * may have run the call, so it is not offered as retryable); refusals of the caller's identity
 * are UNAUTHENTICATED, of its authority PERMISSION_DENIED.
 */
const STATUS_OF_MESH_ERROR: Readonly<Record<MeshErrorCode, number>> = {
  CONNECTION_REFUSED: GRPC_STATUS.UNAVAILABLE,
  UPSTREAM_RESET: GRPC_STATUS.UNAVAILABLE,
  UPSTREAM_TIMEOUT: GRPC_STATUS.DEADLINE_EXCEEDED,
  NO_ENDPOINT: GRPC_STATUS.UNAVAILABLE,
  TLS_HANDSHAKE_FAILED: GRPC_STATUS.UNAVAILABLE,
  PLAINTEXT_REFUSED: GRPC_STATUS.UNAUTHENTICATED,
  POLICY_DENIED: GRPC_STATUS.PERMISSION_DENIED,
  ROUTE_NOT_FOUND: GRPC_STATUS.UNIMPLEMENTED,
  NO_BACKEND: GRPC_STATUS.INTERNAL,
  FAULT_INJECTED: GRPC_STATUS.UNAVAILABLE,
  // Shed before it ran: safe to retry.
  OVERLOADED: GRPC_STATUS.UNAVAILABLE,
  CIRCUIT_OPEN: GRPC_STATUS.UNAVAILABLE,
  PORT_NOT_OPAQUE: GRPC_STATUS.PERMISSION_DENIED,
  TUNNEL_UNSUPPORTED: GRPC_STATUS.UNIMPLEMENTED,
};

export function grpcStatusOfMeshError(err: ProxyError): number {
  // The inbound side refusing a client certificate (403) is about who the caller is.
  if (err.code === 'TLS_HANDSHAKE_FAILED' && err.status === 403) return GRPC_STATUS.UNAUTHENTICATED;
  if (err.grpcStatus !== undefined) return err.grpcStatus;
  return STATUS_OF_MESH_ERROR[err.code];
}

/** The status a gRPC client derives from an HTTP status without `grpc-status` (gRPC's http-grpc-status-mapping.md). */
export function grpcStatusOfHttp(status: number): number {
  switch (status) {
    case 400:
      return GRPC_STATUS.INTERNAL;
    case 401:
      return GRPC_STATUS.UNAUTHENTICATED;
    case 403:
      return GRPC_STATUS.PERMISSION_DENIED;
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return GRPC_STATUS.UNKNOWN;
  }
}

/** Percent-encodes `grpc-message` as the gRPC spec asks: bytes outside 0x20–0x7E, and '%'. */
export function encodeGrpcMessage(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte < 0x20 || byte > 0x7e || byte === 0x25 ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

/** Reverses encodeGrpcMessage (for the span status); a malformed value is kept as it is. */
export function decodeGrpcMessage(value: string): string {
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** `grpc-message` of a mesh failure: the code, the hop that produced it, what happened, the trace. */
export function grpcErrorMessage(err: ProxyError, hop: Hop, traceId: string): string {
  return `${err.code} at ${hop.service} (pod ${hop.pod}): ${err.message} [trace ${traceId}]`;
}

/**
 * Answers a gRPC call with a mesh failure. Before the response started: a trailers-only
 * response (HTTP 200, `grpc-status`, `grpc-message`, `x-tracemesh-error` in one HEADERS frame
 * with END_STREAM, which the compatibility API sends when headers are set without writeHead).
 * After it started: the same fields as trailers, so the client sees a status rather than a
 * reset stream. Returns the gRPC status sent.
 */
export function synthesizeGrpcError(res: Http2ServerResponse, err: ProxyError, hop: Hop, traceId: string): number {
  const code = grpcStatusOfMeshError(err);
  const message = encodeGrpcMessage(grpcErrorMessage(err, hop, traceId));
  if (res.headersSent) {
    res.addTrailers({ 'grpc-status': String(code), 'grpc-message': message, [MESH_ERROR_HEADER]: err.code });
  } else {
    res.statusCode = 200;
    res.setHeader('content-type', 'application/grpc');
    res.setHeader('grpc-status', String(code));
    res.setHeader('grpc-message', message);
    res.setHeader(MESH_ERROR_HEADER, err.code);
  }
  res.end();
  return code;
}

/**
 * Names the span of a gRPC hop `<service>/<method>` and records `rpc.system`, `rpc.service`
 * and `rpc.method` from the request path `/<package.Service>/<Method>`.
 */
export function startGrpcSpan(span: Span, path: string): void {
  span.setAttribute(ATTR.rpcSystem, 'grpc');
  const slash = path.indexOf('/', 1);
  if (path.charCodeAt(0) !== 0x2f || slash <= 1 || slash === path.length - 1) return;
  const service = path.slice(1, slash);
  const method = path.slice(slash + 1);
  span.setAttribute(ATTR.rpcService, service);
  span.setAttribute(ATTR.rpcMethod, method);
  span.updateName(`${service}/${method}`);
}

/** Codes that make a SERVER span an error (OpenTelemetry gRPC conventions); on CLIENT spans every code but OK does. */
const SERVER_ERROR_CODES = new Set<number>([GRPC_STATUS.UNKNOWN, GRPC_STATUS.DEADLINE_EXCEEDED, GRPC_STATUS.UNIMPLEMENTED, GRPC_STATUS.INTERNAL, GRPC_STATUS.UNAVAILABLE, GRPC_STATUS.DATA_LOSS]);

/**
 * Before the span observers run: records `rpc.grpc.status_code` (the status the client was
 * given: from the upstream's trailers, from a synthesized failure, CANCELLED for a client
 * that went away, else derived from the HTTP status) and, for a relayed error status, the
 * span's error status. Mesh failures and aborts keep the status the span recorder gives them.
 */
export function endGrpcSpan(ex: Exchange): void {
  const span = ex.span;
  if (!span.isRecording()) return;
  let code = ex.grpcStatus;
  if (code === -1) {
    if (ex.downstreamAborted) code = GRPC_STATUS.CANCELLED;
    else if (ex.status === 0) return;
    else code = ex.status === 200 ? GRPC_STATUS.INTERNAL : grpcStatusOfHttp(ex.status);
  }
  span.setAttribute(ATTR.rpcGrpcStatusCode, code);
  if (code === GRPC_STATUS.OK || ex.error !== undefined || ex.downstreamAborted) return;
  if (ex.direction === 'outbound' || SERVER_ERROR_CODES.has(code)) {
    span.setAttribute(ATTR.errorType, grpcStatusName(code));
    span.setStatus({ code: SpanStatusCode.ERROR, message: ex.grpcMessage === undefined ? grpcStatusName(code) : decodeGrpcMessage(ex.grpcMessage) });
  }
}
