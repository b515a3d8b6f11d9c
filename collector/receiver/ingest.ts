// What both receivers do with an export request: decode (protobuf, with the hand-written
// decoders) or convert (OTLP/JSON, already parsed), validate, offer the valid items to the
// pipeline (all or nothing), let the service graph see accepted spans and count everything.
// Transport-independent; receivers only read bodies and map errors to statuses.

import type { LogRecord } from '../../storage/model.ts';
import { encodeLogs, encodeSpans, type EncodedLogs, type EncodedSpans } from '../../storage/rows.ts';
import { malformed, queueFull, shuttingDown, walFailed, type OtlpError } from '../errors.ts';
import type { CollectorMetrics, RejectReason, Transport } from '../metrics.ts';
import { convertLogs, convertTraces, nowUnixNano } from '../otlp/convert.ts';
import { decodeLogsRequestRecords } from '../otlp/decode-logs.ts';
import { TraceDecoder, type DecodedTraces } from '../otlp/decode-traces.ts';
import { DEFAULT_ATTRIBUTE_LIMITS, LIMIT_REASONS, type AttributeLimits, type LimitCounts } from '../otlp/limits.ts';
import type { ExportLogsRequestMsg, ExportTraceRequestMsg, Signal } from '../otlp/model.ts';
import type { OfferResult } from '../pipeline/batch-pipeline.ts';
import type { RoutedRequest, TraceRouter } from '../routing/router.ts';
import { DEFAULT_VIRTUAL_NODE_ATTRIBUTES, halvesOf, type SpanHalf } from '../servicegraph/processor.ts';

export interface IngestResult {
  /** Items rejected as invalid, for `partial_success`. */
  readonly rejected: number;
  /** '' when nothing was rejected. */
  readonly errorMessage: string;
}

/** The pipeline as ingest sees it. */
export interface IngestSink<T> {
  /** Resolves once the items are accepted (durable, with a write-ahead log) or refused. */
  offer(items: readonly T[]): Promise<OfferResult>;
  retryAfterMs(): number;
}

export interface IngestDeps {
  /** Encoded spans: one item per request, weighing its span count. */
  readonly spans: IngestSink<EncodedSpans>;
  /** Encoded log records: one item per request, weighing its record count. */
  readonly logs: IngestSink<EncodedLogs>;
  /** Sees the service-graph halves of spans once they are accepted. */
  readonly onSpansAccepted: (halves: readonly SpanHalf[]) => void;
  /** Attributes that name a CLIENT span's virtual server node (the service graph's option). */
  readonly virtualNodeAttributes?: readonly string[];
  /** Default DEFAULT_ATTRIBUTE_LIMITS. */
  readonly attributeLimits?: AttributeLimits;
  readonly metrics: CollectorMetrics;
  /** Retry hint given to clients while the collector shuts down. */
  readonly shutdownRetryAfterMs: number;
  /** Trace-id routing between replicas (routing/router.ts); read per request, so it may be set later. */
  readonly router?: () => TraceRouter | undefined;
}

export interface Ingest {
  /**
   * An ExportTraceServiceRequest in protobuf. The body is decoded synchronously (the caller
   * may reuse it once this returns); the promise settles once the spans are accepted (on
   * disk, with a write-ahead log). Rejects with OtlpError `invalid` when the body is not one
   * (or throws it synchronously), `throttled` or `unavailable` when it cannot be taken now.
   * With a router, spans of traces another replica owns are forwarded to it, unless `routed`
   * (the request was forwarded here by a replica).
   */
  tracesProtobuf(body: Uint8Array, transport: Transport, routed?: boolean): Promise<IngestResult>;
  /** A decoded request (OTLP/JSON). Rejects with OtlpError (`throttled` or `unavailable`). */
  traces(req: ExportTraceRequestMsg, transport: Transport): Promise<IngestResult>;
  /** An ExportLogsServiceRequest in protobuf; like tracesProtobuf. */
  logsProtobuf(body: Uint8Array, transport: Transport): Promise<IngestResult>;
  logs(req: ExportLogsRequestMsg, transport: Transport): Promise<IngestResult>;
  /** Counts a request refused as a whole before it reached the methods above. */
  refused(transport: Transport, signal: Signal, reason: RejectReason): void;
}

function refusalReason(refusal: OtlpError): RejectReason {
  if (refusal.kind === 'throttled') return 'queue_full';
  return refusal.code === 'COLLECTOR_WAL_FAILED' ? 'wal_failed' : 'shutting_down';
}

export function createIngest(deps: IngestDeps): Ingest {
  const { metrics } = deps;
  const virtualNodeAttributes = deps.virtualNodeAttributes ?? DEFAULT_VIRTUAL_NODE_ATTRIBUTES;
  const limits = deps.attributeLimits ?? DEFAULT_ATTRIBUTE_LIMITS;
  const decoder = new TraceDecoder({ virtualNodeAttributes, limits });

  function countLimited(signal: Signal, limited: LimitCounts): void {
    if (limited.total === 0) return;
    const by = limited.byReason;
    for (let i = 0; i < by.length; i++) if (by[i]! > 0) metrics.limited.inc({ signal, reason: LIMIT_REASONS[i]! }, by[i]!);
    if (limited.items > 0) metrics.limitedItems.inc({ signal }, limited.items);
  }

  async function admit<T>(sink: IngestSink<T>, items: readonly T[], noun: string): Promise<OtlpError | undefined> {
    let result: OfferResult;
    try {
      result = await sink.offer(items);
    } catch (err) {
      return walFailed(err, deps.shutdownRetryAfterMs);
    }
    if (result === 'accepted') return undefined;
    if (result === 'closed') return shuttingDown(deps.shutdownRetryAfterMs);
    const retryAfterMs = sink.retryAfterMs();
    return queueFull(
      `the collector queue is full (storage is slower than the incoming ${noun}); retry after ${Math.ceil(retryAfterMs / 1000)} s`,
      retryAfterMs,
    );
  }

  async function acceptSpans(d: DecodedTraces, transport: Transport): Promise<IngestResult> {
    const { rows, rejected, errorMessage } = d;
    metrics.receivedSpans.inc({ transport }, rows.count + rejected);
    countLimited('traces', d.limited);
    if (rejected > 0) metrics.rejectedSpans.inc({ reason: 'invalid' }, rejected);
    const refusal = await admit(deps.spans, rows.count > 0 ? [rows] : [], 'spans');
    if (refusal !== undefined) {
      const reason = refusalReason(refusal);
      metrics.rejectedSpans.inc({ reason }, rows.count);
      metrics.rejectedRequests.inc({ transport, signal: 'traces', reason });
      throw refusal;
    }
    if (d.halves.length > 0) deps.onSpansAccepted(d.halves);
    return { rejected, errorMessage };
  }

  async function acceptLogs(converted: { records: LogRecord[]; rejected: number; errorMessage: string; limited: LimitCounts }, transport: Transport): Promise<IngestResult> {
    const { records, rejected, errorMessage } = converted;
    metrics.receivedLogRecords.inc({ transport }, records.length + rejected);
    countLimited('logs', converted.limited);
    if (rejected > 0) metrics.rejectedLogRecords.inc({ reason: 'invalid' }, rejected);
    const refusal = await admit(deps.logs, records.length > 0 ? [encodeLogs(records)] : [], 'log records');
    if (refusal !== undefined) {
      const reason = refusalReason(refusal);
      metrics.rejectedLogRecords.inc({ reason }, records.length);
      metrics.rejectedRequests.inc({ transport, signal: 'logs', reason });
      throw refusal;
    }
    return { rejected, errorMessage };
  }

  /** The local part decoded here; each remote part forwarded, or taken here if that fails. */
  async function routeSpans(router: TraceRouter, body: Uint8Array, transport: Transport): Promise<IngestResult> {
    let parts: RoutedRequest;
    try {
      parts = router.split(body);
    } catch (err) {
      throw malformed(`the body is not a valid ExportTraceServiceRequest protobuf message: ${(err as Error).message}`, err);
    }
    const { local, remote } = parts;
    // Decoded now: `body` (and so `local`, which may be it) may be reused once this returns.
    const here = local !== undefined ? acceptSpans(decoder.decode(local), transport) : undefined;
    const there = remote.map(async (part): Promise<IngestResult> => {
      try {
        return await router.forward(part.peer, part.body, part.spans);
      } catch (err) {
        router.fallback(part.spans, err);
        return acceptSpans(decoder.decode(part.body), transport);
      }
    });
    const results = await Promise.all(here !== undefined ? [here, ...there] : there);
    let rejected = 0;
    const messages: string[] = [];
    for (const r of results) {
      rejected += r.rejected;
      if (r.errorMessage !== '') messages.push(r.errorMessage);
    }
    return { rejected, errorMessage: messages.join('; ') };
  }

  return {
    tracesProtobuf(body, transport, routed = false) {
      const router = routed ? undefined : deps.router?.();
      if (router === undefined || router.peers.length <= 1) return acceptSpans(decoder.decode(body), transport);
      return routeSpans(router, body, transport);
    },
    traces(req, transport) {
      const { records, rejected, errorMessage, limited } = convertTraces(req, limits);
      const rows = encodeSpans(records);
      return acceptSpans({ rows, halves: halvesOf(records, virtualNodeAttributes), rejected, errorMessage, limited }, transport);
    },
    logsProtobuf(body, transport) {
      return acceptLogs(decodeLogsRequestRecords(body, nowUnixNano(), limits), transport);
    },
    logs(req, transport) {
      return acceptLogs(convertLogs(req, nowUnixNano(), limits), transport);
    },
    refused(transport, signal, reason) {
      metrics.rejectedRequests.inc({ transport, signal, reason });
    },
  };
}
