// Failures the proxy itself produces, and the one edge where they become HTTP responses
// ("synthesized responses", as linkerd2-proxy calls them).

import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import { TracemeshError } from '../common/errors.ts';
import { MESH_ERROR, MESH_ERROR_HEADER, type MeshErrorCode } from '../common/semconv.ts';

/** HTTP status synthesized for each mesh failure. */
export const MESH_ERROR_STATUS: Readonly<Record<MeshErrorCode, number>> = {
  CONNECTION_REFUSED: 502,
  UPSTREAM_RESET: 502,
  UPSTREAM_TIMEOUT: 504,
  NO_ENDPOINT: 503,
  TLS_HANDSHAKE_FAILED: 502,
  PLAINTEXT_REFUSED: 403,
  POLICY_DENIED: 403,
  ROUTE_NOT_FOUND: 404,
  NO_BACKEND: 500,
  FAULT_INJECTED: 503,
  OVERLOADED: 503,
  CIRCUIT_OPEN: 503,
  PORT_NOT_OPAQUE: 403,
  TUNNEL_UNSUPPORTED: 501,
};

/** Extra fields of a synthesized error body (`policy`, `principal`, …); null is written as null. */
export type ErrorDetails = Readonly<Record<string, string | null>>;

/** A request the mesh could not carry. `code` is recorded as `mesh.error.code` on the span. */
export class ProxyError extends TracemeshError {
  declare readonly code: MeshErrorCode;
  /** Status of the response synthesized for this failure. */
  readonly status: number;
  /** Written into the error body next to `code` and `message`. */
  readonly details: ErrorDetails | undefined;
  /** The gRPC status for gRPC callers, when it is not the code's usual one (an injected abort's). */
  readonly grpcStatus: number | undefined;

  constructor(code: MeshErrorCode, message: string, options?: { cause?: unknown; status?: number; details?: ErrorDetails; grpcStatus?: number }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProxyError';
    this.status = options?.status ?? MESH_ERROR_STATUS[code];
    this.details = options?.details;
    this.grpcStatus = options?.grpcStatus;
  }
}

/** Which sidecar produced a synthesized response; echoed in its body. */
export interface Hop {
  readonly service: string;
  readonly pod: string;
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);
const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

/**
 * Classifies an error from an upstream socket. `target` names the upstream (`host:port`) so
 * the message tells the reader which hop to look at.
 */
export function upstreamError(err: unknown, target: string): ProxyError {
  const code = (err as { code?: unknown } | null)?.code;
  const detail = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string') {
    if (CONNECT_CODES.has(code)) {
      return new ProxyError(MESH_ERROR.connectionRefused, `could not connect to ${target} (${code}); is the workload running and listening?`, { cause: err });
    }
    if (code === 'ETIMEDOUT') {
      return new ProxyError(MESH_ERROR.timeout, `connecting to ${target} timed out`, { cause: err });
    }
    if (RESET_CODES.has(code)) {
      return new ProxyError(MESH_ERROR.upstreamReset, `${target} closed the connection before answering (${detail})`, { cause: err });
    }
  }
  // Parse errors (HPE_*) and anything unexpected: the upstream did not give a usable answer.
  return new ProxyError(MESH_ERROR.upstreamReset, `${target} sent no usable response: ${detail}`, { cause: err });
}

/** The JSON body of a synthesized response. */
export function errorBody(err: ProxyError, hop: Hop, traceId: string): string {
  return JSON.stringify({ error: { code: err.code, message: err.message, ...err.details, hop: { service: hop.service, pod: hop.pod }, trace_id: traceId } });
}

/**
 * Writes the response for a proxy failure: status from the code, `x-tracemesh-error: <CODE>`,
 * and a JSON body `{ error: { code, message, ...details, hop: { service, pod }, trace_id } }`.
 * The caller guarantees that no response headers were sent yet. When `closeConnection` is
 * set (the request body was not fully read) an HTTP/1.1 connection is closed after the
 * response; HTTP/2 has no such header (the stream ends on its own).
 * Returns the number of body bytes written.
 */
export function synthesizeResponse(res: ServerResponse | Http2ServerResponse, err: ProxyError, hop: Hop, traceId: string, closeConnection: boolean, traceresponse?: string): number {
  const body = errorBody(err, hop, traceId);
  const length = Buffer.byteLength(body);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': length,
    [MESH_ERROR_HEADER]: err.code,
  };
  if (traceresponse !== undefined) headers['traceresponse'] = traceresponse;
  if (res.req.httpVersionMajor === 2) {
    (res as Http2ServerResponse).writeHead(err.status, headers);
  } else {
    if (closeConnection) headers['connection'] = 'close';
    (res as ServerResponse).writeHead(err.status, headers);
  }
  res.end(body);
  return length;
}

/** A listener could not bind its port. */
export class ListenError extends TracemeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('LISTEN_FAILED', message, options);
    this.name = 'ListenError';
  }
}
