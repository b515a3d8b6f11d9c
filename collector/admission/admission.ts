// Admission for both OTLP receivers: one place that decides whether a request may start
// (concurrency, in total and per connection), watches it while its body arrives (deadline
// and minimum rate) and owns its share of the in-flight bytes budget. Every refusal is
// counted with a `reason` (memory, concurrency, deadline, rate) and logged, at most once per
// reason every few seconds so an attack does not flood the log.

import type { Logger } from '../../common/logger.ts';
import { overloaded, type OtlpError } from '../errors.ts';
import type { Transport } from '../metrics.ts';
import { ByteBudget, type Lease } from './budget.ts';

export type AdmissionReason = 'memory' | 'concurrency' | 'deadline' | 'rate';

export interface AdmissionLimits {
  /** Bytes that the requests being received may hold in all (wire and decompressed). */
  readonly maxInflightBytes: number;
  /** Requests being received or handled at once, both receivers together. */
  readonly maxConcurrentRequests: number;
  /** Requests at once on one connection (HTTP/2 streams; HTTP/1.1 has one at a time). */
  readonly maxRequestsPerConnection: number;
  /** Open connections per receiver port; more are closed at once. */
  readonly maxConnections: number;
  /** Longest time from a request's start until its whole body has arrived. */
  readonly requestTimeoutMs: number;
  /** Least average body rate in bytes/s, enforced from RATE_GRACE_MS on; 0 turns it off. */
  readonly minBodyRate: number;
}

export const DEFAULT_ADMISSION_LIMITS: AdmissionLimits = {
  maxInflightBytes: 64 * 1024 * 1024,
  maxConcurrentRequests: 256,
  maxRequestsPerConnection: 32,
  maxConnections: 1024,
  requestTimeoutMs: 30_000,
  minBodyRate: 16 * 1024,
};

/** Time a body is given before the minimum rate applies (a connection's first bytes are slow). */
export const RATE_GRACE_MS = 1_000;

/** Retry hint sent with every admission refusal. */
export const ADMISSION_RETRY_AFTER_MS = 1_000;

export interface AdmissionObserver {
  refused(transport: Transport, reason: AdmissionReason): void;
}

/** One admitted request. */
export interface Ticket {
  readonly lease: Lease;
  /** Counts body bytes as they arrive (for the minimum rate). */
  received(n: number): void;
  /** The body is complete: the deadline and rate no longer apply. */
  bodyDone(): void;
  /** Called once if the deadline or minimum rate is missed before bodyDone(), with the error to answer. */
  onExpire(handler: (err: OtlpError) => void): void;
  /** The request is over: returns its bytes and its concurrency slot. Safe to call twice. */
  close(): void;
}

export class Admission {
  readonly limits: AdmissionLimits;
  readonly budget: ByteBudget;
  readonly #observer: AdmissionObserver;
  readonly #logger: Logger;
  readonly #perConnection = new WeakMap<object, number>();
  readonly #watched = new Set<WatchedTicket>();
  readonly #lastLog = new Map<AdmissionReason, { at: number; suppressed: number }>();
  #active = 0;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(limits: AdmissionLimits, observer: AdmissionObserver, logger: Logger) {
    this.limits = limits;
    this.budget = new ByteBudget(limits.maxInflightBytes);
    this.#observer = observer;
    this.#logger = logger;
  }

  get activeRequests(): number {
    return this.#active;
  }

  /**
   * Admits a request on `connection` (any object that identifies it), or returns the
   * refusal to answer (RESOURCE_EXHAUSTED / 503 with a retry hint), already counted.
   */
  enter(transport: Transport, connection: object): Ticket | OtlpError {
    const onConnection = this.#perConnection.get(connection) ?? 0;
    if (onConnection >= this.limits.maxRequestsPerConnection) {
      return this.refuse(transport, 'concurrency', `more than ${this.limits.maxRequestsPerConnection} requests at once on one connection (collector flag --max-requests-per-connection); retry after 1 s`);
    }
    if (this.#active >= this.limits.maxConcurrentRequests) {
      return this.refuse(transport, 'concurrency', `the collector is handling ${this.limits.maxConcurrentRequests} requests already (collector flag --max-concurrent-requests); retry after 1 s`);
    }
    this.#active += 1;
    this.#perConnection.set(connection, onConnection + 1);
    const ticket = new WatchedTicket(this, transport, connection, this.budget.lease(), Date.now());
    this.#watched.add(ticket);
    this.#startSweeper();
    return ticket;
  }

  /** The refusal for a buffer that could not grow because the budget is spent. */
  memoryRefusal(transport: Transport): OtlpError {
    return this.refuse(
      transport,
      'memory',
      `the collector is receiving too many bytes at once (${this.budget.inUse} of ${this.limits.maxInflightBytes}, collector flag --max-inflight-bytes); retry after 1 s`,
    );
  }

  /** Counts and logs a refusal; returns the error to answer with. */
  refuse(transport: Transport, reason: AdmissionReason, message: string): OtlpError {
    this.#observer.refused(transport, reason);
    const now = Date.now();
    const last = this.#lastLog.get(reason);
    if (last === undefined || now - last.at >= 10_000) {
      this.#logger.warn('refused an OTLP request', { transport, reason, message, ...(last && last.suppressed > 0 ? { alsoRefusedSinceLastLog: last.suppressed } : {}) });
      this.#lastLog.set(reason, { at: now, suppressed: 0 });
    } else {
      last.suppressed += 1;
    }
    return overloaded(reason, message, ADMISSION_RETRY_AFTER_MS);
  }

  /** Counts a connection refused by the connection cap. */
  connectionRefused(transport: Transport): void {
    this.refuse(transport, 'concurrency', `more than ${this.limits.maxConnections} connections (collector flag --max-connections); the connection was closed`);
  }

  /** @internal */
  leave(ticket: WatchedTicket): void {
    this.#watched.delete(ticket);
    this.#active -= 1;
    const n = (this.#perConnection.get(ticket.connection) ?? 1) - 1;
    if (n <= 0) this.#perConnection.delete(ticket.connection);
    else this.#perConnection.set(ticket.connection, n);
  }

  /** @internal */
  unwatch(ticket: WatchedTicket): void {
    this.#watched.delete(ticket);
  }

  #startSweeper(): void {
    if (this.#sweeper !== undefined) return;
    const every = Math.max(50, Math.min(500, Math.floor(this.limits.requestTimeoutMs / 4)));
    this.#sweeper = setInterval(() => this.#sweep(), every);
    this.#sweeper.unref();
  }

  #sweep(): void {
    if (this.#watched.size === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
      return;
    }
    const now = Date.now();
    const { requestTimeoutMs, minBodyRate } = this.limits;
    for (const t of [...this.#watched]) {
      const elapsed = now - t.startedAt;
      if (elapsed >= requestTimeoutMs) {
        t.expire(this.refuse(t.transport, 'deadline', `the request body did not arrive within ${requestTimeoutMs} ms (collector flag --request-timeout)`));
      } else if (minBodyRate > 0 && elapsed > RATE_GRACE_MS && t.bytes < (minBodyRate * (elapsed - RATE_GRACE_MS)) / 1000) {
        t.expire(this.refuse(t.transport, 'rate', `the request body arrived slower than ${minBodyRate} bytes/s (collector flag --min-body-rate)`));
      }
    }
  }
}

class WatchedTicket implements Ticket {
  readonly #admission: Admission;
  readonly transport: Transport;
  readonly connection: object;
  readonly lease: Lease;
  readonly startedAt: number;
  bytes = 0;
  #onExpire: ((err: OtlpError) => void) | undefined;
  #watching = true;
  #closed = false;

  constructor(admission: Admission, transport: Transport, connection: object, lease: Lease, startedAt: number) {
    this.#admission = admission;
    this.transport = transport;
    this.connection = connection;
    this.lease = lease;
    this.startedAt = startedAt;
  }

  received(n: number): void {
    this.bytes += n;
  }

  bodyDone(): void {
    if (!this.#watching) return;
    this.#watching = false;
    this.#admission.unwatch(this);
  }

  onExpire(handler: (err: OtlpError) => void): void {
    this.#onExpire = handler;
  }

  expire(err: OtlpError): void {
    this.bodyDone();
    const handler = this.#onExpire;
    this.#onExpire = undefined;
    handler?.(err);
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watching = false;
    this.lease.close();
    this.#admission.leave(this);
  }
}
