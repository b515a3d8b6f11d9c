// The collector's Prometheus metrics, on a registry of its own so that several collectors in
// one process (tests, the demo) do not share counters. Served on the admin port at /metrics.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Transport = 'grpc' | 'http';

/**
 * Why items or requests were turned away:
 * - `invalid`: the item failed validation (partial success);
 * - `queue_full`: backpressure, the client was told to retry;
 * - `shutting_down`: the collector was closing, the client was told to retry;
 * - `wal_failed`: the write-ahead log could not write (not for lack of space), the client was told to retry;
 * - `malformed`, `too_large`, `unsupported_media_type`: the whole request was refused.
 */
export type RejectReason = 'invalid' | 'queue_full' | 'shutting_down' | 'wal_failed' | 'malformed' | 'too_large' | 'unsupported_media_type';

export interface CollectorMetrics {
  readonly registry: Registry;
  readonly receivedSpans: Counter<'transport'>;
  readonly rejectedSpans: Counter<'reason'>;
  readonly writtenSpans: Counter;
  readonly receivedLogRecords: Counter<'transport'>;
  readonly rejectedLogRecords: Counter<'reason'>;
  readonly writtenLogRecords: Counter;
  readonly writtenEdges: Counter;
  readonly rejectedRequests: Counter<'transport' | 'signal' | 'reason'>;
  readonly droppedItems: Counter<'signal' | 'reason'>;
  readonly deadLetteredItems: Counter<'signal'>;
  /** What the attribute limits (otlp/limits.ts) cut: attributes, events, links dropped, keys and values cut. */
  readonly limited: Counter<'signal' | 'reason'>;
  /** Spans and log records that lost something to the attribute limits. */
  readonly limitedItems: Counter<'signal'>;
  readonly routedSpans: Counter<'outcome'>;
  readonly sampledTraces: Counter<'decision' | 'reason'>;
  readonly sampledSpans: Counter<'decision'>;
  readonly walCorruptRecords: Counter<'signal'>;
  readonly walReplayedItems: Counter<'signal'>;
  readonly writeRetries: Counter<'signal'>;
  readonly writeDuration: Histogram<'signal' | 'outcome'>;
  readonly servicegraphPairs: Counter;
  readonly servicegraphEvictions: Counter<'side' | 'reason'>;
  readonly servicegraphVirtualEdges: Counter;
  /** Requests and connections refused by an admission limit (collector/admission/). */
  readonly admissionRefusals: Counter<'transport' | 'reason'>;
}

export interface QueueGauges {
  /** Items queued plus being written, per signal. */
  readonly pending: () => { spans: number; logs: number; edges: number };
  readonly capacity: () => { spans: number; logs: number; edges: number };
  readonly servicegraphPending: () => number;
  /** Bytes held by requests being received, and the budget's limit. */
  readonly inflightBytes?: () => { inUse: number; limit: number };
  /** Requests being received or handled. */
  readonly inflightRequests?: () => number;
  /** Write-ahead log bytes on disk and their bound per signal; undefined without a WAL. */
  readonly walBytes?: () => { spans: number; logs: number } | undefined;
  readonly walMaxBytes?: () => { spans: number; logs: number } | undefined;
}

export function createCollectorMetrics(gauges: QueueGauges, options: { defaultMetrics?: boolean } = {}): CollectorMetrics {
  const registry = new Registry();
  if (options.defaultMetrics === true) collectDefaultMetrics({ register: registry, prefix: 'tracemesh_collector_' });
  const registers = [registry];

  new Gauge({
    name: 'tracemesh_collector_queue_size',
    help: 'Items waiting in the collector queue or being written, per signal (spans, logs, edges).',
    labelNames: ['signal'],
    registers,
    collect() {
      const p = gauges.pending();
      this.set({ signal: 'spans' }, p.spans);
      this.set({ signal: 'logs' }, p.logs);
      this.set({ signal: 'edges' }, p.edges);
    },
  });
  new Gauge({
    name: 'tracemesh_collector_queue_capacity',
    help: 'Capacity of the collector queue per signal; requests beyond it are refused with RESOURCE_EXHAUSTED / 429.',
    labelNames: ['signal'],
    registers,
    collect() {
      const c = gauges.capacity();
      this.set({ signal: 'spans' }, c.spans);
      this.set({ signal: 'logs' }, c.logs);
      this.set({ signal: 'edges' }, c.edges);
    },
  });
  new Gauge({
    name: 'tracemesh_collector_servicegraph_pending_spans',
    help: 'CLIENT/SERVER span halves waiting for their partner in the service-graph store.',
    registers,
    collect() {
      this.set(gauges.servicegraphPending());
    },
  });

  if (gauges.inflightBytes !== undefined) {
    const read = gauges.inflightBytes;
    new Gauge({
      name: 'tracemesh_collector_inflight_bytes',
      help: 'Bytes held by OTLP requests being received (wire and decompressed), both receivers together.',
      registers,
      collect() {
        this.set(read().inUse);
      },
    });
    new Gauge({
      name: 'tracemesh_collector_inflight_bytes_limit',
      help: 'The in-flight bytes budget (--max-inflight-bytes); requests that would exceed it are refused with reason="memory".',
      registers,
      collect() {
        this.set(read().limit);
      },
    });
  }
  if (gauges.inflightRequests !== undefined) {
    const read = gauges.inflightRequests;
    new Gauge({
      name: 'tracemesh_collector_inflight_requests',
      help: 'OTLP requests being received or handled, both receivers together.',
      registers,
      collect() {
        this.set(read());
      },
    });
  }

  new Gauge({
    name: 'tracemesh_collector_wal_bytes',
    help: 'Bytes of the write-ahead log on disk per signal (records not yet written to storage, in whole segments).',
    labelNames: ['signal'],
    registers,
    collect() {
      const b = gauges.walBytes?.();
      if (b === undefined) return;
      this.set({ signal: 'spans' }, b.spans);
      this.set({ signal: 'logs' }, b.logs);
    },
  });
  new Gauge({
    name: 'tracemesh_collector_wal_max_bytes',
    help: 'Bound of the write-ahead log per signal (--wal-max-bytes); exports beyond it are refused with RESOURCE_EXHAUSTED / 429.',
    labelNames: ['signal'],
    registers,
    collect() {
      const b = gauges.walMaxBytes?.();
      if (b === undefined) return;
      this.set({ signal: 'spans' }, b.spans);
      this.set({ signal: 'logs' }, b.logs);
    },
  });

  return {
    registry,
    limited: new Counter({
      name: 'tracemesh_collector_limited_total',
      help: 'Attributes, events and links dropped, and attribute keys and values cut short, by the attribute limits (--max-attributes and the like), per signal and reason.',
      labelNames: ['signal', 'reason'],
      registers,
    }),
    routedSpans: new Counter({
      name: 'tracemesh_collector_routed_spans_total',
      help: 'Spans of traces another replica owns (trace-id routing): outcome="forwarded" to the owner, or "fallback" when the owner could not take them and this replica did.',
      labelNames: ['outcome'],
      registers,
    }),
    sampledTraces: new Counter({
      name: 'tracemesh_collector_sampled_traces_total',
      help: 'Tail-sampling decisions: decision="keep" with reason error, latency or ratio; decision="drop" with reason ratio.',
      labelNames: ['decision', 'reason'],
      registers,
    }),
    sampledSpans: new Counter({
      name: 'tracemesh_collector_sampled_spans_total',
      help: 'Spans that went through tail sampling, by decision (keep: written; drop: not written).',
      labelNames: ['decision'],
      registers,
    }),
    limitedItems: new Counter({
      name: 'tracemesh_collector_limited_items_total',
      help: 'Spans and log records stored with something cut by the attribute limits (they carry otel.dropped_*_count attributes when attributes, events or links were dropped).',
      labelNames: ['signal'],
      registers,
    }),
    deadLetteredItems: new Counter({
      name: 'tracemesh_collector_dead_lettered_items_total',
      help: 'Items that storage refused permanently (after splitting their batch), moved to the dead-letter file, per signal.',
      labelNames: ['signal'],
      registers,
    }),
    walCorruptRecords: new Counter({
      name: 'tracemesh_collector_wal_corrupt_records_total',
      help: 'Write-ahead-log records skipped at replay: checksum mismatch, torn tail, or a schema version this collector cannot read.',
      labelNames: ['signal'],
      registers,
    }),
    walReplayedItems: new Counter({
      name: 'tracemesh_collector_wal_replayed_items_total',
      help: 'Spans and log records read back from the write-ahead log at start (accepted before a crash or restart, not yet written).',
      labelNames: ['signal'],
      registers,
    }),
    admissionRefusals: new Counter({
      name: 'tracemesh_collector_admission_refusals_total',
      help: 'OTLP requests (and connections) refused by an admission limit, by transport and reason: memory (in-flight bytes), concurrency (requests or connections), deadline (--request-timeout), rate (--min-body-rate).',
      labelNames: ['transport', 'reason'],
      registers,
    }),
    receivedSpans: new Counter({
      name: 'tracemesh_collector_received_spans_total',
      help: 'Spans received in OTLP export requests that were decoded (valid or not).',
      labelNames: ['transport'],
      registers,
    }),
    rejectedSpans: new Counter({
      name: 'tracemesh_collector_rejected_spans_total',
      help: 'Spans not accepted, by reason (invalid: partial success; queue_full and shutting_down: the client was asked to retry).',
      labelNames: ['reason'],
      registers,
    }),
    writtenSpans: new Counter({ name: 'tracemesh_collector_written_spans_total', help: 'Spans written to storage.', registers }),
    receivedLogRecords: new Counter({
      name: 'tracemesh_collector_received_log_records_total',
      help: 'Log records received in OTLP export requests that were decoded (valid or not).',
      labelNames: ['transport'],
      registers,
    }),
    rejectedLogRecords: new Counter({
      name: 'tracemesh_collector_rejected_log_records_total',
      help: 'Log records not accepted, by reason.',
      labelNames: ['reason'],
      registers,
    }),
    writtenLogRecords: new Counter({ name: 'tracemesh_collector_written_log_records_total', help: 'Log records written to storage.', registers }),
    writtenEdges: new Counter({ name: 'tracemesh_collector_written_edges_total', help: 'Service-graph edge records written to storage.', registers }),
    rejectedRequests: new Counter({
      name: 'tracemesh_collector_rejected_requests_total',
      help: 'Export requests refused as a whole, by transport, signal and reason.',
      labelNames: ['transport', 'signal', 'reason'],
      registers,
    }),
    droppedItems: new Counter({
      name: 'tracemesh_collector_dropped_items_total',
      help: 'Accepted items that were never written, per signal and reason (shutdown_timeout: a shutdown ran out of time without a WAL; dead_letter_full: refused permanently and the dead-letter file was full).',
      labelNames: ['signal', 'reason'],
      registers,
    }),
    writeRetries: new Counter({
      name: 'tracemesh_collector_write_retries_total',
      help: 'Failed storage writes that were scheduled for a retry (the batch is kept).',
      labelNames: ['signal'],
      registers,
    }),
    writeDuration: new Histogram({
      name: 'tracemesh_collector_write_duration_seconds',
      help: 'Duration of one batch write to storage, per signal and outcome.',
      labelNames: ['signal', 'outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    servicegraphPairs: new Counter({
      name: 'tracemesh_collector_servicegraph_pairs_total',
      help: 'CLIENT spans matched with the SERVER span they called.',
      registers,
    }),
    servicegraphEvictions: new Counter({
      name: 'tracemesh_collector_servicegraph_evictions_total',
      help: 'Span halves that left the service-graph store unmatched: expired (waited the full time), store_full (evicted early) or shutdown.',
      labelNames: ['side', 'reason'],
      registers,
    }),
    servicegraphVirtualEdges: new Counter({
      name: 'tracemesh_collector_servicegraph_virtual_edges_total',
      help: 'Unmatched CLIENT spans counted as calls to a virtual server node (mesh.destination.service, peer.service or server.address).',
      registers,
    }),
  };
}
