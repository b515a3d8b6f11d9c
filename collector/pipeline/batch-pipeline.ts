// The processor stage: a bounded queue that batches items by count and by time and hands the
// batches to an export function (the TraceWriter). A batch whose export fails for a transient
// reason is kept and retried with backoff; one that fails permanently (storage says the data
// or statement is invalid) is split to isolate the bad items: what can be written is written,
// the rest goes to the dead-letter sink, counted. So an item that offer() accepted is written
// or dead-lettered eventually.
//
// Durability is injected: with a journal (the collector's write-ahead log), offer() resolves
// only once the items are on disk, what an earlier run left is queued first, and an item's
// record is released once it and everything offered before it are written or dead-lettered.
// Without one, the queue is memory only and a shutdown whose deadline passes drops (and
// counts) what is left; with one, what is left stays in the journal for the next start.

import { randomBytes } from 'node:crypto';
import { backoffDelay, sleep, type BackoffOptions } from './backoff.ts';
import type { Journal, JournalTicket } from './journal.ts';
import { ChunkQueue, weightOf } from './queue.ts';

export type OfferResult = 'accepted' | 'full' | 'closed';

/** What an export learns besides the items. */
export interface ExportInfo {
  /**
   * Stable for the same items: a retried batch keeps its id, a piece of a split batch gets
   * the batch id plus its position. Writers may use it to make the write idempotent.
   */
  readonly batchId: string;
}

/** What the pipeline reports; the collector turns it into metrics and logs. */
export interface PipelineObserver {
  /** A batch was written. */
  written(count: number, seconds: number): void;
  /** An export attempt failed; the batch will be tried again after `retryInMs`. */
  writeFailed(error: unknown, info: { readonly count: number; readonly attempt: number; readonly seconds: number; readonly retryInMs: number }): void;
  /** Items given up (only at a shutdown that ran out of time, without a journal). */
  dropped(count: number, reason: 'shutdown_timeout'): void;
  /** Items read back from the journal at start, queued before anything new. */
  replayed?(count: number): void;
  /** Items that storage refused permanently, handed to the dead-letter sink. */
  deadLettered?(count: number, error: unknown): void;
}

/** Where items go that storage refuses permanently. Must not throw for bad items. */
export type DeadLetterSink<T> = (items: readonly T[], error: unknown) => Promise<void>;

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
  /** Durable once resolved. May throw; the batch is retried, or split when `isPermanent` says so. */
  readonly export: (batch: readonly T[], info: ExportInfo) => Promise<void>;
  readonly observer: PipelineObserver;
  /** Durable store of the queued items (see the header); none: memory only. */
  readonly journal?: Journal<T>;
  /** Whether a failed export would fail the same way on every retry. Default: never. */
  readonly isPermanent?: (error: unknown) => boolean;
  /**
   * Splits one item into smaller ones (a request's rows into single rows) to isolate a bad
   * part; returns the item alone when it cannot be split. Default: items are not split.
   */
  readonly split?: (item: T) => T[];
  /** Default: items refused permanently are only counted (observer.deadLettered). */
  readonly deadLetter?: DeadLetterSink<T>;
}

interface InFlight {
  /** Sequence number of the batch's first item. */
  readonly startSeq: number;
  readonly count: number;
}

/** Parts a permanently failing batch is split into. */
const ISOLATION_FANOUT = 2;
/** Isolation inserts of one pipeline at a time. */
const ISOLATION_SLOTS = 8;

interface HeldTicket {
  /** Sequence number just past the ticket's items. */
  readonly end: number;
  readonly ticket: JournalTicket;
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
  /** Weight of offers waiting for the journal: counted against the capacity. */
  #appending = 0;
  /** Journal tickets in sequence order; released once everything before `end` is complete. */
  #tickets: HeldTicket[] = [];
  #ticketHead = 0;
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
  #isolationBusy = 0;
  #isolationWaiters: (() => void)[] = [];
  /** Delay of the most recent retry, while writes are failing; 0 when healthy. */
  #currentBackoffMs = 0;

  constructor(options: BatchPipelineOptions<T>) {
    if (options.batchSize < 1 || options.capacity < 1 || options.concurrency < 1) {
      throw new RangeError('batchSize, capacity and concurrency must be at least 1');
    }
    this.#options = options;
    this.#queue = new ChunkQueue<T>(options.weight);
    // What an earlier run left comes first, even beyond the capacity (it was accepted then).
    let replayed = 0;
    for (const r of options.journal?.takeReplay() ?? []) {
      this.#enqueue(r.items, r.ticket);
      replayed += weightOf(r.items, options.weight);
    }
    if (replayed > 0) options.observer.replayed?.(replayed);
    this.#pump();
  }

  /** Items queued plus items being written (plus offers waiting for the journal). */
  get pending(): number {
    return this.#queue.size + this.#inFlightItems + this.#appending;
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
   * offer is still taken when nothing is pending, so it cannot be refused forever) or the
   * journal has no room, 'closed' after shutdown() began. Resolves once the items are as
   * durable as the journal makes them (at once without a journal). Rejects when the journal
   * fails for another reason than space.
   */
  async offer(items: readonly T[]): Promise<OfferResult> {
    const journal = this.#options.journal;
    if (journal === undefined) return this.offerNow(items);
    if (this.#closed) return 'closed';
    const weight = weightOf(items, this.#options.weight);
    if (weight === 0) return 'accepted';
    const pending = this.pending;
    if (pending > 0 && pending + weight > this.#options.capacity) return 'full';
    this.#appending += weight;
    let ticket: JournalTicket | 'full';
    try {
      ticket = await journal.append(items);
    } finally {
      this.#appending -= weight;
    }
    if (ticket === 'full') return 'full';
    // Durable now, so taken even if a shutdown began meanwhile (the next start replays it
    // if this run cannot write it).
    this.#enqueue(items, ticket);
    this.#pump();
    return 'accepted';
  }

  /** offer() for a pipeline without a journal, synchronously. */
  offerNow(items: readonly T[]): OfferResult {
    if (this.#options.journal !== undefined) throw new Error('offerNow() is for pipelines without a journal; use offer()');
    if (this.#closed) return 'closed';
    const weight = weightOf(items, this.#options.weight);
    if (weight === 0) return 'accepted';
    const pending = this.pending;
    if (pending > 0 && pending + weight > this.#options.capacity) return 'full';
    this.#enqueue(items, undefined);
    this.#pump();
    return 'accepted';
  }

  #enqueue(items: readonly T[], ticket: JournalTicket | undefined): void {
    this.#queue.push(items);
    this.#enqueuedSeq += weightOf(items, this.#options.weight);
    if (ticket !== undefined) this.#tickets.push({ end: this.#enqueuedSeq, ticket });
  }

  /** Releases the journal records of every item up to the completed sequence number. */
  #releaseTickets(): void {
    const journal = this.#options.journal;
    if (journal === undefined) return;
    const done = this.#completedSeq();
    while (this.#ticketHead < this.#tickets.length && this.#tickets[this.#ticketHead]!.end <= done) {
      journal.release(this.#tickets[this.#ticketHead]!.ticket);
      this.#ticketHead++;
    }
    if (this.#ticketHead > 1024 && this.#ticketHead * 2 > this.#tickets.length) {
      this.#tickets = this.#tickets.slice(this.#ticketHead);
      this.#ticketHead = 0;
    }
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
    // With a journal nothing is lost: the unreleased records are replayed at the next start.
    if (this.#options.journal !== undefined) return { lost: 0 };
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
      const write = this.#write(batch, flight, randomBytes(8).toString('hex'));
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

  /**
   * Writes one batch until it is written (or its bad items dead-lettered), or the pipeline is
   * abandoned. Never rejects.
   */
  async #write(batch: readonly T[], flight: InFlight, batchId: string): Promise<void> {
    try {
      await this.#writeRetrying(batch, flight.count, batchId, false);
    } finally {
      this.#inFlight.delete(flight);
      this.#inFlightItems -= flight.count;
      if (!this.#abandon.signal.aborted) this.#releaseTickets();
      this.#resolveWaiters();
      this.#pump();
    }
  }

  /**
   * Exports `items` (weighing `count`), retrying transient failures with backoff. A
   * permanent failure splits the items in halves (or an item into its parts) and writes each
   * the same way; an item that cannot be split further is dead-lettered. Returns when done or
   * abandoned.
   */
  async #writeRetrying(items: readonly T[], count: number, batchId: string, isolating: boolean): Promise<void> {
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
          const result = await Promise.race([(isolating ? this.#isolationSlot(() => this.#options.export(items, { batchId })) : this.#options.export(items, { batchId })).then(() => 'written' as const), abandoned]);
          if (result === 'abandoned') return;
          observer.written(count, (performance.now() - started) / 1000);
          this.#currentBackoffMs = 0;
          return;
        } catch (err) {
          if (signal.aborted) return;
          if (this.#options.isPermanent?.(err) === true) {
            await this.#isolate(items, batchId, err, isolating);
            return;
          }
          const retryInMs = backoffDelay(attempt, backoff);
          this.#currentBackoffMs = retryInMs;
          observer.writeFailed(err, { count, attempt, seconds: (performance.now() - started) / 1000, retryInMs });
          await sleep(retryInMs, signal);
        }
      }
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  async #isolate(items: readonly T[], batchId: string, error: unknown, isolating: boolean): Promise<void> {
    const weigh = this.#options.weight;
    let units: readonly T[] = items;
    if (items.length === 1) {
      let pieces: T[];
      try {
        pieces = this.#options.split?.(items[0]!) ?? [items[0]!];
      } catch {
        pieces = [items[0]!]; // cannot even be taken apart: dead-lettered whole
      }
      if (pieces.length <= 1) {
        await this.#deadLetter(items, error);
        return;
      }
      units = pieces;
    }
    // A batch that fails as a whole may have had nothing bad in it after all (it was the
    // batch, say, too large): the pieces are tried again.
    if (!isolating) this.#options.observer.writeFailed(error, { count: weightOf(items, weigh), attempt: 1, seconds: 0, retryInMs: 0 });
    // An ISOLATION_FANOUT-way split, the parts written at once (at most ISOLATION_SLOTS
    // inserts of this pipeline's isolation at a time): finding a bad row among n takes about
    // log2(n) insert round trips and 2·log2(n) inserts per bad row (a wider split takes fewer
    // round trips but more inserts, and a failing insert costs ClickHouse 0.1-1 s).
    const size = Math.ceil(units.length / ISOLATION_FANOUT);
    const parts: (readonly T[])[] = [];
    for (let i = 0; i < units.length; i += size) parts.push(units.slice(i, i + size));
    await Promise.all(parts.map((part, i) => this.#writeRetrying(part, weightOf(part, weigh), `${batchId}.${i}`, true)));
  }

  async #isolationSlot(run: () => Promise<void>): Promise<void> {
    while (this.#isolationBusy >= ISOLATION_SLOTS) await new Promise<void>((resolve) => this.#isolationWaiters.push(resolve));
    this.#isolationBusy++;
    try {
      await run();
    } finally {
      this.#isolationBusy--;
      this.#isolationWaiters.shift()?.();
    }
  }

  async #deadLetter(items: readonly T[], error: unknown): Promise<void> {
    const count = weightOf(items, this.#options.weight);
    try {
      await this.#options.deadLetter?.(items, error);
    } finally {
      this.#options.observer.deadLettered?.(count, error);
    }
  }
}
