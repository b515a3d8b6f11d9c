// OpenTelemetry SDK setup for one sidecar: its own tracer and logger providers (never the
// global ones, so several sidecars can share a process), batching, and OTLP/gRPC export.

import { randomUUID } from 'node:crypto';
import type { Tracer } from '@opentelemetry/api';
import type { Logger as OtelLogger } from '@opentelemetry/api-logs';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { BatchLogRecordProcessor, LoggerProvider, type LogRecordExporter, type LogRecordProcessor } from '@opentelemetry/sdk-logs';
import { OtlpGrpcChannel } from './otlp-export.ts';
import { StreamingLogger, StreamingSpanProcessor } from './otlp-stream.ts';
import { ATTR } from '../../common/semconv.ts';

export const SCOPE_NAME = 'tracemesh-sidecar';
/**
 * Batch processors: up to QUEUE finished spans (and as many log records) wait for export, sent
 * BATCH at a time. The SDK's defaults (2048 / 512) drop spans above ~2000 req/s per sidecar.
 */
const QUEUE = 8192;
const BATCH = 2048;

export interface TelemetryOptions {
  readonly service: string;
  readonly pod: string;
  readonly namespace: string;
  /** Omitted from the resource when empty. */
  readonly node: string;
  /** `service.instance.id`; a random UUID when not given. */
  readonly instanceId?: string;
  /** Root sampling probability in [0, 1]; a remote parent's decision is always followed. */
  readonly samplingRatio: number;
  /** OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`. Empty disables export. */
  readonly collectorEndpoint: string;
  /** Overrides the OTLP span exporter (tests pass an InMemorySpanExporter). */
  readonly spanExporter?: SpanExporter | undefined;
  /** Overrides the OTLP log exporter (tests pass an InMemoryLogRecordExporter). */
  readonly logExporter?: LogRecordExporter | undefined;
  /** Batch processors' delay between exports. Default 1000 ms. */
  readonly exportDelayMs?: number | undefined;
  /** Per-export timeout. Default 10 s. */
  readonly exportTimeoutMs?: number | undefined;
}

export interface SidecarTelemetry {
  readonly tracer: Tracer;
  /** Undefined when log export is off; the access log then only writes its local line. */
  readonly logger: OtelLogger | undefined;
  /** Exports everything buffered so far. */
  forceFlush(): Promise<void>;
  /**
   * Items the streaming export did not deliver, by signal: `dropped` found the queue full (or
   * the exporter shut down), `failed` were refused or unanswered after the channel's retries.
   * Zero when an exporter was passed in.
   */
  lost(): { spans: { dropped: number; failed: number }; logs: { dropped: number; failed: number } };
  /** Flushes and shuts down providers and exporters. Safe to call twice. */
  shutdown(): Promise<void>;
}

export function createTelemetry(o: TelemetryOptions): SidecarTelemetry {
  const resource = resourceFromAttributes({
    [ATTR.serviceName]: o.service,
    [ATTR.serviceInstanceId]: o.instanceId ?? randomUUID(),
    [ATTR.k8sPodName]: o.pod,
    [ATTR.k8sNamespaceName]: o.namespace,
    ...(o.node === '' ? {} : { [ATTR.k8sNodeName]: o.node }),
  });
  const exporting = o.collectorEndpoint !== '';
  const delay = o.exportDelayMs ?? 1000;
  const timeout = o.exportTimeoutMs ?? 10_000;

  // One channel for both signals; each span and access-log record is encoded where it ends
  // (otlp-stream.ts; see there and otlp-encode.ts why not the SDK's processors and serializer).
  // An exporter passed in (tests: in-memory) gets the SDK's batch processors instead.
  const channel = exporting && (o.spanExporter === undefined || o.logExporter === undefined) ? new OtlpGrpcChannel({ url: o.collectorEndpoint, timeoutMillis: timeout }) : undefined;
  const batching = { maxBatch: BATCH, maxQueue: QUEUE, delayMs: delay, timeoutMs: timeout };
  let spanProcessor: SpanProcessor | undefined;
  let streamingSpans: StreamingSpanProcessor | undefined;
  if (o.spanExporter !== undefined) spanProcessor = new BatchSpanProcessor(o.spanExporter, { scheduledDelayMillis: delay, exportTimeoutMillis: timeout, maxQueueSize: QUEUE, maxExportBatchSize: BATCH });
  else if (channel !== undefined) spanProcessor = streamingSpans = new StreamingSpanProcessor({ channel, ...batching });
  const tracerProvider = new BasicTracerProvider({
    resource,
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(o.samplingRatio) }),
    spanProcessors: spanProcessor === undefined ? [] : [spanProcessor],
  });

  let logger: OtelLogger | undefined;
  let loggerProvider: LoggerProvider | undefined;
  let streamingLogger: StreamingLogger | undefined;
  if (o.logExporter !== undefined) {
    const processors: LogRecordProcessor[] = [new BatchLogRecordProcessor({ exporter: o.logExporter, scheduledDelayMillis: delay, exportTimeoutMillis: timeout, maxQueueSize: QUEUE, maxExportBatchSize: BATCH })];
    loggerProvider = new LoggerProvider({ resource, processors });
    logger = loggerProvider.getLogger(SCOPE_NAME);
  } else if (channel !== undefined) {
    streamingLogger = new StreamingLogger({ channel, ...batching }, resource.attributes, SCOPE_NAME);
    logger = streamingLogger;
  }

  let shutdown: Promise<void> | undefined;
  return {
    tracer: tracerProvider.getTracer(SCOPE_NAME),
    logger,
    lost() {
      const s = streamingSpans?.batcher;
      const l = streamingLogger?.batcher;
      return { spans: { dropped: s?.dropped ?? 0, failed: s?.failed ?? 0 }, logs: { dropped: l?.dropped ?? 0, failed: l?.failed ?? 0 } };
    },
    async forceFlush() {
      await Promise.all([tracerProvider.forceFlush(), loggerProvider?.forceFlush(), streamingLogger?.forceFlush()]);
    },
    shutdown() {
      shutdown ??= Promise.all([tracerProvider.shutdown(), loggerProvider?.shutdown(), streamingLogger?.shutdown()]).then(() => channel?.close());
      return shutdown;
    },
  };
}
