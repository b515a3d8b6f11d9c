// The retry layer: decides whether a try that failed before its response head is sent again.
// Only safe cases are retried:
// - `connect` (nothing was sent) and `refused` (the peer said it did not process it): any method;
// - `stale` (a reused keep-alive connection was dead), `reset` and `timeout`: idempotent methods only;
// and only when the request can be replayed (no body to resend). See RetryPolicy for the rest.

import { MESH_ERROR } from '../../../common/semconv.ts';
import type { Cluster } from '../../balancer/cluster.ts';
import { ProxyError } from '../../errors.ts';
import type { CompiledRetry } from '../../../common/routes/table.ts';
import { RetryBudget, type RetryOn } from '../../resilience/retry-policy.ts';
import type { Layer, UpstreamFailure } from '../chain.ts';
import type { FailedAttempt, HopState } from '../hop.ts';
import { endTry, startTry } from './balance.ts';

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
  (hop.failedAttempts ??= []).push({ attempt: hop.attempt, endpoint: hop.endpoint, error: f.error, status: 0, peerSpanId: undefined, startMs: hop.tryStartMs, endMs: performance.now() });
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

export interface RetryOptions {
  /** Retries after the first try (the connection-level retry included); 0: only the rules' own `retry` retries. */
  readonly attempts: number;
  readonly on: RetryOn;
  /** A per-try timeout is configured: timed-out idempotent tries are retried. */
  readonly perTryTimeout: boolean;
  readonly budgetRatio: number;
  readonly budgetMinPerSecond: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Circuit breaker: retries in flight per cluster. */
  readonly maxRetries: number;
  readonly random?: () => number;
  /** Counts each retry sent and each one refused (metrics). */
  readonly onRetry?: (service: string, reason: string) => void;
  readonly onRefused?: (service: string, breaker: string) => void;
}

const BUDGET = 'retry-budget';

/** What one hop is retried for, how often and how long it waits: the sidecar's flags or its route rule's `retry`. */
interface EffectivePolicy {
  readonly attempts: number;
  readonly on: RetryOn;
  /** Timed-out idempotent tries are retried. */
  readonly timeouts: boolean;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
}

/**
 * A route rule's `retry` (the Gateway API's GEP-1731) as Envoy applies a route's retry policy:
 * it replaces the sidecar's policy for that rule (policies are not merged). Retried: connection
 * failures and refused streams (nothing reached the app: any method), and, for idempotent
 * methods, an answer whose status is in `codes`, a reset when `codes` has 502 and a
 * `backendRequest` timeout when it has 504 (the statuses the sidecar would answer them with).
 * `attempts` retries after the first try (0: none); `backoff` is the base interval of the
 * jittered backoff, capped at 10 × it (Envoy's max_interval default); without `backoff`, the
 * sidecar's --retry-backoff-base and --retry-backoff-max.
 */
export function routeRetryPolicy(r: CompiledRetry, backoffBaseMs: number, backoffMaxMs: number): EffectivePolicy {
  const base = r.backoffMs;
  return {
    attempts: r.attempts,
    on: { connectFailure: true, refusedStream: true, reset: r.codes.has(502), timeout: r.codes.has(504), statuses: r.codes, any5xx: false, grpcStatuses: new Set() },
    timeouts: r.codes.has(504),
    backoffBaseMs: base ?? backoffBaseMs,
    backoffMaxMs: base === undefined ? backoffMaxMs : base * 10,
  };
}
/** Mesh errors a peer sidecar answers with when the request never reached its app. */
const UNREACHED = new Set<string>([MESH_ERROR.connectionRefused, MESH_ERROR.noEndpoint, MESH_ERROR.circuitOpen, 'OVERLOADED']);
const REASON: Readonly<Record<string, string>> = {
  connect: 'connect_failure',
  refused: 'refused_stream',
  stale: 'reset',
  reset: 'reset',
  timeout: 'per_try_timeout',
};

function budgetOf(cluster: Cluster, o: RetryOptions): RetryBudget {
  let b = cluster.state.get(BUDGET) as RetryBudget | undefined;
  if (b === undefined) {
    b = new RetryBudget(o.budgetRatio, o.budgetMinPerSecond);
    cluster.state.set(BUDGET, b);
  }
  return b;
}

/**
 * The outbound retry policy (`--retry-attempts`, `--retry-on`): a failed try of a safe kind is
 * sent again after a jittered backoff (full jitter in [0, min(max, base × 2^n)]), to an
 * endpoint picked again (another one than the failed try's when the cluster has more), while
 * the retry budget (≤ ratio × requests of the last 10 s + a floor per second) and the
 * `max_retries` breaker allow. A refused retry leaves `mesh.circuit.open` (`retry_budget` or
 * `max_retries`) on the span, and the hop fails with the try's error.
 */
export function retryLayer(o: RetryOptions): Layer {
  const random = o.random ?? Math.random;
  const sidecarPolicy: EffectivePolicy = { attempts: o.attempts, on: o.on, timeouts: o.on.timeout || o.perTryTimeout, backoffBaseMs: o.backoffBaseMs, backoffMaxMs: o.backoffMaxMs };
  // Compiled once per route rule (a route table is swapped whole on every edit, so old entries go with it).
  const routePolicies = new WeakMap<CompiledRetry, EffectivePolicy>();
  const policyOf = (hop: HopState): EffectivePolicy => {
    const r = hop.route?.retry;
    if (r === undefined) return sidecarPolicy;
    let p = routePolicies.get(r);
    if (p === undefined) {
      p = routeRetryPolicy(r, o.backoffBaseMs, o.backoffMaxMs);
      routePolicies.set(r, p);
    }
    return p;
  };
  const schedule = (hop: HopState, p: EffectivePolicy, reason: string, failure: FailedAttempt): boolean => {
    const c = hop.cluster;
    if (c === undefined || hop.attempt >= p.attempts || !hop.replayable) return false;
    if (c.retriesActive >= o.maxRetries) {
      hop.circuitOpen = 'max_retries';
      o.onRefused?.(c.name, 'max_retries');
      return false;
    }
    if (!budgetOf(c, o).tryRetry()) {
      hop.circuitOpen = 'retry_budget';
      o.onRefused?.(c.name, 'retry_budget');
      return false;
    }
    (hop.failedAttempts ??= []).push(failure);
    endTry(hop, false);
    hop.attempt++;
    hop.retryReason = reason;
    if (!hop.retryInFlight) {
      hop.retryInFlight = true;
      c.retriesActive++;
    }
    o.onRetry?.(c.name, reason);
    const cap = Math.min(p.backoffMaxMs, p.backoffBaseMs * 2 ** (hop.attempt - 1));
    hop.retryTimer = setTimeout(fire, Math.floor(random() * cap), hop);
    return true;
  };
  return {
    name: 'retry',
    onRequest(hop) {
      if (hop.cluster !== undefined) budgetOf(hop.cluster, o).onRequest();
      return undefined;
    },
    onUpstreamFailure(hop, f) {
      const p = policyOf(hop);
      const on = p.on;
      const kindAllowed =
        f.kind === 'connect' ? on.connectFailure : f.kind === 'refused' ? on.refusedStream : f.kind === 'timeout' ? p.timeouts && perTryTimedOut(hop) && IDEMPOTENT.has(hop.method) : on.reset && IDEMPOTENT.has(hop.method);
      if (!kindAllowed) return false;
      return schedule(hop, p, REASON[f.kind] ?? 'reset', { attempt: hop.attempt, endpoint: hop.endpoint, error: f.error, status: 0, peerSpanId: undefined, startMs: hop.tryStartMs, endMs: performance.now() });
    },
    onResponse(hop) {
      const p = policyOf(hop);
      const on = p.on;
      const grpc = hop.grpcStatus;
      const byGrpc = grpc > 0 && on.grpcStatuses.has(grpc);
      // A peer sidecar's own answer that the request never reached its app is a connect failure.
      const unreached = hop.upstreamMeshError !== undefined && UNREACHED.has(hop.upstreamMeshError) && on.connectFailure;
      const byStatus = unreached || (IDEMPOTENT.has(hop.method) && (on.statuses.has(hop.status) || (on.any5xx && hop.status >= 500)));
      if (!byGrpc && !byStatus) return false;
      const what = byGrpc ? `gRPC status ${grpc}` : `status ${hop.status}`;
      const error = new ProxyError(MESH_ERROR.upstreamReset, `${hop.endpoint?.address ?? 'the endpoint'} answered ${what}; retried`);
      const status = hop.status;
      const peerSpanId = hop.upstreamSpanId;
      if (!schedule(hop, p, 'retriable_status', { attempt: hop.attempt, endpoint: hop.endpoint, error, status, peerSpanId, startMs: hop.tryStartMs, endMs: performance.now() })) return false;
      hop.status = 0;
      hop.grpcStatus = -1;
      return true;
    },
    onEnd(hop) {
      if (hop.retryInFlight && hop.cluster !== undefined) hop.cluster.retriesActive--;
    },
  };
}

/** The try ran out of its own time (a per-try timeout), not of the whole request's: a retry has time left. */
function perTryTimedOut(hop: HopState): boolean {
  return hop.perTryTimeoutMs > 0 && hop.tryTimeoutMs === hop.perTryTimeoutMs;
}

/** After the backoff: pick again (avoiding the failed endpoint when there is another) and send. */
function fire(hop: HopState): void {
  hop.retryTimer = undefined;
  if (hop.ended) return;
  const c = hop.cluster;
  const failed = hop.endpoint;
  if (c !== undefined) {
    for (let i = 0; i < 3; i++) {
      const r = c.picker.pick(hop);
      if (r.kind === 'drop') {
        hop.reject(r.error);
        return;
      }
      if (r.kind === 'queue') break; // nothing usable now: the failed endpoint again
      hop.endpoint = r.endpoint;
      hop.tracker = r.tracker;
      if (r.endpoint !== failed || c.usable.length < 2) break;
    }
  }
  startTry(hop);
  hop.resend();
}
