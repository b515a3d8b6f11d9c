// The processor stage: a bounded queue that batches items by count and by time and hands the
// batches to an export function (the TraceWriter). A batch whose export fails is kept and
// retried with backoff, so an item that offer() accepted is written eventually; only a
// shutdown whose deadline passes gives items up, and those are counted.

import { backoffDelay, sleep, type BackoffOptions } from './backoff.ts';
import { ChunkQueue, weightOf } from './queue.ts';

export type OfferResult = 'accepted' | 'full' | 'closed';

/** What the pipeline reports; the collector turns it into metrics and logs. */
export interface PipelineObserver {
  /** A batch was written. */
  written(count: number, seconds: number): void;
  /** An export attempt failed; the batch will be tried again after `retryInMs`. */
  writeFailed(error: unknown, info: { readonly count: number; readonly attempt: number; readonly seconds: number; readonly retryInMs: number }): void;
  /** Items given up (only at a shutdown that ran out of time). */
  dropped(count: number, reason: 'shutdown_timeout'): void;
}

export interface BatchPipelineOptions<T> {
  /**
   * What an item counts for in the capacity and batch size; default 1. The span pipeline's
   * items are requests' worth of encoded spans, weighing their span count. Counts reported to
   * the observer are weights too.
   */
  readonly weight?: (item: T) => number;
  /** Upper bound of items queued plus items being written. */
  readonly capacity: number;
  /** A batch is sent as soon as this many items are queued (a batch never splits an item). */
  readonly batchSize: number;
  /** A smaller batch is sent when its oldest item has waited this long. */
  readonly batchTimeoutMs: number;
  /** Batches written at the same time. */
  readonly concurrency: number;
  readonly backoff: BackoffOptions;
  /** Durable once resolved. May throw; the batch is retried. */
  readonly export: (batch: readonly T[]) => Promise<void>;
  readonly observer: PipelineObserver;
}

interface InFlight {
  /** Sequence number of the batch's first item. */
  readonly startSeq: number;
  readonly count: number;
}

interface FlushWaiter {
  readonly target: number;
  readonly resolve: () => void;
}

export class BatchPipeline<T> {
  readonly #options: BatchPipelineOptions<T>;
  readonly #queue: ChunkQueue<T>;
  readonly #inFlight = new Set<InFlight>();
  /** The running #write() calls; they settle promptly once #abandon aborts. */
  readonly #writes = new Set<Promise<void>>();
  #inFlightItems = 0;
  /** Items ever enqueued / ever taken from the queue; item n has sequence number n. */
  #enqueuedSeq = 0;
  #dequeuedSeq = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Set when the oldest queued item has waited batchTimeoutMs; cleared when the queue empties. */
  #due = false;
  #flushWaiters: FlushWaiter[] = [];
  #closed = false;
  #shutdown: Promise<{ lost: number }> | undefined;
  /** Aborted when a shutdown deadline passes: pending retries and writes are abandoned. */
  readonly #abandon = new AbortController();
  /** Delay of the most recent retry, while writes are failing; 0 when healthy. */
  #currentBackoffMs = 0;

  constructor(options: BatchPipelineOptions<T>) {
    if (options.batchSize < 1 || options.capacity < 1 || options.concurrency < 1) {
      throw new RangeError('batchSize, capacity and concurrency must be at least 1');
    }
    this.#options = options;
    this.#queue = new ChunkQueue<T>(options.weight);
  }

  /** Items queued plus items being written. */
  get pending(): number {
    return this.#queue.size + this.#inFlightItems;
  }

  get capacity(): number {
    return this.#options.capacity;
  }

  /**
   * A retry hint for a client turned away because the queue is full: the current backoff
   * while writes are failing, else the batch timeout (about when room frees up); at least 1 s.
   */
  retryAfterMs(): number {
    return Math.max(1_000, this.#currentBackoffMs, this.#options.batchTimeoutMs);
  }

  /**
   * Takes all of `items` or none: 'full' when they would overflow the capacity (an oversized
   * offer is still taken when nothing is pending, so it cannot be refused forever), 'closed'
   * after shutdown() began. Never blocks.
   */
  offer(items: readonly T[]): OfferResult {
    if (this.#closed) return 'closed';
    const weight = weightOf(items, this.#options.weight);
    if (weight === 0) return 'accepted';
    const pending = this.pending;
    if (pending > 0 && pending + weight > this.#options.capacity) return 'full';
    this.#queue.push(items);
    this.#enqueuedSeq += weight;
    this.#pump();
    return 'accepted';
  }

  /** Resolves when every item offered before the call is written (or given up at shutdown). */
  forceFlush(): Promise<void> {
    const target = this.#enqueuedSeq;
    if (this.#completedSeq() >= target) return Promise.resolve();
    return new Promise((resolve) => {
      this.#flushWaiters.push({ target, resolve });
      this.#pump();
    });
  }

  /**
   * Refuses new items, writes everything queued and waits for it up to `timeoutMs`. What is
   * still unwritten then is abandoned and reported as dropped. Safe to call twice.
   */
  shutdown(timeoutMs: number): Promise<{ lost: number }> {
    this.#shutdown ??= this.#doShutdown(timeoutMs);
    return this.#shutdown;
  }

  async #doShutdown(timeoutMs: number): Promise<{ lost: number }> {
    this.#closed = true;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const outcome = await Promise.race([this.forceFlush().then(() => 'flushed' as const), deadline]);
    clearTimeout(timer);
    this.#clearTimer();
    if (outcome === 'flushed') return { lost: 0 };
    const lost = this.pending;
    this.#abandon.abort();
    await Promise.all(this.#writes);
    this.#queue.clear();
    this.#dequeuedSeq = this.#enqueuedSeq;
    if (lost > 0) this.#options.observer.dropped(lost, 'shutdown_timeout');
    this.#resolveWaiters(true);
    return { lost };
  }

  /** Sequence number below which every item is written. */
  #completedSeq(): number {
    let min = this.#dequeuedSeq;
    for (const f of this.#inFlight) if (f.startSeq < min) min = f.startSeq;
    return min;
  }

  #resolveWaiters(all = false): void {
    if (this.#flushWaiters.length === 0) return;
    const done = all ? Infinity : this.#completedSeq();
    const still: FlushWaiter[] = [];
    for (const w of this.#flushWaiters) {
      if (w.target <= done) w.resolve();
      else still.push(w);
    }
    this.#flushWaiters = still;
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Starts as many batches as are due and the concurrency allows; arms the batch timer. */
  #pump(): void {
    if (this.#abandon.signal.aborted) return;
    const { batchSize, concurrency, batchTimeoutMs } = this.#options;
    const flushing = this.#closed || this.#flushWaiters.length > 0;
    while (this.#inFlight.size < concurrency && this.#queue.size > 0) {
      if (!(this.#queue.size >= batchSize || this.#due || flushing)) break;
      const batch = this.#queue.take(batchSize);
      const weight = weightOf(batch, this.#options.weight);
      const flight: InFlight = { startSeq: this.#dequeuedSeq, count: weight };
      this.#dequeuedSeq += weight;
      this.#inFlight.add(flight);
      this.#inFlightItems += weight;
      const write = this.#write(batch, flight);
      this.#writes.add(write);
      void write.finally(() => this.#writes.delete(write));
    }
    if (this.#queue.size === 0) {
      this.#due = false;
      this.#clearTimer();
    } else if (this.#timer === undefined && !this.#due) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#due = true;
        this.#pump();
      }, batchTimeoutMs);
      this.#timer.unref();
    }
  }

  /** Writes one batch until it succeeds or the pipeline is abandoned. Never rejects. */
  async #write(batch: readonly T[], flight: InFlight): Promise<void> {
    const { observer, backoff } = this.#options;
    const signal = this.#abandon.signal;
    let onAbort: (() => void) | undefined;
    const abandoned = new Promise<'abandoned'>((resolve) => {
      onAbort = () => resolve('abandoned');
      if (signal.aborted) resolve('abandoned');
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      for (let attempt = 1; !signal.aborted; attempt++) {
        const started = performance.now();
        try {
          const result = await Promise.race([this.#options.export(batch).then(() => 'written' as const), abandoned]);
          if (result === 'abandoned') return;
          observer.written(flight.count, (performance.now() - started) / 1000);
          this.#currentBackoffMs = 0;
          return;
        } catch (err) {
          if (signal.aborted) return;
          const retryInMs = backoffDelay(attempt, backoff);
          this.#currentBackoffMs = retryInMs;
          observer.writeFailed(err, { count: flight.count, attempt, seconds: (performance.now() - started) / 1000, retryInMs });
          await sleep(retryInMs, signal);
        }
      }
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
      this.#inFlight.delete(flight);
      this.#inFlightItems -= flight.count;
      this.#resolveWaiters();
      this.#pump();
    }
  }
}
