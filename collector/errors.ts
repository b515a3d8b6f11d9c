// Errors the collector raises while receiving OTLP. Receivers turn them into an HTTP or gRPC
// status in exactly one place each (receiver/http.ts, receiver/grpc.ts) via `kind`.

import { TracemeshError } from '../common/errors.ts';

/**
 * How a receiver must answer: `invalid` → 400 / INVALID_ARGUMENT, `too_large` → 413 /
 * RESOURCE_EXHAUSTED, `unsupported_media` → 415, `throttled` → 429 / RESOURCE_EXHAUSTED with a
 * retry hint, `unavailable` → 503 / UNAVAILABLE with a retry hint, `overloaded` (an admission
 * limit: memory, concurrency, deadline, rate) → 503 / RESOURCE_EXHAUSTED with a retry hint.
 */
export type OtlpErrorKind = 'invalid' | 'too_large' | 'unsupported_media' | 'throttled' | 'unavailable' | 'overloaded';

export class OtlpError extends TracemeshError {
  readonly kind: OtlpErrorKind;
  /** For `throttled`, `unavailable` and `overloaded`: when the client should try again. */
  readonly retryAfterMs: number | undefined;
  /** For `overloaded`: which admission limit refused the request. */
  readonly admissionReason: 'memory' | 'concurrency' | 'deadline' | 'rate' | undefined;

  constructor(
    code: string,
    kind: OtlpErrorKind,
    message: string,
    options?: { cause?: unknown; retryAfterMs?: number; admissionReason?: 'memory' | 'concurrency' | 'deadline' | 'rate' },
  ) {
    super(code, message, options);
    this.name = 'OtlpError';
    this.kind = kind;
    this.retryAfterMs = options?.retryAfterMs;
    this.admissionReason = options?.admissionReason;
  }
}

/** The body is not a well-formed OTLP request (bad protobuf, bad JSON, wrong JSON types). */
export function malformed(message: string, cause?: unknown): OtlpError {
  return new OtlpError('OTLP_MALFORMED', 'invalid', message, cause === undefined ? undefined : { cause });
}

export function tooLarge(message: string): OtlpError {
  return new OtlpError('OTLP_TOO_LARGE', 'too_large', message);
}

export function unsupportedMedia(message: string): OtlpError {
  return new OtlpError('OTLP_UNSUPPORTED_MEDIA_TYPE', 'unsupported_media', message);
}

/** The queue cannot take the request now; the client should retry after the delay. */
export function queueFull(message: string, retryAfterMs: number): OtlpError {
  return new OtlpError('COLLECTOR_QUEUE_FULL', 'throttled', message, { retryAfterMs });
}

export function shuttingDown(retryAfterMs: number): OtlpError {
  return new OtlpError('COLLECTOR_SHUTTING_DOWN', 'unavailable', 'the collector is shutting down; retry against another replica or after it restarts', {
    retryAfterMs,
  });
}

/** An admission limit refused the request (already counted by the admission layer). */
export function overloaded(reason: 'memory' | 'concurrency' | 'deadline' | 'rate', message: string, retryAfterMs: number): OtlpError {
  return new OtlpError('COLLECTOR_OVERLOADED', 'overloaded', message, { retryAfterMs, admissionReason: reason });
}

/** The write-ahead log could not take the request (an I/O error other than a full disk). */
export function walFailed(cause: unknown, retryAfterMs: number): OtlpError {
  return new OtlpError(
    'COLLECTOR_WAL_FAILED',
    'unavailable',
    `the collector could not make the data durable (${(cause as Error).message}); retry later or against another replica, and check the collector's --wal-dir disk`,
    { cause, retryAfterMs },
  );
}
