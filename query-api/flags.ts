// Flags of `tracemesh query-api`, each with a TRACEMESH_* environment twin.

import type { FlagSpec } from '../common/flags.ts';

export const QUERY_API_FLAGS = [
  { name: 'port', kind: 'int', default: '16686', env: 'TRACEMESH_QUERY_PORT', description: 'HTTP port of the query API (16686 is the Jaeger query port; 0 picks a free one).' },
  { name: 'host', kind: 'string', default: '127.0.0.1', env: 'TRACEMESH_QUERY_HOST', description: 'Address to listen on. Use 0.0.0.0 to accept connections from other hosts.' },
  {
    name: 'clickhouse-url',
    kind: 'string',
    default: '',
    env: 'TRACEMESH_CLICKHOUSE_URL',
    description: 'ClickHouse HTTP interface, e.g. http://127.0.0.1:8123. Empty: start an embedded clickhouse-server.',
  },
  { name: 'clickhouse-database', kind: 'string', default: 'tracemesh', env: 'TRACEMESH_CLICKHOUSE_DATABASE', description: 'Database that holds the tracemesh tables.' },
  {
    name: 'clickhouse-data-dir',
    kind: 'string',
    default: '.tracemesh/clickhouse',
    env: 'TRACEMESH_CLICKHOUSE_DATA_DIR',
    description: 'Data directory of the embedded ClickHouse (only used when --clickhouse-url is empty).',
  },
  {
    name: 'skip-migrate',
    kind: 'bool',
    default: 'false',
    env: 'TRACEMESH_QUERY_SKIP_MIGRATE',
    description: 'Do not create or upgrade the tracemesh tables at start (when another component owns the schema).',
  },
  {
    name: 'max-trace-spans',
    kind: 'int',
    default: '100000',
    env: 'TRACEMESH_QUERY_MAX_TRACE_SPANS',
    description:
      'Most spans read of one trace (trace by id, search results, path). A trace with more is cut to its first ones by start time and the answer says so (X-Tracemesh-Truncated-Traces header, a trace warning).',
  },
  {
    name: 'max-response-spans',
    kind: 'int',
    default: '100000',
    env: 'TRACEMESH_QUERY_MAX_RESPONSE_SPANS',
    description:
      'Most spans in one answer, all its traces together (a search of n traces reads at most this / n of each). A trace over its share is cut to its first spans by start time and the answer says so (X-Tracemesh-Truncated-Traces with max-response-spans=, a trace warning).',
  },
  {
    name: 'max-trace-logs',
    kind: 'int',
    default: '10000',
    env: 'TRACEMESH_QUERY_MAX_TRACE_LOGS',
    description: 'Most log records of one trace in one answer (/api/v1/traces/{id}/logs); more are cut to the oldest and the answer says so (X-Tracemesh-Truncated-Logs header, warnings).',
  },
  { name: 'max-path-spans', kind: 'int', default: '10000', env: 'TRACEMESH_QUERY_MAX_PATH_SPANS', description: 'Spans of one trace used to rebuild its path; more are dropped with a warning.' },
  {
    name: 'trace-quiet-period',
    kind: 'duration',
    default: '10s',
    env: 'TRACEMESH_TRACE_QUIET_PERIOD',
    description: 'A trace with a span that ended less than this ago may still grow: the path API says so (completeness.mayBeIncomplete). Same default as the outcomes component.',
  },
  {
    name: 'max-concurrent-queries',
    kind: 'int',
    default: '8',
    env: 'TRACEMESH_QUERY_MAX_CONCURRENT_QUERIES',
    description: 'Requests that read trace storage (every /api/ route but the cached service and operation lists) running at once; the ClickHouse client gets this many sockets plus 4 for the cheap lane.',
  },
  {
    name: 'query-queue-size',
    kind: 'int',
    default: '16',
    env: 'TRACEMESH_QUERY_QUEUE_SIZE',
    description: 'Storage requests that may wait for a slot; beyond it 503 with Retry-After at once (reason="concurrency").',
  },
  {
    name: 'query-queue-timeout',
    kind: 'duration',
    default: '2s',
    env: 'TRACEMESH_QUERY_QUEUE_TIMEOUT',
    description: 'Longest wait for a slot; then 503 with Retry-After (reason="deadline").',
  },
  {
    name: 'max-queries-per-client',
    kind: 'int',
    default: '0',
    env: 'TRACEMESH_QUERY_MAX_QUERIES_PER_CLIENT',
    description: 'Storage requests one client (remote address, or --query-client-header value) may run at once; its others wait, fairly with other clients. 0: three quarters of --max-concurrent-queries (6 of 8).',
  },
  {
    name: 'query-client-header',
    kind: 'string',
    default: '',
    env: 'TRACEMESH_QUERY_CLIENT_HEADER',
    description: 'Header that names the client for fairness (e.g. X-Scope-OrgID set by an authenticating proxy). Empty: the remote address. Only set it when clients cannot choose its value.',
  },
  {
    name: 'max-concurrent-cheap',
    kind: 'int',
    default: '64',
    env: 'TRACEMESH_QUERY_MAX_CONCURRENT_CHEAP',
    description: 'Requests of the cheap lane (/ready, /metrics, /openapi.json, the cached service and operation lists, the UI) at once; no queue, 503 beyond.',
  },
  {
    name: 'query-timeout',
    kind: 'duration',
    default: '10s',
    env: 'TRACEMESH_QUERY_TIMEOUT',
    description: 'Time limit of every ClickHouse statement (max_execution_time, whole seconds); a query past it is stopped and answered 503 QUERY_TIMEOUT. A client that goes away cancels its statement (KILL QUERY) at once.',
  },
  {
    name: 'services-cache-ttl',
    kind: 'duration',
    default: '10s',
    env: 'TRACEMESH_QUERY_SERVICES_CACHE_TTL',
    description:
      'How long /api/services, /api/v3/services and the operation lists (/api/services/{s}/operations, /api/operations, /api/v3/operations) answer from their cache before one shared refresh (a stale list is served meanwhile); 0 turns the caches off.',
  },
  {
    name: 'ready-cache-ttl',
    kind: 'duration',
    default: '1s',
    env: 'TRACEMESH_QUERY_READY_CACHE_TTL',
    description: 'How long /ready answers with the last ClickHouse ping\'s result; one ping runs at a time, shared by every caller. 0: a ping per request.',
  },
] as const satisfies readonly FlagSpec[];
