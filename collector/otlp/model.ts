// The shape of a decoded OTLP export request, as the converter reads it. protobufjs's decoder
// produces it from protobuf (bytes as Uint8Array, 64-bit integers as Long); otlp/json.ts
// produces it from OTLP/JSON (ids as hex text, 64-bit integers as string, number or bigint).
// Every field may be absent: proto3 has no required fields, so the converter supplies defaults.

type Opt<T> = T | null | undefined;

/** protobufjs's Long, or anything with the same two 32-bit halves. */
export interface LongBits {
  readonly low: number;
  readonly high: number;
  readonly unsigned?: boolean;
}
export type LongValue = number | string | bigint | LongBits;

/** Bytes from protobuf; hex text (base64 tolerated) from JSON. */
export type IdValue = Uint8Array | string;

export type AnyValueCase = 'stringValue' | 'boolValue' | 'intValue' | 'doubleValue' | 'arrayValue' | 'kvlistValue' | 'bytesValue';

export interface AnyValueMsg {
  /** Which member of the `value` oneof is set (protobufjs's virtual oneof property). */
  readonly value?: Opt<AnyValueCase>;
  readonly stringValue?: Opt<string>;
  readonly boolValue?: Opt<boolean>;
  readonly intValue?: Opt<LongValue>;
  readonly doubleValue?: Opt<number>;
  readonly arrayValue?: Opt<{ readonly values?: Opt<readonly AnyValueMsg[]> }>;
  readonly kvlistValue?: Opt<{ readonly values?: Opt<readonly KeyValueMsg[]> }>;
  readonly bytesValue?: Opt<Uint8Array>;
}

export interface KeyValueMsg {
  readonly key?: Opt<string>;
  readonly value?: Opt<AnyValueMsg>;
}

export interface ResourceMsg {
  readonly attributes?: Opt<readonly KeyValueMsg[]>;
}

export interface ScopeMsg {
  readonly name?: Opt<string>;
  readonly version?: Opt<string>;
  readonly attributes?: Opt<readonly KeyValueMsg[]>;
}

export interface EventMsg {
  readonly timeUnixNano?: Opt<LongValue>;
  readonly name?: Opt<string>;
  readonly attributes?: Opt<readonly KeyValueMsg[]>;
}

export interface LinkMsg {
  readonly traceId?: Opt<IdValue>;
  readonly spanId?: Opt<IdValue>;
  readonly traceState?: Opt<string>;
  readonly attributes?: Opt<readonly KeyValueMsg[]>;
}

export interface StatusMsg {
  readonly message?: Opt<string>;
  readonly code?: Opt<number>;
}

export interface SpanMsg {
  readonly traceId?: Opt<IdValue>;
  readonly spanId?: Opt<IdValue>;
  readonly traceState?: Opt<string>;
  readonly parentSpanId?: Opt<IdValue>;
  readonly name?: Opt<string>;
  readonly kind?: Opt<number>;
  readonly startTimeUnixNano?: Opt<LongValue>;
  readonly endTimeUnixNano?: Opt<LongValue>;
  readonly attributes?: Opt<readonly KeyValueMsg[]>;
  readonly events?: Opt<readonly EventMsg[]>;
  readonly links?: Opt<readonly LinkMsg[]>;
  readonly status?: Opt<StatusMsg>;
  /** What the sender dropped itself (its SDK's span limits). */
  readonly droppedAttributesCount?: Opt<number>;
  readonly droppedEventsCount?: Opt<number>;
  readonly droppedLinksCount?: Opt<number>;
}

export interface ScopeSpansMsg {
  readonly scope?: Opt<ScopeMsg>;
  readonly spans?: Opt<readonly SpanMsg[]>;
}

/** Pre-1.0 SDKs send `instrumentation_library_spans` (field 1000) instead of `scope_spans`. */
export interface InstrumentationLibrarySpansMsg {
  readonly instrumentationLibrary?: Opt<ScopeMsg>;
  readonly spans?: Opt<readonly SpanMsg[]>;
}

export interface ResourceSpansMsg {
  readonly resource?: Opt<ResourceMsg>;
  readonly scopeSpans?: Opt<readonly ScopeSpansMsg[]>;
  readonly instrumentationLibrarySpans?: Opt<readonly InstrumentationLibrarySpansMsg[]>;
}

export interface ExportTraceRequestMsg {
  readonly resourceSpans?: Opt<readonly ResourceSpansMsg[]>;
}

export interface LogRecordMsg {
  readonly timeUnixNano?: Opt<LongValue>;
  readonly observedTimeUnixNano?: Opt<LongValue>;
  readonly severityNumber?: Opt<number>;
  readonly severityText?: Opt<string>;
  readonly body?: Opt<AnyValueMsg>;
  readonly attributes?: Opt<readonly KeyValueMsg[]>;
  readonly traceId?: Opt<IdValue>;
  readonly spanId?: Opt<IdValue>;
  readonly eventName?: Opt<string>;
  readonly droppedAttributesCount?: Opt<number>;
}

export interface ScopeLogsMsg {
  readonly scope?: Opt<ScopeMsg>;
  readonly logRecords?: Opt<readonly LogRecordMsg[]>;
}

export interface InstrumentationLibraryLogsMsg {
  readonly instrumentationLibrary?: Opt<ScopeMsg>;
  readonly logRecords?: Opt<readonly LogRecordMsg[]>;
}

export interface ResourceLogsMsg {
  readonly resource?: Opt<ResourceMsg>;
  readonly scopeLogs?: Opt<readonly ScopeLogsMsg[]>;
  readonly instrumentationLibraryLogs?: Opt<readonly InstrumentationLibraryLogsMsg[]>;
}

export interface ExportLogsRequestMsg {
  readonly resourceLogs?: Opt<readonly ResourceLogsMsg[]>;
}

/** The two OTLP signals the collector receives. */
export type Signal = 'traces' | 'logs';
