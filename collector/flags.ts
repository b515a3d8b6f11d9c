// The collector's flags. Each has an environment twin (shown by --help) and a default that
// follows the OpenTelemetry Collector where one exists: OTLP on 4317/4318, health on 13133.

import { ConfigError } from '../common/errors.ts';
import type { FlagSpec, FlagValues } from '../common/flags.ts';
import { join } from 'node:path';
import type { CollectorConfig } from './collector.ts';
import type { WalConfig } from './wal/index.ts';
import type { RoutingConfig } from './routing/router.ts';

/**
 * Node.js options the collector is run with (deploy/kubernetes/30-collector.yaml, bench/lib/collector.ts):
 * V8 starts with an old generation of a few MB and grows its limit slowly, so under ingest the
 * collector ran a full mark-compact every ~20k spans (27 per 500k, ≈ 1 s of pauses, bench/ingest
 * with --trace-gc); a 256 MB initial old space halves their number and took collector CPU per
 * span down 10–20 % (README "Performance"). Not allowed in NODE_OPTIONS, hence the command line.
 */
export const COLLECTOR_NODE_OPTIONS: readonly string[] = ['--initial-old-space-size=256'];

export const COLLECTOR_FLAGS = [
  {
    name: 'host',
    kind: 'string',
    default: '127.0.0.1',
    env: 'TRACEMESH_COLLECTOR_HOST',
    description: 'Address that the OTLP and admin ports listen on. Use 0.0.0.0 (or ::) to take traffic from other hosts, as in Kubernetes.',
  },
  { name: 'grpc-port', kind: 'int', default: '4317', env: 'TRACEMESH_COLLECTOR_GRPC_PORT', description: 'OTLP/gRPC port (0 picks a free one).' },
  { name: 'http-port', kind: 'int', default: '4318', env: 'TRACEMESH_COLLECTOR_HTTP_PORT', description: 'OTLP/HTTP port: POST /v1/traces and /v1/logs (0 picks a free one).' },
  {
    name: 'admin-port',
    kind: 'int',
    default: '13133',
    env: 'TRACEMESH_COLLECTOR_ADMIN_PORT',
    description: 'Admin port: GET /metrics (Prometheus), /ready, /healthz (0 picks a free one).',
  },
  {
    name: 'clickhouse-url',
    kind: 'string',
    default: '',
    env: 'TRACEMESH_CLICKHOUSE_URL',
    description: 'ClickHouse HTTP interface, e.g. http://127.0.0.1:8123. Empty: start an embedded clickhouse-server (see --clickhouse-data-dir).',
  },
  { name: 'clickhouse-database', kind: 'string', default: 'tracemesh', env: 'TRACEMESH_CLICKHOUSE_DATABASE', description: 'ClickHouse database for the tracemesh tables; created and migrated at start.' },
  { name: 'clickhouse-cluster', kind: 'string', default: '', env: 'TRACEMESH_CLICKHOUSE_CLUSTER', description: 'Cluster name from the servers\' remote_servers: migrate Replicated tables under Distributed ones ON CLUSTER, and insert with insert_distributed_sync=1 (storage/SCHEMA.md, "Cluster mode"). Empty: one server.' },
  {
    name: 'clickhouse-data-dir',
    kind: 'string',
    default: '.tracemesh/clickhouse',
    env: 'TRACEMESH_CLICKHOUSE_DATA_DIR',
    description: 'Data directory of the embedded ClickHouse, used only when --clickhouse-url is empty.',
  },
  { name: 'batch-size', kind: 'int', default: '50000', env: 'TRACEMESH_COLLECTOR_BATCH_SIZE', description: 'Spans (or log records) per storage write; a batch is sent as soon as it is full. ClickHouse prefers few large inserts (each makes a part per table and day).' },
  { name: 'batch-timeout', kind: 'duration', default: '1s', env: 'TRACEMESH_COLLECTOR_BATCH_TIMEOUT', description: 'Longest time an item waits for its batch to fill before a smaller batch is sent.' },
  {
    name: 'queue-size',
    kind: 'int',
    default: '200000',
    env: 'TRACEMESH_COLLECTOR_QUEUE_SIZE',
    description: 'Items per signal that may wait or be in flight. When full, exports are refused with RESOURCE_EXHAUSTED / 429 and a retry hint.',
  },
  {
    name: 'max-body-size',
    kind: 'int',
    default: String(16 * 1024 * 1024),
    env: 'TRACEMESH_COLLECTOR_MAX_BODY_SIZE',
    description: 'Largest export request in bytes, on the wire and decompressed; larger ones get 413 / RESOURCE_EXHAUSTED.',
  },
  { name: 'write-concurrency', kind: 'int', default: '2', env: 'TRACEMESH_COLLECTOR_WRITE_CONCURRENCY', description: 'Batches written to storage at the same time, per signal.' },
  { name: 'retry-max-backoff', kind: 'duration', default: '5s', env: 'TRACEMESH_COLLECTOR_RETRY_MAX_BACKOFF', description: 'Longest wait between retries of a failed storage write (failed batches are kept and retried).' },
  {
    name: 'shutdown-timeout',
    kind: 'duration',
    default: '30s',
    env: 'TRACEMESH_COLLECTOR_SHUTDOWN_TIMEOUT',
    description: 'On SIGINT/SIGTERM, how long to keep writing queued data before giving up what is left (counted in tracemesh_collector_dropped_items_total).',
  },
  {
    name: 'wal-dir',
    kind: 'string',
    default: '.tracemesh/wal',
    env: 'TRACEMESH_COLLECTOR_WAL_DIR',
    description:
      'Write-ahead log directory (one subdirectory per signal). An export is acknowledged only once it is in the log; the log is replayed at start and truncated as ClickHouse confirms writes. One collector per directory. Empty: memory-only queue (a crash loses what is queued).',
  },
  {
    name: 'wal-max-bytes',
    kind: 'int',
    default: String(512 * 1024 * 1024),
    env: 'TRACEMESH_COLLECTOR_WAL_MAX_BYTES',
    description: 'Bound of the write-ahead log per signal, in bytes on disk. When full (or the disk is), exports are refused with RESOURCE_EXHAUSTED / 429 and a retry hint.',
  },
  {
    name: 'wal-segment-size',
    kind: 'int',
    default: String(32 * 1024 * 1024),
    env: 'TRACEMESH_COLLECTOR_WAL_SEGMENT_SIZE',
    description: 'Size at which a WAL segment file is closed and a new one started; a segment is deleted once all its records are written.',
  },
  {
    name: 'wal-fsync',
    kind: 'string',
    default: 'always',
    env: 'TRACEMESH_COLLECTOR_WAL_FSYNC',
    description:
      'always: fdatasync before acknowledging (group commit: one sync for all exports arriving meanwhile; survives power loss). interval: acknowledge once written to the OS, fdatasync every --wal-fsync-interval (survives a collector crash, not a machine crash). never: leave write-back to the OS.',
  },
  { name: 'wal-fsync-interval', kind: 'duration', default: '1s', env: 'TRACEMESH_COLLECTOR_WAL_FSYNC_INTERVAL', description: 'With --wal-fsync interval: how often the log is synced.' },
  {
    name: 'dead-letter-file',
    kind: 'string',
    default: '',
    env: 'TRACEMESH_COLLECTOR_DEAD_LETTER_FILE',
    description: 'Where rows that ClickHouse refuses permanently go (one JSON line per row; the batch is split to isolate them). Empty: <wal-dir>/dead-letter.ndjson, or none without a WAL (only counted).',
  },
  {
    name: 'dead-letter-max-bytes',
    kind: 'int',
    default: String(64 * 1024 * 1024),
    env: 'TRACEMESH_COLLECTOR_DEAD_LETTER_MAX_BYTES',
    description: 'Bound of the dead-letter file; refused rows beyond it are only counted (tracemesh_collector_dropped_items_total{reason="dead_letter_full"}).',
  },
  {
    name: 'routing-peers',
    kind: 'string',
    default: '',
    env: 'TRACEMESH_COLLECTOR_ROUTING_PEERS',
    description:
      'OTLP/gRPC host:port of every collector replica, this one included, the same list on each (e.g. a StatefulSet\'s collector-0.collector:4317,collector-1.collector:4317): spans are forwarded to the replica that owns their trace id, so service-graph pairing and tail sampling see whole traces. Empty: no routing.',
  },
  { name: 'routing-self', kind: 'string', default: '', env: 'TRACEMESH_COLLECTOR_ROUTING_SELF', description: 'This replica\'s entry in --routing-peers (e.g. $(POD_NAME).collector:4317).' },
  {
    name: 'tail-sampling-ratio',
    kind: 'string',
    default: '1',
    env: 'TRACEMESH_COLLECTOR_TAIL_SAMPLING_RATIO',
    description:
      'Share of traces kept (0..1) among those with no error span and no span over --tail-sampling-latency, chosen by trace-id hash; those are always kept, and a trace is kept or dropped whole. 1: no sampling. With several replicas, use --routing-peers so a trace is decided in one place.',
  },
  { name: 'tail-sampling-latency', kind: 'duration', default: '2s', env: 'TRACEMESH_COLLECTOR_TAIL_SAMPLING_LATENCY', description: 'A span at least this long keeps its whole trace.' },
  { name: 'tail-sampling-wait', kind: 'duration', default: '5s', env: 'TRACEMESH_COLLECTOR_TAIL_SAMPLING_WAIT', description: 'How long a trace with neither an error nor a slow span (so far) waits for one before it is sampled by ratio.' },
  { name: 'tail-sampling-decisions', kind: 'int', default: '200000', env: 'TRACEMESH_COLLECTOR_TAIL_SAMPLING_DECISIONS', description: 'Trace decisions remembered for spans that arrive after their trace was decided.' },
  { name: 'disable-servicegraph', kind: 'bool', default: 'false', env: 'TRACEMESH_COLLECTOR_DISABLE_SERVICEGRAPH', description: 'Do not derive service-graph edges from CLIENT/SERVER span pairs.' },
  {
    name: 'servicegraph-wait',
    kind: 'duration',
    default: '10s',
    env: 'TRACEMESH_COLLECTOR_SERVICEGRAPH_WAIT',
    description: 'How long a CLIENT or SERVER span waits for its partner; an unmatched CLIENT span then counts as a call to a virtual node.',
  },
  {
    name: 'servicegraph-max-pending',
    kind: 'int',
    default: '100000',
    env: 'TRACEMESH_COLLECTOR_SERVICEGRAPH_MAX_PENDING',
    description: 'Most spans waiting for a partner; the oldest is evicted (and counted) beyond this.',
  },
  {
    name: 'max-inflight-bytes',
    kind: 'int',
    default: String(64 * 1024 * 1024),
    env: 'TRACEMESH_COLLECTOR_MAX_INFLIGHT_BYTES',
    description:
      'Bytes that the OTLP requests being received may hold at once, both receivers together, charged as wire and decompressed bytes arrive. A request that would exceed it gets RESOURCE_EXHAUSTED / 503 with a retry hint (reason="memory"); the top eighth is kept for requests under 1 MiB.',
  },
  {
    name: 'max-concurrent-requests',
    kind: 'int',
    default: '256',
    env: 'TRACEMESH_COLLECTOR_MAX_CONCURRENT_REQUESTS',
    description: 'OTLP requests being received or handled at once, both receivers together; more get RESOURCE_EXHAUSTED / 503 with a retry hint (reason="concurrency").',
  },
  {
    name: 'max-requests-per-connection',
    kind: 'int',
    default: '32',
    env: 'TRACEMESH_COLLECTOR_MAX_REQUESTS_PER_CONNECTION',
    description: 'Concurrent OTLP/gRPC calls on one connection (advertised as SETTINGS_MAX_CONCURRENT_STREAMS; more are refused, reason="concurrency"). HTTP/1.1 has one request at a time per connection.',
  },
  {
    name: 'max-connections',
    kind: 'int',
    default: '1024',
    env: 'TRACEMESH_COLLECTOR_MAX_CONNECTIONS',
    description: 'Open connections per OTLP port; more are closed as they arrive (counted, reason="concurrency").',
  },
  {
    name: 'request-timeout',
    kind: 'duration',
    default: '30s',
    env: 'TRACEMESH_COLLECTOR_REQUEST_TIMEOUT',
    description: 'Longest time from a request\'s start until its whole body has arrived; then RESOURCE_EXHAUSTED / 503 and the stream or connection is closed (reason="deadline"). HTTP headers must arrive within the smaller of this and 10 s (408).',
  },
  {
    name: 'min-body-rate',
    kind: 'int',
    default: String(16 * 1024),
    env: 'TRACEMESH_COLLECTOR_MIN_BODY_RATE',
    description: 'Least average rate, in bytes/s, at which a request body must arrive after its first second; slower ones are cut like a missed deadline (reason="rate"). 0 turns it off.',
  },
  // Attribute limits: the OTel SDK's span limits (OTEL_ATTRIBUTE_COUNT_LIMIT and the like), applied again at the collector so that no sender can store more.
  { name: 'max-attributes', kind: 'int', default: '128', env: 'TRACEMESH_COLLECTOR_MAX_ATTRIBUTES', description: 'Attributes kept per span and per log record (the first ones); the rest are dropped, counted, and the span marked with otel.dropped_attributes_count.' },
  { name: 'max-resource-attributes', kind: 'int', default: '128', env: 'TRACEMESH_COLLECTOR_MAX_RESOURCE_ATTRIBUTES', description: 'Attributes kept per resource; like --max-attributes (the mark goes on the resource).' },
  { name: 'max-event-attributes', kind: 'int', default: '128', env: 'TRACEMESH_COLLECTOR_MAX_EVENT_ATTRIBUTES', description: 'Attributes kept per span event and per span link; like --max-attributes (the mark goes on the event or link).' },
  { name: 'max-events', kind: 'int', default: '128', env: 'TRACEMESH_COLLECTOR_MAX_EVENTS', description: 'Events kept per span (the first ones); the span is marked with otel.dropped_events_count.' },
  { name: 'max-links', kind: 'int', default: '128', env: 'TRACEMESH_COLLECTOR_MAX_LINKS', description: 'Links kept per span (the first ones); the span is marked with otel.dropped_links_count.' },
  { name: 'max-attribute-key-length', kind: 'int', default: '256', env: 'TRACEMESH_COLLECTOR_MAX_ATTRIBUTE_KEY_LENGTH', description: 'Longest attribute key in UTF-8 bytes; longer keys are cut at a character boundary (counted, reason="key_length").' },
  {
    name: 'max-attribute-value-length',
    kind: 'int',
    default: String(16 * 1024),
    env: 'TRACEMESH_COLLECTOR_MAX_ATTRIBUTE_VALUE_LENGTH',
    description: 'Longest attribute value in UTF-8 bytes (of its text: base64 for bytes, JSON for arrays and maps); longer values are cut at a character boundary (counted, reason="value_length"). A cut array or map is stored as a string.',
  },
] as const satisfies readonly FlagSpec[];

export type CollectorFlagValues = FlagValues<typeof COLLECTOR_FLAGS>;

function port(name: string, v: number): number {
  if (v < 0 || v > 65535) throw new ConfigError(`--${name} must be a port number from 0 to 65535, got ${v}`);
  return v;
}

function positive(name: string, v: number): number {
  if (v < 1) throw new ConfigError(`--${name} must be at least 1, got ${v}`);
  return v;
}

function nonNegative(name: string, v: number): number {
  if (v < 0) throw new ConfigError(`--${name} must not be negative, got ${v}`);
  return v;
}

/** Trace-id routing from parsed flags; undefined without --routing-peers. */
export function routingFromFlags(f: CollectorFlagValues): RoutingConfig | undefined {
  const peers = f['routing-peers'].split(',').map((p) => p.trim()).filter((p) => p.length > 0);
  if (peers.length === 0) return undefined;
  const self = f['routing-self'].trim();
  if (self === '') throw new ConfigError('--routing-peers needs --routing-self: this replica\'s entry in the list');
  if (!peers.includes(self)) throw new ConfigError(`--routing-self "${self}" is not one of --routing-peers (${peers.join(',')})`);
  return { peers, self };
}

export interface DurabilityConfig {
  /** undefined: no WAL. */
  readonly wal: WalConfig | undefined;
  readonly deadLetterFile: string | undefined;
  readonly deadLetterMaxBytes: number;
}

/** The WAL and dead-letter settings from parsed flags; throws ConfigError for bad values. */
export function durabilityFromFlags(f: CollectorFlagValues): DurabilityConfig {
  const fsync = f['wal-fsync'];
  if (fsync !== 'always' && fsync !== 'interval' && fsync !== 'never') throw new ConfigError(`--wal-fsync must be always, interval or never, got "${fsync}"`);
  const dir = f['wal-dir'];
  const wal: WalConfig | undefined =
    dir === ''
      ? undefined
      : {
          dir,
          maxBytes: positive('wal-max-bytes', f['wal-max-bytes']),
          segmentBytes: positive('wal-segment-size', f['wal-segment-size']),
          fsync,
          fsyncIntervalMs: positive('wal-fsync-interval', f['wal-fsync-interval']),
        };
  const deadLetterFile = f['dead-letter-file'] !== '' ? f['dead-letter-file'] : dir !== '' ? join(dir, 'dead-letter.ndjson') : undefined;
  return { wal, deadLetterFile, deadLetterMaxBytes: positive('dead-letter-max-bytes', f['dead-letter-max-bytes']) };
}

/** The collector config from parsed flags; throws ConfigError naming a flag that is out of range. */
export function configFromFlags(f: CollectorFlagValues): CollectorConfig {
  if (f['max-inflight-bytes'] < f['max-body-size']) {
    throw new ConfigError(`--max-inflight-bytes (${f['max-inflight-bytes']}) must be at least --max-body-size (${f['max-body-size']}), or no request of the largest size could be received`);
  }
  return {
    host: f.host,
    grpcPort: port('grpc-port', f['grpc-port']),
    httpPort: port('http-port', f['http-port']),
    adminPort: port('admin-port', f['admin-port']),
    batchSize: positive('batch-size', f['batch-size']),
    batchTimeoutMs: positive('batch-timeout', f['batch-timeout']),
    queueSize: positive('queue-size', f['queue-size']),
    maxBodyBytes: positive('max-body-size', f['max-body-size']),
    writeConcurrency: positive('write-concurrency', f['write-concurrency']),
    retryInitialMs: 100,
    retryMaxMs: positive('retry-max-backoff', f['retry-max-backoff']),
    shutdownTimeoutMs: positive('shutdown-timeout', f['shutdown-timeout']),
    servicegraph: {
      enabled: !f['disable-servicegraph'],
      waitMs: positive('servicegraph-wait', f['servicegraph-wait']),
      maxPending: positive('servicegraph-max-pending', f['servicegraph-max-pending']),
      flushIntervalMs: 5_000,
    },
    admission: {
      maxInflightBytes: positive('max-inflight-bytes', f['max-inflight-bytes']),
      maxConcurrentRequests: positive('max-concurrent-requests', f['max-concurrent-requests']),
      maxRequestsPerConnection: positive('max-requests-per-connection', f['max-requests-per-connection']),
      maxConnections: positive('max-connections', f['max-connections']),
      requestTimeoutMs: positive('request-timeout', f['request-timeout']),
      minBodyRate: nonNegative('min-body-rate', f['min-body-rate']),
    },
    attributeLimits: {
      maxAttributes: nonNegative('max-attributes', f['max-attributes']),
      maxResourceAttributes: nonNegative('max-resource-attributes', f['max-resource-attributes']),
      maxEventAttributes: nonNegative('max-event-attributes', f['max-event-attributes']),
      maxEvents: nonNegative('max-events', f['max-events']),
      maxLinks: nonNegative('max-links', f['max-links']),
      maxKeyBytes: positive('max-attribute-key-length', f['max-attribute-key-length']),
      maxValueBytes: positive('max-attribute-value-length', f['max-attribute-value-length']),
    },
    processMetrics: true,
    tailSampling: {
      ratio: ratio('tail-sampling-ratio', f['tail-sampling-ratio']),
      latencyThresholdMs: positive('tail-sampling-latency', f['tail-sampling-latency']),
      waitMs: positive('tail-sampling-wait', f['tail-sampling-wait']),
      maxDecisions: positive('tail-sampling-decisions', f['tail-sampling-decisions']),
    },
  };
}

function ratio(name: string, text: string): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || v < 0 || v > 1) throw new ConfigError(`--${name} must be a number from 0 to 1, got "${text}"`);
  return v;
}
