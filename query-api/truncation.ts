// Answers cut at a size limit. Two limits bound the spans of one answer: `--max-trace-spans`
// (the storage reader's cap on one trace) and `--max-response-spans` (all traces of one answer
// together: each of n traces gets at most max-response-spans / n, asked of the reader, so the
// read itself stays bounded, and enforced again here on what comes back). `--max-trace-logs`
// bounds the logs of a trace. The routes say so in the body where the format has room (a
// Jaeger trace's `warnings`, the path's and the logs' `warnings`) and in a header everywhere.

import type { Context } from 'hono';
import type { LogReadOptions, SpanRecord, TraceReadOptions } from '../storage/model.ts';

/**
 * Set on every answer that holds a cut trace: `<number of cut traces>; max-spans=<limit>`,
 * plus `; max-response-spans=<cap>` when the per-response cap set that limit.
 */
export const TRUNCATED_HEADER = 'X-Tracemesh-Truncated-Traces';
/** Set on a logs answer that was cut: `max-logs=<limit>`. */
export const TRUNCATED_LOGS_HEADER = 'X-Tracemesh-Truncated-Logs';

/** Spans in one answer unless `--max-response-spans` says otherwise: one whole trace at the default `--max-trace-spans`. */
export const DEFAULT_MAX_RESPONSE_SPANS = 100_000;
/** Log records of one trace in one answer unless `--max-trace-logs` says otherwise. */
export const DEFAULT_MAX_TRACE_LOGS = 10_000;

/** The text a trace cut by the reader's per-trace cap carries. */
export function truncationWarning(limit: number): string {
  return `trace truncated: it has more than ${limit} spans and only the first ${limit} by start time were read; raise the query API's --max-trace-spans to see them all`;
}

/** The text a trace cut to its share of the per-response cap carries. */
export function responseTruncationWarning(limit: number, traces: number, maxResponseSpans: number): string {
  return `trace truncated: this answer holds ${traces} traces and at most ${maxResponseSpans} spans in all, so only the first ${limit} spans of this one by start time were read; ask for fewer traces, open this trace by its id, or raise the query API's --max-response-spans`;
}

/** The text cut logs carry. */
export function logsTruncationWarning(limit: number): string {
  return `logs truncated: the trace has more than ${limit} log records and only the first ${limit} by time were read; raise the query API's --max-trace-logs to see them all`;
}

/** The two span limits of an answer (query-api flags). */
export interface SpanLimits {
  /** --max-trace-spans: the reader's cap on one trace. */
  readonly maxTraceSpans: number;
  /** --max-response-spans: all traces of one answer together. */
  readonly maxResponseSpans: number;
}

export const DEFAULT_SPAN_LIMITS: SpanLimits = { maxTraceSpans: 100_000, maxResponseSpans: DEFAULT_MAX_RESPONSE_SPANS };

/** The cut traces of one request's reads, and the share of the per-response cap each trace gets. */
export class Truncations {
  readonly #limits = new Map<string, number>();
  readonly #spanLimits: SpanLimits;
  readonly #share: number;
  readonly #traces: number;
  /** Pass to getTrace/getTraces. */
  readonly options: TraceReadOptions;

  /** An answer of `traces` traces (1 for a trace by id). */
  constructor(limits: SpanLimits = DEFAULT_SPAN_LIMITS, traces = 1) {
    this.#spanLimits = limits;
    this.#traces = Math.max(1, traces);
    this.#share = Math.max(1, Math.floor(limits.maxResponseSpans / this.#traces));
    this.options = {
      maxSpansPerTrace: this.#share,
      onTruncated: (traceId, limit) => {
        this.#limits.set(traceId, limit);
      },
    };
  }

  /**
   * The spans of a trace within its share (the first by start time), for a reader that did
   * not honour `maxSpansPerTrace`; a trace cut here is marked like one the reader cut.
   */
  cap(traceId: string, spans: SpanRecord[]): SpanRecord[] {
    if (spans.length <= this.#share) return spans;
    this.#limits.set(traceId, this.#share);
    return [...spans].sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : a.startTimeUnixNano > b.startTimeUnixNano ? 1 : 0)).slice(0, this.#share);
  }

  /** The warning of a cut trace, or undefined for a whole one. */
  warningFor(traceId: string): string | undefined {
    const limit = this.#limits.get(traceId);
    if (limit === undefined) return undefined;
    if (!this.#byShare(limit)) return truncationWarning(limit);
    return limit < this.#spanLimits.maxTraceSpans
      ? responseTruncationWarning(limit, this.#traces, this.#spanLimits.maxResponseSpans)
      : `${truncationWarning(limit)} (and --max-response-spans, ${this.#spanLimits.maxResponseSpans} spans in all for this answer's ${this.#traces} traces)`;
  }

  /** Sets TRUNCATED_HEADER when any trace read was cut. */
  setHeader(c: Context): void {
    if (this.#limits.size === 0) return;
    const limit = Math.max(...this.#limits.values());
    c.header(TRUNCATED_HEADER, `${this.#limits.size}; max-spans=${limit}${this.#byShare(limit) ? `; max-response-spans=${this.#spanLimits.maxResponseSpans}` : ''}`);
  }

  /** Whether a trace cut at `limit` was cut at its share of the response cap. */
  #byShare(limit: number): boolean {
    return limit === this.#share && this.#share <= this.#spanLimits.maxTraceSpans;
  }
}

/** Whether the logs read for one answer were cut at `--max-trace-logs`. */
export class LogTruncation {
  #cut = false;
  readonly limit: number;
  /** Pass to getTraceLogs. */
  readonly options: LogReadOptions;

  constructor(limit: number = DEFAULT_MAX_TRACE_LOGS) {
    this.limit = limit;
    this.options = {
      maxRecords: limit,
      onTruncated: () => {
        this.#cut = true;
      },
    };
  }

  /** The records within the limit (for a reader that did not honour it); marks the cut. */
  cap<T>(records: T[]): T[] {
    if (records.length <= this.limit) return records;
    this.#cut = true;
    return records.slice(0, this.limit);
  }

  get cut(): boolean {
    return this.#cut;
  }

  /** The body's warnings and the header, when cut. */
  warnings(c: Context): string[] {
    if (!this.#cut) return [];
    c.header(TRUNCATED_LOGS_HEADER, `max-logs=${this.limit}`);
    return [logsTruncationWarning(this.limit)];
  }
}
