// Admission for the query API, app-wide middleware in front of every route (routes added later
// included): requests that reach trace storage share a small concurrency limit with a short,
// bounded queue; beyond it they get 503 with Retry-After at once. Cheap routes (readiness,
// metrics, the OpenAPI document, the cached service list, the UI's static files) run in a lane
// of their own, so a flood of expensive searches never delays them. The request's abort
// signal is handed to storage (storage/cancellation.ts), so a client that goes away cancels
// its ClickHouse statement.

import type { Context, MiddlewareHandler } from 'hono';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../common/logger.ts';
import { withAbortSignal } from '../../storage/cancellation.ts';
import { ApiError, errorResponse } from '../errors.ts';

export type QueryRefusalReason = 'concurrency' | 'deadline';
export type Lane = 'storage' | 'cheap';

export interface QueryAdmissionLimits {
  /** Requests of the storage lane running at once. Keep it below the ClickHouse client's socket pool. */
  readonly maxConcurrentQueries: number;
  /** Storage-lane requests that may wait for a slot; more get 503 at once. */
  readonly queueSize: number;
  /** Longest wait in the queue; then 503. */
  readonly queueTimeoutMs: number;
  /** Requests of the cheap lane running at once (no queue). */
  readonly maxConcurrentCheap: number;
}

export const DEFAULT_QUERY_ADMISSION_LIMITS: QueryAdmissionLimits = {
  maxConcurrentQueries: 8,
  queueSize: 16,
  queueTimeoutMs: 2_000,
  maxConcurrentCheap: 64,
};

/** Retry hint of a refusal, in seconds. */
export const RETRY_AFTER_S = 1;

/** Paths answered without a storage statement (or from a cache): the cheap lane. */
const CHEAP_PATHS: ReadonlySet<string> = new Set(['/ready', '/live', '/metrics', '/openapi.json', '/api/services', '/api/v3/services']);

/** The lane of a request: every `/api/` route is a storage route unless it is listed as cheap. */
export function laneOf(path: string): Lane {
  if (CHEAP_PATHS.has(path)) return 'cheap';
  return path.startsWith('/api/') ? 'storage' : 'cheap';
}

interface Waiter {
  readonly resolve: (admitted: boolean) => void;
  readonly timer: NodeJS.Timeout;
}

/** A counting semaphore with a bounded FIFO queue whose waits time out. */
class LaneGate {
  readonly #max: number;
  readonly #queueSize: number;
  readonly #timeoutMs: number;
  readonly #queue: Waiter[] = [];
  active = 0;

  constructor(max: number, queueSize: number, timeoutMs: number) {
    this.#max = max;
    this.#queueSize = queueSize;
    this.#timeoutMs = timeoutMs;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** 'ok' (a slot is held: call release()), or why not. `signal` gives up the wait when the client leaves. */
  async acquire(signal: AbortSignal | undefined): Promise<'ok' | QueryRefusalReason | 'gone'> {
    if (this.active < this.#max) {
      this.active += 1;
      return 'ok';
    }
    if (this.#queue.length >= this.#queueSize) return 'concurrency';
    let onAbort: (() => void) | undefined;
    const admitted = await new Promise<boolean | 'gone'>((resolve) => {
      const waiter: Waiter = {
        resolve,
        timer: setTimeout(() => {
          this.#remove(waiter);
          resolve(false);
        }, this.#timeoutMs),
      };
      this.#queue.push(waiter);
      if (signal !== undefined) {
        onAbort = () => {
          this.#remove(waiter);
          clearTimeout(waiter.timer);
          resolve('gone');
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    if (admitted === 'gone') return 'gone';
    return admitted ? 'ok' : 'deadline';
  }

  release(): void {
    const next = this.#queue.shift();
    if (next === undefined) {
      this.active -= 1;
      return;
    }
    // The slot passes straight to the next waiter.
    clearTimeout(next.timer);
    next.resolve(true);
  }

  #remove(w: Waiter): void {
    const i = this.#queue.indexOf(w);
    if (i >= 0) this.#queue.splice(i, 1);
  }
}

export interface QueryAdmission {
  readonly middleware: MiddlewareHandler;
}

/** The admission middleware; its metrics go to `registry`. */
export function createQueryAdmission(limits: QueryAdmissionLimits, registry: Registry, logger: Logger): QueryAdmission {
  const gates: Record<Lane, LaneGate> = {
    storage: new LaneGate(limits.maxConcurrentQueries, limits.queueSize, limits.queueTimeoutMs),
    cheap: new LaneGate(limits.maxConcurrentCheap, 0, 0),
  };
  const refusals = new Counter({
    name: 'tracemesh_query_admission_refusals_total',
    help: 'Requests refused with 503 by the admission layer, by lane (storage, cheap) and reason (concurrency: queue full; deadline: waited --query-queue-timeout).',
    labelNames: ['lane', 'reason'],
    registers: [registry],
  });
  new Gauge({
    name: 'tracemesh_query_inflight_requests',
    help: 'Requests running, by admission lane.',
    labelNames: ['lane'],
    registers: [registry],
    collect() {
      this.set({ lane: 'storage' }, gates.storage.active);
      this.set({ lane: 'cheap' }, gates.cheap.active);
    },
  });
  new Gauge({
    name: 'tracemesh_query_queued_requests',
    help: 'Storage-lane requests waiting for a slot.',
    registers: [registry],
    collect() {
      this.set(gates.storage.queued);
    },
  });
  const lastLog = new Map<string, number>();

  const refuse = (c: Context, lane: Lane, reason: QueryRefusalReason): Response => {
    refusals.inc({ lane, reason });
    const key = `${lane}/${reason}`;
    const now = Date.now();
    if (now - (lastLog.get(key) ?? 0) >= 10_000) {
      lastLog.set(key, now);
      logger.warn('query API shedding load', { lane, reason, path: c.req.path });
    }
    const message =
      reason === 'concurrency'
        ? `the query API is busy (${lane === 'storage' ? `${limits.maxConcurrentQueries} queries running and ${limits.queueSize} waiting` : `${limits.maxConcurrentCheap} requests running`}); retry after ${RETRY_AFTER_S} s`
        : `the query API is busy (waited ${limits.queueTimeoutMs} ms for one of ${limits.maxConcurrentQueries} query slots); retry after ${RETRY_AFTER_S} s`;
    const res = errorResponse(c, new ApiError(503, 'OVERLOADED', message), logger);
    res.headers.set('retry-after', String(RETRY_AFTER_S));
    return res;
  };

  const middleware: MiddlewareHandler = async (c, next) => {
    const lane = laneOf(c.req.path);
    const gate = gates[lane];
    const signal = c.req.raw.signal as AbortSignal | undefined;
    const got = await gate.acquire(signal);
    if (got === 'gone') {
      // Nobody is listening; answer something cheap for the logs.
      c.res = new Response(null, { status: 499 as 400 });
      return;
    }
    if (got !== 'ok') {
      c.res = refuse(c, lane, got);
      return;
    }
    try {
      if (signal === undefined) await next();
      else await withAbortSignal(signal, next);
    } finally {
      gate.release();
    }
  };
  return { middleware };
}
