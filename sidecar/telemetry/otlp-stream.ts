// Streaming OTLP export: each finished span and each access-log record is encoded into the
// current batch's protobuf bytes at once, where it ends, and the batch is sent over OTLP/gRPC
// when it is full or `delayMs` after its first item. Nothing waits for export as an object.
//
// Why (bench/README.md, "Where a sidecar's CPU goes"): with the SDK's BatchSpanProcessor and
// BatchLogRecordProcessor every request left two objects graphs (ReadableSpan, LogRecordImpl
// with its validated attribute copy) queued for up to a second, thousands of them, promoted to
// the old generation before they were encoded in one long batch. Encoding at the end keeps
// them short-lived, and the access-log records skip the SDK's LogRecordImpl entirely
// (StreamingLogger writes the OTLP LogRecord straight from the emit call).
//
// Semantics kept from the SDK processors: only sampled spans are exported; a batch is sent at
// `maxBatch` items or after `delayMs`; at most `maxQueue` items wait (queued and in flight),
// newer ones are dropped and counted; forceFlush sends everything and waits; shutdown flushes,
// then refuses new items. Used only when the sidecar exports over OTLP/gRPC itself; tests that
// pass an in-memory exporter keep the SDK processors (sidecar/telemetry/telemetry.ts).

import { isSpanContextValid, trace, type Attributes, type Context, type HrTime, type SpanContext } from '@opentelemetry/api';
import type { LogRecord, Logger } from '@opentelemetry/api-logs';
import { ExportResultCode, timeInputToHrTime } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { encodeLogRecordFields, encodeScopeHeader, encodeSpan, ProtoWriter, type ScopeHeader } from './otlp-encode.ts';
import type { OtlpGrpcChannel } from './otlp-export.ts';

export const TRACE_METHOD = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
export const LOGS_METHOD = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';
/** Batches sent at once; more wait in the queue. */
const MAX_IN_FLIGHT = 2;

export interface BatcherOptions {
  readonly channel: OtlpGrpcChannel;
  readonly method: string;
  readonly maxBatch: number;
  readonly maxQueue: number;
  readonly delayMs: number;
  readonly timeoutMs: number;
}

interface Sealed {
  readonly body: Buffer;
  readonly items: number;
}

/**
 * The current batch of encoded items (Span or LogRecord messages, field 2 of their scope
 * message), all of one resource and scope, and the batches sealed and not yet acknowledged.
 */
export class OtlpBatcher {
  /** Write the next item here, after `room()` said yes, then call `added()`. */
  readonly w = new ProtoWriter(256 * 1024);
  /** Items dropped because the queue was full or the exporter was shut down. */
  dropped = 0;
  /** Items whose export failed (after the channel's retries). */
  failed = 0;
  private readonly o: BatcherOptions;
  private count = 0;
  private queued = 0;
  private header: ScopeHeader | undefined = undefined;
  private headerKey: unknown = undefined;
  private timer: NodeJS.Timeout | undefined = undefined;
  private readonly queue: Sealed[] = [];
  private inFlight = 0;
  private idle: Array<() => void> = [];
  private stopped = false;
  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.seal();
  };

  constructor(o: BatcherOptions) {
    this.o = o;
  }

  /**
   * True when one more item may be written. `key` identifies its resource and scope (compared
   * by identity); `header` encodes them (Resource, field 1, and the scope message's start),
   * called only when they change, which seals the batch of the previous ones.
   */
  room(key: unknown, header: () => ScopeHeader): boolean {
    if (this.stopped || this.count + this.queued >= this.o.maxQueue) {
      this.dropped++;
      return false;
    }
    if (key !== this.headerKey) {
      if (this.count > 0) this.seal();
      this.headerKey = key;
      this.header = header();
    }
    return true;
  }

  added(): void {
    this.count++;
    if (this.count >= this.o.maxBatch) this.seal();
    else if (this.timer === undefined) {
      this.timer = setTimeout(this.onTimer, this.o.delayMs);
      this.timer.unref();
    }
  }

  /** Closes the current batch into a request body and sends what the in-flight limit allows. */
  seal(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.count > 0) {
      const header = this.header as ScopeHeader;
      const items = this.w.buf.subarray(0, this.w.pos);
      // ExportXServiceRequest { 1: ResourceX { 1: Resource, 2: ScopeX { 1: scope, 2: item… } } }
      const out = new ProtoWriter(header.resource.length + header.scope.length + items.length + 32);
      out.begin(1);
      out.raw(header.resource);
      out.begin(2);
      out.raw(header.scope);
      out.raw(items);
      out.end();
      out.end();
      this.queue.push({ body: out.finish(), items: this.count });
      this.queued += this.count;
      this.count = 0;
      this.w.reset();
    }
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < MAX_IN_FLIGHT && this.queue.length > 0) {
      const batch = this.queue.shift() as Sealed;
      this.inFlight++;
      this.o.channel.send(this.o.method, batch.body, Date.now() + this.o.timeoutMs, (r) => {
        this.inFlight--;
        this.queued -= batch.items;
        if (r.code !== ExportResultCode.SUCCESS) this.failed += batch.items;
        this.pump();
        if (this.inFlight === 0 && this.queue.length === 0 && this.count === 0) for (const f of this.idle.splice(0)) f();
      });
    }
  }

  /** Sends everything accepted so far; resolves when all of it was answered. */
  forceFlush(): Promise<void> {
    this.seal();
    if (this.inFlight === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Flushes, then refuses new items. */
  async shutdown(): Promise<void> {
    await this.forceFlush();
    this.stopped = true;
  }
}

/** Encodes every sampled span as it ends into an OtlpBatcher (instead of the SDK's BatchSpanProcessor). */
export class StreamingSpanProcessor implements SpanProcessor {
  readonly batcher: OtlpBatcher;

  constructor(o: Omit<BatcherOptions, 'method'>) {
    this.batcher = new OtlpBatcher({ ...o, method: TRACE_METHOD });
  }

  onStart(_span: Span, _parentContext: Context): void {}

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & 1) === 0) return;
    const b = this.batcher;
    // One provider, one tracer: the resource object and scope identify the group.
    if (!b.room(span.instrumentationScope, () => encodeScopeHeader(span.resource.attributes, span.instrumentationScope.name, span.instrumentationScope.version))) return;
    encodeSpan(b.w, span);
    b.added();
  }

  forceFlush(): Promise<void> {
    return this.batcher.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.batcher.shutdown();
  }
}

/**
 * An OpenTelemetry Logger that encodes each emitted record as an OTLP LogRecord at once, with
 * what the SDK's LogRecordImpl would have recorded: the record's timestamp (default now), the
 * observed time (now), severity, body, attributes, event name, and the span context of
 * `record.context` when it holds a valid one.
 */
export class StreamingLogger implements Logger {
  readonly batcher: OtlpBatcher;
  private readonly header: () => ScopeHeader;

  constructor(o: Omit<BatcherOptions, 'method'>, resource: Attributes, scopeName: string, scopeVersion?: string) {
    this.batcher = new OtlpBatcher({ ...o, method: LOGS_METHOD });
    this.header = () => encodeScopeHeader(resource, scopeName, scopeVersion);
  }

  emit(r: LogRecord): void {
    const b = this.batcher;
    if (!b.room(this, this.header)) return;
    const now = Date.now();
    const time: HrTime | number = r.timestamp === undefined ? now : timeInputToHrTime(r.timestamp);
    const observed: HrTime | number = r.observedTimestamp === undefined ? now : timeInputToHrTime(r.observedTimestamp);
    const sc = r.context === undefined ? undefined : trace.getSpanContext(r.context);
    encodeLogRecordFields(b.w, time, observed, r, sc !== undefined && isSpanContextValid(sc) ? sc : undefined);
    b.added();
  }

  /**
   * The same record written field by field, without a LogRecord object (the access log's hot
   * path): returns the writer to add attributes to (field 6, e.g. with kvString), or undefined
   * when the record is dropped; then `endRecord`. Time and observed time are now.
   */
  beginRecord(severityNumber: number, severityText: string, body: string): ProtoWriter | undefined {
    const b = this.batcher;
    if (!b.room(this, this.header)) return undefined;
    const w = b.w;
    this.recordMs = Date.now();
    w.begin(2); // LogRecord
    w.msTime(1, this.recordMs);
    w.uint(2, severityNumber);
    w.string(3, severityText);
    w.begin(5);
    w.stringAlways(1, body);
    w.end();
    return w;
  }

  endRecord(sc: SpanContext | undefined, eventName: string): void {
    const w = this.batcher.w;
    if (sc !== undefined && isSpanContextValid(sc)) {
      w.fixed32(8, sc.traceFlags & 0xff);
      w.hex(9, sc.traceId);
      w.hex(10, sc.spanId);
    }
    w.msTime(11, this.recordMs);
    w.string(12, eventName);
    w.end();
    this.batcher.added();
  }

  private recordMs = 0;

  enabled(): boolean {
    return true;
  }

  forceFlush(): Promise<void> {
    return this.batcher.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.batcher.shutdown();
  }
}
