// Typed HTTP errors and the one place where any error becomes a JSON response. Jaeger routes
// answer in jaeger-query's envelope (`{data:null, errors:[{code,msg}]}`, which Grafana shows);
// Jaeger's API v3 answers `{error:{httpCode, message}}` (its HTTP gateway's GRPCGatewayError);
// our own routes answer `{error:{status, code, message}}`.

import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { TracemeshError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';

export class ApiError extends HTTPException {
  /** Stable, machine-readable: `INVALID_PARAMETER`, `TRACE_NOT_FOUND`, `STORAGE_UNAVAILABLE`, … */
  readonly code: string;

  constructor(status: ContentfulStatusCode, code: string, message: string, options: { cause?: unknown } = {}) {
    super(status, { message, cause: options.cause });
    this.name = 'ApiError';
    this.code = code;
  }
}

export function invalidParameter(message: string): ApiError {
  return new ApiError(400, 'INVALID_PARAMETER', message);
}

export function traceNotFound(traceId: string): ApiError {
  return new ApiError(404, 'TRACE_NOT_FOUND', `trace ${traceId} not found`);
}

/** A user-supplied value, quoted and shortened, for an error message. */
export function quote(value: string, max = 64): string {
  const v = value.length > max ? `${value.slice(0, max)}…` : value;
  return JSON.stringify(v);
}

/** ClickHouse's TIMEOUT_EXCEEDED: a statement ran past max_execution_time. */
const CLICKHOUSE_TIMEOUT_EXCEEDED = 159;

/** True for a storage error of a statement that ran past max_execution_time (--query-timeout). */
export function isStatementTimeout(err: unknown): boolean {
  return err instanceof TracemeshError && (err as { clickhouseCode?: unknown }).clickhouseCode === CLICKHOUSE_TIMEOUT_EXCEEDED;
}

/** Codes from storage that mean the request was bad, not the server. */
const CLIENT_STORAGE_CODES: ReadonlySet<string> = new Set(['INVALID_TRACE_ID', 'INVALID_QUERY', 'INVALID_SQL_VALUE']);

function classify(err: unknown, logger: Logger, path: string): { status: ContentfulStatusCode; code: string; message: string } {
  if (err instanceof ApiError) return { status: err.status, code: err.code, message: err.message };
  if (err instanceof HTTPException) {
    return { status: err.status, code: err.status === 404 ? 'NOT_FOUND' : `HTTP_${err.status}`, message: err.message || 'request failed' };
  }
  if (err instanceof TracemeshError) {
    if (CLIENT_STORAGE_CODES.has(err.code)) return { status: 400, code: 'INVALID_PARAMETER', message: err.message };
    if (isStatementTimeout(err)) {
      logger.warn('query hit its time limit', { path });
      return { status: 503, code: 'QUERY_TIMEOUT', message: 'the query ran longer than its time limit (query-api flag --query-timeout); narrow the time range or add filters' };
    }
    const transient = (err as { transient?: unknown }).transient === true;
    if (err.code === 'CLICKHOUSE_UNAVAILABLE' || transient) {
      logger.warn('trace storage unavailable', { path, err });
      return { status: 503, code: 'STORAGE_UNAVAILABLE', message: `trace storage is unavailable, try again shortly (${err.code})` };
    }
    logger.error('trace storage failed', { path, err });
    return { status: 500, code: 'STORAGE_FAILED', message: `trace storage failed (${err.code}); the query API's log has the details` };
  }
  logger.error('unhandled error', { path, err, stack: err instanceof Error ? err.stack : undefined });
  return { status: 500, code: 'INTERNAL', message: "internal error; the query API's log has the details" };
}

/** Routes that speak jaeger-query's error envelope. */
export function isJaegerPath(path: string): boolean {
  return path.startsWith('/api/') && !path.startsWith('/api/v1/') && !isJaegerV3Path(path);
}

/** Jaeger API v3 routes. */
export function isJaegerV3Path(path: string): boolean {
  return path === '/api/v3' || path.startsWith('/api/v3/');
}

export function errorResponse(c: Context, err: unknown, logger: Logger): Response {
  const { status, code, message } = classify(err, logger, c.req.path);
  return c.json(errorPayload(c.req.path, status, code, message) as Record<string, unknown>, status);
}

/** The error body in the envelope of the route family `path` belongs to (Jaeger, Jaeger v3, tracemesh's own). */
export function errorPayload(path: string, status: number, code: string, message: string): unknown {
  if (isJaegerV3Path(path)) return { error: { httpCode: status, message } };
  if (isJaegerPath(path)) return { data: null, total: 0, limit: 0, offset: 0, errors: [{ code: status, msg: message }] };
  return { error: { status, code, message } };
}
