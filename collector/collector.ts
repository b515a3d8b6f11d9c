// Assembles the collector: OTLP receivers (gRPC, HTTP) → ingest (convert, validate) → one
// batching pipeline per signal → TraceWriter, plus the service-graph processor and the admin
// endpoints. A new stage is one module plus a line here.

import type { Logger } from '../common/logger.ts';
import { silentLogger } from '../common/logger.ts';
import type { EdgeRecord, EncodedRowWriter, TraceWriter } from '../storage/model.ts';
import { isPermanentWriteFailure } from '../storage/errors.ts';
import { decodeLogs, decodeSpans, splitLogRows, splitSpanRows, type EncodedLogs, type EncodedSpans } from '../storage/rows.ts';
import { Admission, DEFAULT_ADMISSION_LIMITS, type AdmissionLimits } from './admission/admission.ts';
import { createAdminApp } from './admin.ts';

/** Open connections of the admin port (probes and scrapers) at most; more are closed at accept. */
export const ADMIN_MAX_CONNECTIONS = 64;
import { createCollectorMetrics, type CollectorMetrics } from './metrics.ts';
import { BatchPipeline, type PipelineObserver } from './pipeline/batch-pipeline.ts';
import type { Journal } from './pipeline/journal.ts';
import { rowsEntry, type DeadLetterFile } from './wal/dead-letter.ts';
import { ROWS_SCHEMA_VERSION } from './wal/index.ts';
import type { ReplayStats } from './wal/wal.ts';
import { startGrpcReceiver, type GrpcReceiver } from './receiver/grpc.ts';
import { createOtlpHttpApp } from './receiver/http.ts';
import { DEFAULT_ATTRIBUTE_LIMITS, type AttributeLimits } from './otlp/limits.ts';
import { createIngest } from './receiver/ingest.ts';
import { listen, type HttpListener } from './receiver/serve.ts';
import { ServiceGraphProcessor } from './servicegraph/processor.ts';
import { TraceRouter, type RoutingConfig } from './routing/router.ts';
import { DEFAULT_TAIL_SAMPLING, TailSampler, type TailSamplingConfig } from './sampling/tail.ts';
import type { Registry } from 'prom-client';

export interface ServiceGraphConfig {
  readonly enabled: boolean;
  /** How long a CLIENT or SERVER half waits for its partner. */
  readonly waitMs: number;
  readonly maxPending: number;
  /** How often aggregated edges go to the edge pipeline. */
  readonly flushIntervalMs: number;
}

export interface CollectorConfig {
  /** Listen address of all three ports. */
  readonly host: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly adminPort: number;
  /** Largest export request, on the wire and decompressed (HTTP) / largest message (gRPC). */
  readonly maxBodyBytes: number;
  /** Items per storage write. */
  readonly batchSize: number;
  /** Longest wait for a batch to fill. */
  readonly batchTimeoutMs: number;
  /** Items per signal queued or in flight before exports are refused with a retry hint. */
  readonly queueSize: number;
  readonly writeConcurrency: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  /** close(): how long to keep writing queued data. */
  readonly shutdownTimeoutMs: number;
  readonly servicegraph: ServiceGraphConfig;
  /** The admission limits of both receivers (collector/admission/). */
  readonly admission: AdmissionLimits;
  /** Attribute, event and link limits of the OTLP decoders (otlp/limits.ts). */
  readonly attributeLimits: AttributeLimits;
  /** Also export the process's own metrics (CPU, memory, event-loop lag) as tracemesh_collector_process_*. */
  readonly processMetrics: boolean;
  /** Tail sampling of traces (sampling/tail.ts); ratio 1 (the default) keeps everything. */
  readonly tailSampling: TailSamplingConfig;
}

/**
 * The defaults are the flag defaults (collector/flags.ts), except that ports are 0 (any free
 * port) and process metrics are off (tests run many collectors in one process).
 */
export const DEFAULT_COLLECTOR_CONFIG: CollectorConfig = {
  host: '127.0.0.1',
  grpcPort: 0,
  httpPort: 0,
  adminPort: 0,
  maxBodyBytes: 16 * 1024 * 1024,
  batchSize: 50_000,
  batchTimeoutMs: 1_000,
  queueSize: 200_000,
  writeConcurrency: 2,
  retryInitialMs: 100,
  retryMaxMs: 5_000,
  shutdownTimeoutMs: 30_000,
  servicegraph: { enabled: true, waitMs: 10_000, maxPending: 100_000, flushIntervalMs: 5_000 },
  admission: DEFAULT_ADMISSION_LIMITS,
  attributeLimits: DEFAULT_ATTRIBUTE_LIMITS,
  processMetrics: false,
  tailSampling: DEFAULT_TAIL_SAMPLING,
};

export type CollectorOptions = Partial<Omit<CollectorConfig, 'servicegraph' | 'admission' | 'attributeLimits' | 'tailSampling'>> & {
  readonly tailSampling?: Partial<TailSamplingConfig>;
  /** Trace-id routing between replicas (collector/routing/); none: this collector takes every trace itself. */
  readonly routing?: RoutingConfig;
  readonly servicegraph?: Partial<ServiceGraphConfig>;
  readonly admission?: Partial<AdmissionLimits>;
  readonly attributeLimits?: Partial<AttributeLimits>;
};

export interface CollectorDeps {
  /** Where batches go. The collector does not close it; its owner does, after close(). */
  readonly writer: TraceWriter;
  readonly logger?: Logger;
  /**
   * Durable queues for spans and logs (the write-ahead log of collector/wal/, opened by
   * main.ts). Without them the queues are memory only and a crash loses what is queued.
   * The collector does not close them; their owner does, after close().
   */
  readonly journals?: { readonly spans: Journal<EncodedSpans>; readonly logs: Journal<EncodedLogs> };
  /** Where rows that storage refuses permanently go; without one they are only counted. */
  readonly deadLetter?: DeadLetterFile;
  /** What opening the journals found, for the metrics. */
  readonly walStats?: { readonly spans: ReplayStats; readonly logs: ReplayStats };
  /** Journal records that could not be decoded (dead-lettered by the opener). */
  readonly walUnreadable?: readonly { readonly signal: 'spans' | 'logs'; readonly count: number }[];
}

export interface Collector {
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly adminPort: number;
  /** The collector's own Prometheus registry (also served on the admin port). */
  readonly registry: Registry;
  /**
   * Sets (or, with undefined, ends) trace-id routing between replicas, for replica lists that
   * are known only once the replicas listen (tests; discovery). Requests already running keep
   * the routing they started with.
   */
  setRouting(routing: RoutingConfig | undefined): void;
  /**
   * Resolves when everything accepted before the call (and the service-graph edges counted so
   * far) is written. Waits through write retries; race it with a timeout if needed.
   */
  forceFlush(): Promise<void>;
  /**
   * Stops the receivers, turns waiting service-graph halves into edges, writes everything
   * queued (up to `shutdownTimeoutMs`) and stops the admin port. Safe to call twice.
   */
  close(): Promise<void>;
}

function observer(signal: 'spans' | 'logs' | 'edges', metrics: CollectorMetrics, logger: Logger): PipelineObserver {
  const written = signal === 'spans' ? metrics.writtenSpans : signal === 'logs' ? metrics.writtenLogRecords : metrics.writtenEdges;
  return {
    written(count, seconds) {
      written.inc(count);
      metrics.writeDuration.observe({ signal, outcome: 'ok' }, seconds);
    },
    writeFailed(error, info) {
      metrics.writeDuration.observe({ signal, outcome: 'error' }, info.seconds);
      metrics.writeRetries.inc({ signal });
      // The first failure and then every tenth, so a long outage does not flood the log.
      if (info.attempt === 1 || info.attempt % 10 === 0) {
        logger.warn('storage write failed; keeping the batch and retrying', { signal, items: info.count, attempt: info.attempt, retryInMs: info.retryInMs, error });
      }
    },
    dropped(count, reason) {
      metrics.droppedItems.inc({ signal, reason }, count);
      logger.error('gave up unwritten items at shutdown', { signal, items: count, reason });
    },
    replayed(count) {
      metrics.walReplayedItems.inc({ signal }, count);
      logger.info('replaying items from the write-ahead log', { signal, items: count });
    },
    deadLettered(count, error) {
      metrics.deadLetteredItems.inc({ signal }, count);
      logger.error('storage refused items permanently; they were moved to the dead-letter file', { signal, items: count, error });
    },
  };
}

export async function startCollector(options: CollectorOptions, deps: CollectorDeps): Promise<Collector> {
  const config: CollectorConfig = {
    ...DEFAULT_COLLECTOR_CONFIG,
    ...options,
    servicegraph: { ...DEFAULT_COLLECTOR_CONFIG.servicegraph, ...options.servicegraph },
    admission: { ...DEFAULT_COLLECTOR_CONFIG.admission, ...options.admission },
    attributeLimits: { ...DEFAULT_COLLECTOR_CONFIG.attributeLimits, ...options.attributeLimits },
    tailSampling: { ...DEFAULT_COLLECTOR_CONFIG.tailSampling, ...options.tailSampling },
  };
  const logger = (deps.logger ?? silentLogger).child({ component: 'collector' });
  const { writer } = deps;
  let ready = false;

  // The gauges read the pipelines lazily, at scrape time, after they exist.
  const { journals, deadLetter } = deps;
  const metrics = createCollectorMetrics({
    pending: () => ({ spans: spans.pending, logs: logs.pending, edges: edges.pending }),
    capacity: () => ({ spans: spans.capacity, logs: logs.capacity, edges: edges.capacity }),
    servicegraphPending: () => graph?.pendingCount ?? 0,
    inflightBytes: () => ({ inUse: admission.budget.inUse, limit: admission.budget.limit }),
    inflightRequests: () => admission.activeRequests,
    walBytes: () => (journals ? { spans: journals.spans.bytes, logs: journals.logs.bytes } : undefined),
    walMaxBytes: () => (journals ? { spans: journals.spans.maxBytes, logs: journals.logs.maxBytes } : undefined),
  }, { defaultMetrics: config.processMetrics });
  const admission = new Admission(config.admission, { refused: (transport, reason) => metrics.admissionRefusals.inc({ transport, reason }) }, logger);
  if (deps.walStats) {
    for (const signal of ['spans', 'logs'] as const) {
      const st = deps.walStats[signal];
      if (st.corrupt + st.tornTails > 0) metrics.walCorruptRecords.inc({ signal }, st.corrupt + st.tornTails);
    }
  }
  for (const u of deps.walUnreadable ?? []) metrics.walCorruptRecords.inc({ signal: u.signal });
  const deadLetterRows = (signal: 'spans' | 'logs') => async (items: readonly EncodedSpans[], error: unknown): Promise<void> => {
    if (deadLetter === undefined) return;
    let count = 0;
    for (const i of items) count += i.count;
    if (!deadLetter.write(rowsEntry(signal, items, error, ROWS_SCHEMA_VERSION))) {
      metrics.droppedItems.inc({ signal, reason: 'dead_letter_full' }, count);
      logger.error('the dead-letter file is full or cannot be written; refused items are only counted', { signal, items: count, path: deadLetter.path });
    }
  };
  const common = {
    capacity: config.queueSize,
    batchSize: config.batchSize,
    batchTimeoutMs: config.batchTimeoutMs,
    concurrency: config.writeConcurrency,
    backoff: { initialMs: config.retryInitialMs, maxMs: config.retryMaxMs },
  };
  // Spans and logs travel as encoded rows, one item per request (spans straight from the
  // protobuf decoder): a few bytes per item in the queue instead of object graphs. A writer
  // that cannot take rows (the in-memory one of the tests) gets the records back.
  const rowWriter =
    typeof (writer as Partial<EncodedRowWriter>).writeEncodedSpans === 'function' && typeof (writer as Partial<EncodedRowWriter>).writeEncodedLogs === 'function'
      ? (writer as TraceWriter & EncodedRowWriter)
      : undefined;
  const writeSpanRows = rowWriter ? (b: readonly EncodedSpans[]) => rowWriter.writeEncodedSpans(b) : (b: readonly EncodedSpans[]) => writer.writeSpans(b.flatMap(decodeSpans));
  // Tail sampling holds a batch until its traces are decided (sampling/tail.ts), so more
  // batches are taken at once (enough to cover the wait); the writes of kept rows keep to
  // writeConcurrency.
  const sampler = config.tailSampling.ratio < 1 ? new TailSampler(config.tailSampling, {
    decided: (keep, reason, n) => {
      metrics.sampledTraces.inc({ decision: keep ? 'keep' : 'drop', reason });
      metrics.sampledSpans.inc({ decision: keep ? 'keep' : 'drop' }, n);
    },
    late: (keep, n) => metrics.sampledSpans.inc({ decision: keep ? 'keep' : 'drop' }, n),
  }) : undefined;
  const sampledWrites = new Semaphore(config.writeConcurrency);
  const spans = new BatchPipeline<EncodedSpans>({
    ...common,
    ...(sampler ? { concurrency: config.writeConcurrency + Math.ceil(config.tailSampling.waitMs / config.batchTimeoutMs) + 2 } : {}),
    weight: (chunk) => chunk.count,
    export: sampler
      ? async (b) => {
          const kept = await sampler.filter(b);
          if (kept.length > 0) await sampledWrites.run(() => writeSpanRows(kept));
        }
      : writeSpanRows,
    observer: observer('spans', metrics, logger),
    isPermanent: isPermanentWriteFailure,
    split: splitSpanRows,
    deadLetter: deadLetterRows('spans'),
    ...(journals ? { journal: journals.spans } : {}),
  });
  const logs = new BatchPipeline<EncodedLogs>({
    ...common,
    weight: (chunk) => chunk.count,
    export: rowWriter ? (b) => rowWriter.writeEncodedLogs(b) : (b) => writer.writeLogs(b.flatMap(decodeLogs)),
    observer: observer('logs', metrics, logger),
    isPermanent: isPermanentWriteFailure,
    split: splitLogRows,
    deadLetter: deadLetterRows('logs'),
    ...(journals ? { journal: journals.logs } : {}),
  });
  const edges = new BatchPipeline<EdgeRecord>({
    ...common,
    // Edges are few (per minute and service pair), so a small queue is plenty.
    capacity: Math.max(10_000, config.batchSize),
    // The batch id makes a retried edge write idempotent (storage keeps one copy per id).
    export: (b, info) => writer.writeEdges(b, { batchId: info.batchId }),
    observer: observer('edges', metrics, logger),
    isPermanent: isPermanentWriteFailure,
    deadLetter: async (items, error) => {
      if (deadLetter === undefined) return;
      const entry = { time: new Date().toISOString(), signal: 'edges' as const, count: items.length, error: (error as Error).message, clickhouseCode: (error as { clickhouseCode?: number }).clickhouseCode, schemaVersion: undefined, records: items };
      if (!deadLetter.write(entry)) metrics.droppedItems.inc({ signal: 'edges', reason: 'dead_letter_full' }, items.length);
    },
  });
  const graph = config.servicegraph.enabled
    ? new ServiceGraphProcessor(
        (records) => edges.offerNow(records) !== 'full',
        { waitMs: config.servicegraph.waitMs, maxPending: config.servicegraph.maxPending, flushIntervalMs: config.servicegraph.flushIntervalMs },
        {
          paired: () => metrics.servicegraphPairs.inc(),
          unpaired: (side, reason, virtualEdge) => {
            metrics.servicegraphEvictions.inc({ side, reason });
            if (virtualEdge) metrics.servicegraphVirtualEdges.inc();
          },
        },
      )
    : undefined;

  let router: TraceRouter | undefined;
  const makeRouter = (routing: RoutingConfig | undefined): TraceRouter | undefined =>
    routing === undefined || routing.peers.length === 0
      ? undefined
      : new TraceRouter(routing, logger, {
          forwarded: (n) => metrics.routedSpans.inc({ outcome: 'forwarded' }, n),
          fallback: (n) => metrics.routedSpans.inc({ outcome: 'fallback' }, n),
        });
  router = makeRouter(options.routing);

  const ingest = createIngest({
    router: () => router,
    spans,
    logs,
    onSpansAccepted: graph ? (halves) => graph.observeHalves(halves) : () => {},
    ...(graph ? { virtualNodeAttributes: graph.virtualNodeAttributes } : {}),
    attributeLimits: config.attributeLimits,
    metrics,
    shutdownRetryAfterMs: 5_000,
  });

  const started: { grpc?: GrpcReceiver; http?: HttpListener; admin?: HttpListener } = {};
  const stopPipelines = async (): Promise<void> => {
    graph?.shutdown();
    // Edges come from the service graph, which has just flushed, so all three can drain together.
    await Promise.all([spans.shutdown(config.shutdownTimeoutMs), logs.shutdown(config.shutdownTimeoutMs), edges.shutdown(config.shutdownTimeoutMs)]);
  };
  try {
    // The admin port serves probes and scrapers: a few connections, headers within 10 s.
    started.admin = await listen(createAdminApp({ registry: metrics.registry, isReady: () => ready }), config.host, config.adminPort, {
      maxConnections: ADMIN_MAX_CONNECTIONS,
      headersTimeoutMs: 10_000,
      onDrop: () => metrics.admissionRefusals.inc({ transport: 'admin', reason: 'concurrency' }),
    });
    started.grpc = await startGrpcReceiver({ host: config.host, port: config.grpcPort, maxMessageBytes: config.maxBodyBytes, ingest, admission, logger });
    started.http = await listen(createOtlpHttpApp({ ingest, maxBodyBytes: config.maxBodyBytes, admission, logger }), config.host, config.httpPort, {
      maxConnections: config.admission.maxConnections,
      headersTimeoutMs: Math.min(10_000, config.admission.requestTimeoutMs),
      onDrop: () => admission.connectionRefused('http'),
    });
  } catch (err) {
    await Promise.all([started.grpc?.shutdown(0), started.http?.close(0), started.admin?.close(0)]);
    await stopPipelines();
    sampler?.close();
    throw err;
  }
  const { grpc, http, admin } = started as Required<typeof started>;
  ready = true;
  logger.info('collector listening', { host: config.host, grpcPort: grpc.port, httpPort: http.port, adminPort: admin.port });

  let closing: Promise<void> | undefined;
  return {
    grpcPort: grpc.port,
    httpPort: http.port,
    adminPort: admin.port,
    registry: metrics.registry,
    setRouting(routing) {
      const next = makeRouter(routing);
      router?.close();
      router = next;
    },
    async forceFlush() {
      graph?.flush();
      await Promise.all([spans.forceFlush(), logs.forceFlush(), edges.forceFlush()]);
    },
    close() {
      closing ??= (async () => {
        ready = false;
        // Requests already running finish and are queued; new ones are refused by closed sockets.
        const graceMs = Math.min(5_000, config.shutdownTimeoutMs);
        await Promise.all([grpc.shutdown(graceMs), http.close(graceMs)]);
        router?.close();
        await stopPipelines();
        sampler?.close();
        await admin.close(1_000);
        logger.info('collector stopped');
      })();
      return closing;
    },
  };
}

/** At most `n` runs at once. */
class Semaphore {
  #free: number;
  readonly #waiting: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#free === 0) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#free--;
    try {
      return await fn();
    } finally {
      this.#free++;
      this.#waiting.shift()?.();
    }
  }
}
