// The outcome analyser: finds the traces of its shard that have gone quiet (no span arrived
// for `quietSeconds`), analyses each once, and writes its outcome row. A checkpoint (the
// arrival second up to which every quiet trace has been written) is stored in ClickHouse
// after each step, so a restart resumes there: nothing is skipped. A replay of the step a
// crash interrupted writes nothing new (the standing outcome is the same), and a trace that
// changed (late spans) has its standing row cancelled in the same insert: nothing is counted
// twice. README.md "How it keeps up" and "Restarts and replicas".

import type { Logger } from '../common/logger.ts';
import { silentLogger } from '../common/logger.ts';
import type { SpanRecord, TraceReader } from '../storage/model.ts';
import type { CompletedTrace, OutcomeRecord, OutcomeStore, Shard } from '../storage/outcomes/model.ts';
import { analyzeTrace, DEFAULT_MAX_TRACE_SPANS, sameOutcome, tooLargeOutcome, type AnalyzedTrace } from './analyze.ts';

export interface AnalyserOptions {
  /** A trace is complete when no span arrived for this long; default 10 s. */
  readonly quietSeconds?: number;
  readonly shard?: Shard;
  /** Traces with more spans are recorded as `too_large` without being read; default 10 000. */
  readonly maxTraceSpans?: number;
  /** Most traces read per `getTraces` call (one span statement, one insert); default 1000. */
  readonly batchTraces?: number;
  /** A batch ends before it reaches this many spans (counted at arrival), unless it is one trace; default 20 000. */
  readonly batchSpans?: number;
  /** Arrival seconds handled per step, so a backlog is worked off in bounded steps; default 10. */
  readonly maxStepSeconds?: number;
  /** A shard with no checkpoint starts this long before now; default 900 s. */
  readonly backfillSeconds?: number;
  /** Pause between steps when caught up; default 1000 ms. */
  readonly pollMs?: number;
  /** Pause after a failed step (storage down); default 2000 ms. */
  readonly retryMs?: number;
  readonly logger?: Logger;
  /** Called for every outcome written: `replaced` when it updates an earlier outcome of the trace. */
  readonly onOutcome?: (analyzed: Pick<AnalyzedTrace, 'hops'> | undefined, outcome: OutcomeRecord, replaced: OutcomeRecord | undefined) => void;
  /** Called when a step fails (it is retried). */
  readonly onError?: (err: unknown) => void;
}

export interface AnalyserStats {
  readonly checkpoint: number | undefined;
  readonly tracesAnalyzed: number;
  readonly outcomesWritten: number;
  readonly outcomesReplaced: number;
  readonly tooLarge: number;
  readonly stepErrors: number;
  /** Arrival seconds between the checkpoint and the quiet horizon at the last step. */
  readonly lagSeconds: number;
}

/** Completed traces fetched per statement; a step with more is split at a second boundary. */
const COMPLETED_LIMIT = 200_000;

/**
 * Where the analyser reads spans: any `getTraces`; a reader that also has `forEachTrace`
 * (storage/outcomes/spans.ts) hands each trace over as soon as it is decoded.
 */
export type AnalyserSpanReader = Pick<TraceReader, 'getTraces'> & {
  forEachTrace?(traceIds: readonly string[], onTrace: (traceId: string, spans: SpanRecord[]) => void): Promise<void>;
};

export class OutcomeAnalyser {
  readonly #store: OutcomeStore;
  readonly #reader: AnalyserSpanReader;
  readonly #quiet: number;
  readonly #shard: Shard;
  readonly #maxSpans: number;
  readonly #batch: number;
  readonly #batchSpans: number;
  readonly #maxStep: number;
  readonly #backfill: number;
  readonly #pollMs: number;
  readonly #retryMs: number;
  readonly #logger: Logger;
  readonly #onOutcome: AnalyserOptions['onOutcome'];
  readonly #onError: AnalyserOptions['onError'];
  #checkpoint: number | undefined;
  #lastAnalyzedAt = 0n;
  #stats = { tracesAnalyzed: 0, outcomesWritten: 0, outcomesReplaced: 0, tooLarge: 0, stepErrors: 0, lagSeconds: 0 };
  #running: Promise<void> | undefined;
  #stopping = false;
  #wake: (() => void) | undefined;

  constructor(store: OutcomeStore, reader: AnalyserSpanReader, options: AnalyserOptions = {}) {
    this.#store = store;
    this.#reader = reader;
    this.#quiet = Math.max(1, Math.floor(options.quietSeconds ?? 10));
    this.#shard = options.shard ?? { index: 0, count: 1 };
    this.#maxSpans = options.maxTraceSpans ?? DEFAULT_MAX_TRACE_SPANS;
    this.#batch = Math.max(1, options.batchTraces ?? 1000);
    this.#batchSpans = Math.max(1, options.batchSpans ?? 20_000);
    this.#maxStep = Math.max(1, options.maxStepSeconds ?? 10);
    this.#backfill = options.backfillSeconds ?? 900;
    this.#pollMs = options.pollMs ?? 1000;
    this.#retryMs = options.retryMs ?? 2000;
    this.#logger = options.logger ?? silentLogger;
    this.#onOutcome = options.onOutcome;
    this.#onError = options.onError;
  }

  get stats(): AnalyserStats {
    return { checkpoint: this.#checkpoint, ...this.#stats };
  }

  /** Runs steps until stop(). Never rejects: a failed step is logged, counted and retried. */
  start(): void {
    this.#running ??= this.#loop();
  }

  /** Finishes the step in progress and stops. Safe to call twice. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.#running;
  }

  async #loop(): Promise<void> {
    while (!this.#stopping) {
      let pause = this.#pollMs;
      try {
        const more = await this.step();
        if (more) pause = 0;
      } catch (err) {
        this.#stats.stepErrors++;
        this.#logger.warn('outcome step failed; retrying', { err, retryInMs: this.#retryMs });
        this.#onError?.(err);
        pause = this.#retryMs;
      }
      if (pause > 0 && !this.#stopping) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, pause);
          function done(): void {
            clearTimeout(t);
            resolve();
          }
          this.#wake = done;
        });
        this.#wake = undefined;
      }
    }
  }

  /**
   * One step: the traces of the shard that went quiet in (checkpoint, checkpoint + maxStep],
   * analysed and written, then the checkpoint. Returns true when more is already waiting.
   */
  async step(): Promise<boolean> {
    const now = await this.#store.serverNow();
    const horizon = now - this.#quiet;
    const checkpoint = (this.#checkpoint ??= (await this.#store.readCheckpoint(this.#shard)) ?? horizon - this.#backfill);
    this.#stats.lagSeconds = Math.max(0, horizon - checkpoint);
    if (horizon <= checkpoint) return false;
    let upto = Math.min(horizon, checkpoint + this.#maxStep);
    let traces: CompletedTrace[];
    for (let limit = COMPLETED_LIMIT; ; limit *= 4) {
      traces = await this.#store.completedTraces(checkpoint, upto, this.#shard, limit);
      if (traces.length < limit) break;
      // Cut at the last whole second; a single second with more than `limit` traces is read again with a larger limit.
      const lastSecond = traces[traces.length - 1]!.lastSeenUnixSeconds;
      if (lastSecond - 1 > checkpoint) {
        upto = lastSecond - 1;
        traces = traces.filter((t) => t.lastSeenUnixSeconds <= upto);
        break;
      }
    }
    // Batches of at most #batch traces and about #batchSpans spans: few statements per trace
    // (each costs the client ~1 ms of CPU), bounded memory.
    for (let i = 0; i < traces.length; ) {
      let j = i;
      let spans = 0;
      while (j < traces.length && j - i < this.#batch && (j === i || spans + traces[j]!.spans <= this.#batchSpans)) spans += traces[j++]!.spans;
      await this.#analyseBatch(traces.slice(i, j));
      i = j;
    }
    await this.#store.writeCheckpoint(this.#shard, upto);
    this.#checkpoint = upto;
    this.#stats.lagSeconds = Math.max(0, horizon - upto);
    return upto < horizon;
  }

  #analyzedAt(): bigint {
    // Strictly increasing, so two versions of one trace never share a version.
    const now = BigInt(Date.now()) * 1_000_000n;
    this.#lastAnalyzedAt = now > this.#lastAnalyzedAt ? now : this.#lastAnalyzedAt + 1n;
    return this.#lastAnalyzedAt;
  }

  async #analyseBatch(batch: readonly CompletedTrace[]): Promise<void> {
    const small = batch.filter((t) => t.spans <= this.#maxSpans).map((t) => t.traceId);
    const large = batch.filter((t) => t.spans > this.#maxSpans);
    // Only what the metrics count is kept of an analysed trace, not its spans.
    const results: { analyzed: Pick<AnalyzedTrace, 'hops'> | undefined; outcome: OutcomeRecord }[] = [];
    let from: bigint | undefined;
    let to: bigint | undefined;
    const widen = (start: bigint, end: bigint): void => {
      if (from === undefined || start < from) from = start;
      if (to === undefined || end > to) to = end;
    };
    const analyse = (id: string, spans: readonly SpanRecord[]): void => {
      // No spans: expired by retention between arrival and analysis. Nothing to count.
      if (spans.length === 0) return;
      let analyzed: AnalyzedTrace;
      try {
        analyzed = analyzeTrace(id, spans, this.#analyzedAt(), this.#maxSpans);
      } catch (err) {
        // The analysis is pure and handles hostile traces; a throw is a bug, not a reason to stop.
        this.#logger.error('outcome analysis failed; trace skipped', { traceId: id, err });
        return;
      }
      results.push({ analyzed: { hops: analyzed.hops }, outcome: analyzed.outcome });
      let lo = spans[0]!.startTimeUnixNano;
      let hi = lo;
      for (const s of spans) {
        if (s.startTimeUnixNano < lo) lo = s.startTimeUnixNano;
        if (s.startTimeUnixNano > hi) hi = s.startTimeUnixNano;
      }
      widen(lo, hi);
    };
    if (small.length > 0) {
      // A reader that hands traces over as they are decoded (RowBinaryTraceReader): each is
      // analysed and dropped at once, so its records die young.
      if (this.#reader.forEachTrace !== undefined) await this.#reader.forEachTrace(small, analyse);
      else {
        const spansOf = await this.#reader.getTraces(small);
        for (const id of small) analyse(id, spansOf.get(id) ?? []);
      }
    }
    if (large.length > 0) {
      const extents = await this.#store.traceExtents(large.map((t) => t.traceId));
      for (const t of large) {
        const e = extents.get(t.traceId);
        if (!e) continue;
        results.push({ analyzed: undefined, outcome: tooLargeOutcome(t.traceId, t.spans, e.start, e.end, this.#analyzedAt()) });
        widen(e.start, e.end);
      }
    }
    this.#stats.tracesAnalyzed += results.length;
    if (results.length === 0 || from === undefined || to === undefined) return;
    const current = await this.#store.currentOutcomes(
      results.map((r) => r.outcome.traceId),
      from,
      to,
    );
    const replaced: OutcomeRecord[] = [];
    const fresh: typeof results = [];
    for (const r of results) {
      const prev = current.get(r.outcome.traceId);
      if (prev && sameOutcome(prev, r.outcome)) continue;
      if (prev) replaced.push(prev);
      fresh.push(r);
    }
    await this.#store.writeOutcomes(
      replaced,
      fresh.map((r) => r.outcome),
    );
    this.#stats.outcomesWritten += fresh.length;
    this.#stats.outcomesReplaced += replaced.length;
    for (const r of fresh) {
      if (r.outcome.status === 'too_large') this.#stats.tooLarge++;
      this.#onOutcome?.(r.analyzed, r.outcome, current.get(r.outcome.traceId));
    }
  }
}
