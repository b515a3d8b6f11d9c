// The records that flow from the collector into storage and out to the query API, and the
// Reader/Writer contracts that every storage backend implements.

import type { EncodedLogs, EncodedSpans } from './rows.ts';

export type SpanKind = 'UNSPECIFIED' | 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';
export type StatusCode = 'UNSET' | 'OK' | 'ERROR';
export type AttributeType = 'string' | 'bool' | 'int' | 'double' | 'bytes' | 'json';

/**
 * One attribute, value already rendered as text. `int` keeps full 64-bit precision as
 * decimal text; `bytes` is base64; `json` holds arrays and key-value lists as JSON.
 */
export interface Attribute {
  readonly key: string;
  readonly type: AttributeType;
  readonly value: string;
}

export interface SpanEvent {
  readonly timeUnixNano: bigint;
  readonly name: string;
  readonly attributes: readonly Attribute[];
}

export interface SpanLink {
  readonly traceId: string;
  readonly spanId: string;
  readonly traceState: string;
  readonly attributes: readonly Attribute[];
}

export interface SpanRecord {
  /** 32 lowercase hex characters. */
  readonly traceId: string;
  /** 16 lowercase hex characters. */
  readonly spanId: string;
  /** 16 lowercase hex characters, or '' for a root span. */
  readonly parentSpanId: string;
  readonly traceState: string;
  readonly name: string;
  readonly kind: SpanKind;
  readonly startTimeUnixNano: bigint;
  readonly durationNano: bigint;
  readonly statusCode: StatusCode;
  readonly statusMessage: string;
  /** From the resource's `service.name`; 'unknown_service' when absent (per the spec). */
  readonly serviceName: string;
  readonly scopeName: string;
  readonly scopeVersion: string;
  readonly resourceAttributes: readonly Attribute[];
  readonly attributes: readonly Attribute[];
  readonly events: readonly SpanEvent[];
  readonly links: readonly SpanLink[];
}

export interface LogRecord {
  readonly timeUnixNano: bigint;
  readonly observedTimeUnixNano: bigint;
  /** '' when the record is not tied to a trace. */
  readonly traceId: string;
  readonly spanId: string;
  readonly severityNumber: number;
  readonly severityText: string;
  readonly serviceName: string;
  /** String bodies as-is; any other AnyValue as JSON. */
  readonly body: string;
  readonly scopeName: string;
  readonly resourceAttributes: readonly Attribute[];
  readonly attributes: readonly Attribute[];
}

/** Calls from one service to another, aggregated per minute. */
export interface EdgeRecord {
  /** Start of the minute, in Unix seconds. */
  readonly minuteUnixSeconds: number;
  readonly clientService: string;
  readonly serverService: string;
  readonly calls: number;
  readonly errors: number;
  /** Sum of the server-side (or client-side, if unpaired) durations, for the average. */
  readonly durationSumNano: bigint;
}

export interface TraceQuery {
  readonly serviceName?: string;
  readonly operationName?: string;
  /** Span attributes (or resource attributes) that must all match exactly. */
  readonly tags?: Readonly<Record<string, string>>;
  readonly startTimeMinUnixNano: bigint;
  readonly startTimeMaxUnixNano: bigint;
  readonly durationMinNano?: bigint;
  readonly durationMaxNano?: bigint;
  /** Maximum number of traces. */
  readonly limit: number;
}

export interface Operation {
  readonly name: string;
  readonly spanKind: SpanKind;
}

/** Options of one edge write. */
export interface EdgeWriteOptions {
  /**
   * The same for every retry of the same edges: storage keeps one copy per batch id, so a
   * retried write never counts calls twice. Default: a new id per call.
   */
  readonly batchId?: string;
}

/** Writes are durable once the promise resolves. */
export interface TraceWriter {
  writeSpans(spans: readonly SpanRecord[]): Promise<void>;
  writeLogs(logs: readonly LogRecord[]): Promise<void>;
  writeEdges(edges: readonly EdgeRecord[], options?: EdgeWriteOptions): Promise<void>;
  /** Safe to call twice. */
  close(): Promise<void>;
}

/**
 * A writer that also takes spans and logs already encoded as rows of the ClickHouse tables
 * (the collector's protobuf decoder writes spans straight from the wire, and queues logs as
 * rows). Writers without it get records (`decodeSpans`/`decodeLogs` in rows.ts).
 */
export interface EncodedRowWriter {
  /** Durable once the promise resolves. The chunks' bytes are not kept after that. */
  writeEncodedSpans(chunks: readonly EncodedSpans[]): Promise<void>;
  writeEncodedLogs(chunks: readonly EncodedLogs[]): Promise<void>;
}

/** Options of one trace read. */
export interface TraceReadOptions {
  /**
   * Called once for each trace that has more spans than the reader reads of one trace (the
   * ClickHouse reader's `maxTraceSpans`): that trace's array then holds only its first
   * `limit` spans by start time. Without it a cut trace is not told apart from a whole one.
   */
  readonly onTruncated?: (traceId: string, limit: number) => void;
  /**
   * Read at most this many spans of each trace, when it is below the reader's own cap (the
   * query API's share of its per-response span cap). A cut trace is reported with this limit.
   * A reader may ignore it: the caller cuts what it gets too.
   */
  readonly maxSpansPerTrace?: number;
}

/** Options of one log read. */
export interface LogReadOptions {
  /** Read at most this many records; a reader may ignore it (the caller cuts what it gets too). */
  readonly maxRecords?: number;
  /** Called once when the trace has more records than `maxRecords`: only the first ones (oldest) were read. */
  readonly onTruncated?: (limit: number) => void;
}

export interface TraceReader {
  /**
   * All spans of the trace, or [] when the id is unknown. A backend may cap the spans it
   * reads of one trace; a cut trace is reported to `options.onTruncated`.
   */
  getTrace(traceId: string, options?: TraceReadOptions): Promise<SpanRecord[]>;
  /**
   * Several traces read together (a search's results, Jaeger's `traceID=` list). For each id
   * with spans, the array that `getTrace(id)` returns, keyed by the normalized id, in the
   * order the ids were given (repeats once). Ids without spans have no entry. Any malformed
   * id rejects the whole call with `INVALID_TRACE_ID`. The cap of getTrace applies to each
   * trace, and each cut one is reported to `options.onTruncated`.
   */
  getTraces(traceIds: readonly string[], options?: TraceReadOptions): Promise<Map<string, SpanRecord[]>>;
  /** Trace ids matching the query, most recent first, at most `limit`. */
  findTraceIds(query: TraceQuery): Promise<string[]>;
  getServices(): Promise<string[]>;
  getOperations(serviceName: string, spanKind?: SpanKind): Promise<Operation[]>;
  /** Edges in [start, end), summed per client/server pair. */
  getEdges(startUnixNano: bigint, endUnixNano: bigint): Promise<EdgeRecord[]>;
  /** Log records of one trace, oldest first (at most `options.maxRecords`, when the reader honours it). */
  getTraceLogs(traceId: string, options?: LogReadOptions): Promise<LogRecord[]>;
}
