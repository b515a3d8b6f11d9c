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
  { name: 'max-path-spans', kind: 'int', default: '10000', env: 'TRACEMESH_QUERY_MAX_PATH_SPANS', description: 'Spans of one trace used to rebuild its path; more are dropped with a warning.' },
  {
    name: 'trace-quiet-period',
    kind: 'duration',
    default: '10s',
    env: 'TRACEMESH_TRACE_QUIET_PERIOD',
    description: 'A trace with a span that ended less than this ago may still grow: the path API says so (completeness.mayBeIncomplete). Same default as the outcomes component.',
  },
] as const satisfies readonly FlagSpec[];
