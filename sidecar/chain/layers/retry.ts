// The retry layer: decides whether a try that failed before its response head is sent again.
// Only safe cases are retried:
// - `connect` (nothing was sent) and `refused` (the peer said it did not process it): any method;
// - `stale` (a reused keep-alive connection was dead), `reset` and `timeout`: idempotent methods only;
// and only when the request can be replayed (no body to resend). See RetryPolicy for the rest.

import type { Layer, UpstreamFailure } from '../chain.ts';
import type { HopState } from '../hop.ts';

/** Methods that may be sent twice (RFC 9110 §9.2.2). */
export const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Whether a failure of this kind may be sent again, by the rules above. */
export function retryable(hop: HopState, f: UpstreamFailure): boolean {
  if (!hop.replayable) return false;
  if (f.kind === 'connect' || f.kind === 'refused') return true;
  return IDEMPOTENT.has(hop.method);
}

/** Keeps the failed try for the telemetry (a recovered failure) before it is tried again. */
export function recordFailedTry(hop: HopState, f: UpstreamFailure): void {
  (hop.failedAttempts ??= []).push({ attempt: hop.attempt, endpoint: hop.endpoint, error: f.error, startMs: hop.tryStartMs, endMs: performance.now() });
}

/**
 * The connection-level retry every sidecar does, retry policy or not: a reused keep-alive
 * connection (HTTP/1.1) or HTTP/2 connection that turns out dead, or a stream the peer
 * refused, is sent once more at once, to the same endpoint on a fresh connection. It is not the
 * endpoint's fault, so it costs no retry budget; it shows as `mesh.retry.attempt` 1 with
 * `mesh.retry.reason` `stale_connection` or `refused_stream`.
 */
export function connectionRetryLayer(): Layer {
  return {
    name: 'connection-retry',
    onUpstreamFailure(hop, f) {
      if (hop.attempt !== 0 || (f.kind !== 'stale' && f.kind !== 'refused') || !retryable(hop, f)) return false;
      recordFailedTry(hop, f);
      hop.attempt = 1;
      hop.retryReason = f.kind === 'stale' ? 'stale_connection' : 'refused_stream';
      hop.tryStartMs = performance.now();
      hop.tracker?.onCallStarted();
      hop.resend();
      return true;
    },
  };
}
