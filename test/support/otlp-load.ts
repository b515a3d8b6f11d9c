// Steady span load through a real OpenTelemetry SDK exporter, keeping the ids of every span
// whose export the collector acknowledged (SUCCESS): the fault tests check that exactly those
// (and nothing twice) come back from storage.

import { context, trace } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { StorageClient } from '../../storage/clickhouse.ts';
import type { TraceReader } from '../../storage/model.ts';
import { ident, sql } from '../../storage/sql.ts';

export interface SpanLoadOptions {
  readonly service: string;
  /** Spans per export (traces of `spansPerTrace`). */
  readonly batchSpans: number;
  readonly spansPerTrace: number;
  /** Pause between exports of one loop. */
  readonly intervalMs: number;
  /** Exports in flight at once. */
  readonly concurrency: number;
  /** Span name for the n-th span of a batch (poison tests); default 'op'. */
  readonly name?: (n: number) => string;
}

export class SpanLoad {
  /** trace id → span ids acknowledged. */
  readonly acked = new Map<string, Set<string>>();
  ackedSpans = 0;
  /**
   * trace id → span ids of exports that were not acknowledged (an error or a timeout). The
   * collector may still have taken them (the kill came after the WAL append but before the
   * answer), so they may be stored: OTLP clients retry such exports, at least once.
   */
  readonly unacked = new Map<string, Set<string>>();
  unackedSpans = 0;
  readonly service: string;
  failedExports = 0;
  okExports = 0;
  readonly #makeExporter: () => SpanExporter;
  #exporter: SpanExporter;
  readonly #options: SpanLoadOptions;
  readonly #memory = new InMemorySpanExporter();
  readonly #provider: BasicTracerProvider;
  #running = false;
  #loops: Promise<void>[] = [];

  constructor(makeExporter: () => SpanExporter, options: SpanLoadOptions) {
    this.#makeExporter = makeExporter;
    this.#exporter = makeExporter();
    this.#options = options;
    this.service = options.service;
    this.#provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': options.service }),
      spanProcessors: [new SimpleSpanProcessor(this.#memory)],
    });
  }

  /** Points the load at a new exporter (a restarted collector on other ports). */
  retarget(makeExporter: () => SpanExporter = this.#makeExporter): void {
    const old = this.#exporter;
    this.#exporter = makeExporter();
    void old.shutdown().catch(() => {});
  }

  /** Makes one batch of finished spans. */
  #batch(): ReadableSpan[] {
    const tracer = this.#provider.getTracer('fault-test');
    const { batchSpans, spansPerTrace } = this.#options;
    let n = 0;
    while (n < batchSpans) {
      const root = tracer.startSpan(this.#options.name?.(n) ?? 'op');
      n++;
      const ctx = trace.setSpan(context.active(), root);
      for (let i = 1; i < spansPerTrace && n < batchSpans; i++, n++) tracer.startSpan(this.#options.name?.(n) ?? 'child', {}, ctx).end();
      root.end();
    }
    const spans = this.#memory.getFinishedSpans().slice();
    this.#memory.reset();
    return spans;
  }

  /** One export; resolves with whether it was acknowledged. */
  exportOnce(spans: readonly ReadableSpan[] = this.#batch()): Promise<boolean> {
    return new Promise((resolve) => {
      this.#exporter.export(spans as ReadableSpan[], (result) => {
        const ok = result.code === ExportResultCode.SUCCESS;
        const into = ok ? this.acked : this.unacked;
        for (const s of spans) {
          const { traceId, spanId } = s.spanContext();
          let set = into.get(traceId);
          if (set === undefined) into.set(traceId, (set = new Set()));
          set.add(spanId);
        }
        if (ok) {
          this.okExports++;
          this.ackedSpans += spans.length;
        } else {
          this.failedExports++;
          this.unackedSpans += spans.length;
        }
        resolve(ok);
      });
    });
  }

  start(): void {
    this.#running = true;
    for (let i = 0; i < this.#options.concurrency; i++) {
      this.#loops.push(
        (async () => {
          while (this.#running) {
            await this.exportOnce();
            await new Promise((r) => setTimeout(r, this.#options.intervalMs));
          }
        })(),
      );
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
    this.#loops = [];
  }

  async shutdown(): Promise<void> {
    await this.stop();
    await this.#exporter.shutdown().catch(() => {});
    await this.#provider.shutdown();
  }
}

export interface StoredCounts {
  /** Acknowledged spans that reads do not return. */
  readonly lost: number;
  /** Spans that reads return more than once. */
  readonly duplicatesVisible: number;
  /** Rows in the spans table beyond one per span (deduplicated on read). */
  readonly duplicateRows: number;
  /** Spans read back in total (acknowledged or not). */
  readonly read: number;
  /** Distinct spans in the table for the load's service. */
  readonly stored: number;
  /** Spans of unacknowledged exports that were stored anyway (taken, but the answer was lost). */
  readonly storedUnacked: number;
  /** Spans read back that the load never sent (must be 0). */
  readonly unknown: number;
}

/**
 * Reads every trace the load sent back through the reader and counts what is missing,
 * doubled, or stored without an acknowledgement. Exports hold whole traces, so a trace's
 * spans are all acknowledged or all not.
 */
export async function storedCounts(load: SpanLoad, reader: TraceReader, client: StorageClient, database: string, spansTable = 'tracemesh_spans'): Promise<StoredCounts> {
  const ids = [...load.acked.keys(), ...load.unacked.keys()];
  let lost = 0;
  let duplicatesVisible = 0;
  let read = 0;
  let storedUnacked = 0;
  let unknown = 0;
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    const traces = await reader.getTraces(chunk);
    for (const id of chunk) {
      const spans = traces.get(id) ?? [];
      read += spans.length;
      const seen = new Set<string>();
      for (const s of spans) {
        if (seen.has(s.spanId)) duplicatesVisible++;
        seen.add(s.spanId);
      }
      const acked = load.acked.get(id);
      const unacked = load.unacked.get(id);
      for (const spanId of seen) {
        if (acked?.has(spanId) === true) continue;
        if (unacked?.has(spanId) === true) storedUnacked++;
        else unknown++;
      }
      for (const spanId of acked ?? []) if (!seen.has(spanId)) lost++;
    }
  }
  const [row] = await client.query<{ rows: string; spans: string }>(
    sql`SELECT count() AS rows, uniqExact(trace_id, span_id) AS spans FROM ${ident(database, spansTable)} WHERE service_name = ${load.service}`,
  );
  return { lost, duplicatesVisible, duplicateRows: Number(row!.rows) - Number(row!.spans), read, stored: Number(row!.spans), storedUnacked, unknown };
}
