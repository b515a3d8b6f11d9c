// What both receivers do with a decoded export request: convert and validate it, offer the
// valid items to the pipeline (all or nothing), let the service graph see accepted spans and
// count everything. Transport-independent; receivers only decode and map errors to statuses.

import type { LogRecord, SpanRecord } from '../../storage/model.ts';
import { queueFull, shuttingDown, type OtlpError } from '../errors.ts';
import type { CollectorMetrics, RejectReason, Transport } from '../metrics.ts';
import { convertLogs, convertTraces, nowUnixNano } from '../otlp/convert.ts';
import type { ExportLogsRequestMsg, ExportTraceRequestMsg, Signal } from '../otlp/model.ts';
import type { OfferResult } from '../pipeline/batch-pipeline.ts';

export interface IngestResult {
  /** Items rejected as invalid, for `partial_success`. */
  readonly rejected: number;
  /** '' when nothing was rejected. */
  readonly errorMessage: string;
}

/** The pipeline as ingest sees it. */
export interface IngestSink<T> {
  offer(items: readonly T[]): OfferResult;
  retryAfterMs(): number;
}

export interface IngestDeps {
  readonly spans: IngestSink<SpanRecord>;
  readonly logs: IngestSink<LogRecord>;
  /** Sees spans once they are accepted. */
  readonly onSpansAccepted: (spans: readonly SpanRecord[]) => void;
  readonly metrics: CollectorMetrics;
  /** Retry hint given to clients while the collector shuts down. */
  readonly shutdownRetryAfterMs: number;
}

export interface Ingest {
  /** Throws OtlpError (`throttled` or `unavailable`) when the request cannot be taken now. */
  traces(req: ExportTraceRequestMsg, transport: Transport): IngestResult;
  logs(req: ExportLogsRequestMsg, transport: Transport): IngestResult;
  /** Counts a request refused as a whole before it reached traces() or logs(). */
  refused(transport: Transport, signal: Signal, reason: RejectReason): void;
}

export function createIngest(deps: IngestDeps): Ingest {
  const { metrics } = deps;

  function admit<T>(sink: IngestSink<T>, items: readonly T[], noun: string): OtlpError | undefined {
    const result = sink.offer(items);
    if (result === 'accepted') return undefined;
    if (result === 'closed') return shuttingDown(deps.shutdownRetryAfterMs);
    const retryAfterMs = sink.retryAfterMs();
    return queueFull(
      `the collector queue is full (storage is slower than the incoming ${noun}); retry after ${Math.ceil(retryAfterMs / 1000)} s`,
      retryAfterMs,
    );
  }

  return {
    traces(req, transport) {
      const { records, rejected, errorMessage } = convertTraces(req);
      metrics.receivedSpans.inc({ transport }, records.length + rejected);
      if (rejected > 0) metrics.rejectedSpans.inc({ reason: 'invalid' }, rejected);
      const refusal = admit(deps.spans, records, 'spans');
      if (refusal !== undefined) {
        const reason = refusal.kind === 'throttled' ? 'queue_full' : 'shutting_down';
        metrics.rejectedSpans.inc({ reason }, records.length);
        metrics.rejectedRequests.inc({ transport, signal: 'traces', reason });
        throw refusal;
      }
      if (records.length > 0) deps.onSpansAccepted(records);
      return { rejected, errorMessage };
    },
    logs(req, transport) {
      const { records, rejected, errorMessage } = convertLogs(req, nowUnixNano());
      metrics.receivedLogRecords.inc({ transport }, records.length + rejected);
      if (rejected > 0) metrics.rejectedLogRecords.inc({ reason: 'invalid' }, rejected);
      const refusal = admit(deps.logs, records, 'log records');
      if (refusal !== undefined) {
        const reason = refusal.kind === 'throttled' ? 'queue_full' : 'shutting_down';
        metrics.rejectedLogRecords.inc({ reason }, records.length);
        metrics.rejectedRequests.inc({ transport, signal: 'logs', reason });
        throw refusal;
      }
      return { rejected, errorMessage };
    },
    refused(transport, signal, reason) {
      metrics.rejectedRequests.inc({ transport, signal, reason });
    },
  };
}
