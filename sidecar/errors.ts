// Failures the proxy itself produces, and the one edge where they become HTTP responses
// ("synthesized responses", as linkerd2-proxy calls them).

import type { ServerResponse } from 'node:http';
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
};

/** A request the mesh could not carry. `code` is recorded as `mesh.error.code` on the span. */
export class ProxyError extends TracemeshError {
  declare readonly code: MeshErrorCode;
  /** Status of the response synthesized for this failure. */
  readonly status: number;

  constructor(code: MeshErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'ProxyError';
    this.status = MESH_ERROR_STATUS[code];
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

/**
 * Writes the response for a proxy failure: status from the code, `x-tracemesh-error: <CODE>`,
 * and a JSON body `{ error: { code, message, hop: { service, pod }, trace_id } }`.
 * The caller guarantees that no response headers were sent yet. When `closeConnection` is
 * set (the request body was not fully read) the connection is closed after the response.
 * Returns the number of body bytes written.
 */
export function synthesizeResponse(res: ServerResponse, err: ProxyError, hop: Hop, traceId: string, closeConnection: boolean): number {
  const body = JSON.stringify({ error: { code: err.code, message: err.message, hop: { service: hop.service, pod: hop.pod }, trace_id: traceId } });
  const length = Buffer.byteLength(body);
  res.writeHead(err.status, {
    'content-type': 'application/json',
    'content-length': length,
    [MESH_ERROR_HEADER]: err.code,
    ...(closeConnection ? { connection: 'close' } : {}),
  });
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
