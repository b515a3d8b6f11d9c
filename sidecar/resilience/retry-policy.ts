// What the retry layer retries, and the retry budget that keeps retries from multiplying load
// in an outage (Linkerd's budget: retries ≤ ratio × requests over a 10 s window, plus a floor
// of retries per second for low traffic).

import { ConfigError } from '../../common/errors.ts';

/** Istio's default retryOn, plus `reset` for idempotent requests (a killed endpoint's in-flight calls). */
export const DEFAULT_RETRY_ON: readonly string[] = ['connect-failure', 'refused-stream', 'reset', 'unavailable', 'cancelled', '503'];

const GRPC_NAMES: Readonly<Record<string, number>> = {
  cancelled: 1,
  'deadline-exceeded': 4,
  'resource-exhausted': 8,
  internal: 13,
  unavailable: 14,
};

export interface RetryOn {
  readonly connectFailure: boolean;
  readonly refusedStream: boolean;
  readonly reset: boolean;
  /** Per-try timeouts (`per-try-timeout` is implied when --per-try-timeout is set). */
  readonly timeout: boolean;
  /** HTTP statuses retried (idempotent requests only). */
  readonly statuses: ReadonlySet<number>;
  readonly any5xx: boolean;
  /** gRPC statuses retried (from a trailers-only answer: the call did not start streaming). */
  readonly grpcStatuses: ReadonlySet<number>;
}

/** Parses `--retry-on`; throws a ConfigError naming the flag for an unknown entry. */
export function parseRetryOn(list: readonly string[]): RetryOn {
  const statuses = new Set<number>();
  const grpcStatuses = new Set<number>();
  let connectFailure = false;
  let refusedStream = false;
  let reset = false;
  let timeout = false;
  let any5xx = false;
  for (const raw of list) {
    const e = raw.trim().toLowerCase();
    if (e === 'connect-failure') connectFailure = true;
    else if (e === 'refused-stream') refusedStream = true;
    else if (e === 'reset') reset = true;
    else if (e === 'per-try-timeout') timeout = true;
    else if (e === 'gateway-error') for (const s of [502, 503, 504]) statuses.add(s);
    else if (e === '5xx') any5xx = true;
    else if (/^[1-5]\d\d$/.test(e)) statuses.add(Number(e));
    else if (GRPC_NAMES[e] !== undefined) grpcStatuses.add(GRPC_NAMES[e]);
    else throw new ConfigError(`--retry-on: unknown entry "${raw}"; use connect-failure, refused-stream, reset, per-try-timeout, gateway-error, 5xx, an HTTP status, or a gRPC status name (${Object.keys(GRPC_NAMES).join(', ')})`);
  }
  return { connectFailure, refusedStream, reset, timeout, statuses, any5xx, grpcStatuses };
}

const WINDOW_S = 10;

/**
 * Counts requests and retries in one-second buckets over the last 10 s. `canRetry()` is true
 * while retries in the window stay below ratio × requests + floor × 10 s.
 */
export class RetryBudget {
  private readonly ratio: number;
  private readonly floor: number;
  private readonly requests = new Float64Array(WINDOW_S);
  private readonly retries = new Float64Array(WINDOW_S);
  private second = -1;
  private readonly now: () => number;

  constructor(ratio: number, minPerSecond: number, now: () => number = () => performance.now()) {
    this.ratio = ratio;
    this.floor = minPerSecond * WINDOW_S;
    this.now = now;
  }

  private roll(): number {
    const s = Math.floor(this.now() / 1000);
    if (s !== this.second) {
      const gap = this.second < 0 ? WINDOW_S : Math.min(WINDOW_S, s - this.second);
      for (let i = 1; i <= gap; i++) {
        const b = (this.second + i) % WINDOW_S;
        this.requests[b] = 0;
        this.retries[b] = 0;
      }
      this.second = s;
    }
    return s % WINDOW_S;
  }

  onRequest(): void {
    const b = this.roll();
    this.requests[b] = (this.requests[b] as number) + 1;
  }

  /** Takes one retry from the budget if it allows one. */
  tryRetry(): boolean {
    const b = this.roll();
    let req = 0;
    let ret = 0;
    for (let i = 0; i < WINDOW_S; i++) {
      req += this.requests[i] as number;
      ret += this.retries[i] as number;
    }
    if (ret + 1 > this.ratio * req + this.floor) return false;
    this.retries[b] = (this.retries[b] as number) + 1;
    return true;
  }

  /** Requests and retries in the window (for /debug and tests). */
  totals(): { requests: number; retries: number } {
    this.roll();
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < WINDOW_S; i++) {
      requests += this.requests[i] as number;
      retries += this.retries[i] as number;
    }
    return { requests, retries };
  }
}
