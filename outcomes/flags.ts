// Flags of `tracemesh outcomes`, each with a TRACEMESH_OUTCOMES_* environment twin.

import type { FlagSpec } from '../common/flags.ts';

export const OUTCOMES_FLAGS = [
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
  { name: 'skip-migrate', kind: 'bool', default: 'false', env: 'TRACEMESH_OUTCOMES_SKIP_MIGRATE', description: 'Do not create or upgrade the tracemesh tables at start.' },
  { name: 'quiet-time', kind: 'duration', default: '10s', env: 'TRACEMESH_OUTCOMES_QUIET_TIME', description: 'A trace is complete when no span of it arrived for this long (whole seconds, at least 1s). Late spans update its outcome.' },
  { name: 'shard', kind: 'string', default: '0/1', env: 'TRACEMESH_OUTCOMES_SHARD', description: 'i/n: this replica analyses the traces with cityHash64(trace id) % n = i. Each shard keeps its own checkpoint.' },
  { name: 'max-trace-spans', kind: 'int', default: '10000', env: 'TRACEMESH_OUTCOMES_MAX_TRACE_SPANS', description: 'Traces with more spans are recorded as too_large without being read.' },
  { name: 'backfill', kind: 'duration', default: '15m', env: 'TRACEMESH_OUTCOMES_BACKFILL', description: 'A shard with no checkpoint yet starts this long before now.' },
  { name: 'admin-port', kind: 'int', default: '16688', env: 'TRACEMESH_OUTCOMES_ADMIN_PORT', description: 'Port of /metrics (OpenMetrics with exemplars), /ready, /live and /debug/alerts (0 picks a free one).' },
  { name: 'admin-host', kind: 'string', default: '127.0.0.1', env: 'TRACEMESH_OUTCOMES_ADMIN_HOST', description: 'Address of the admin listener.' },
  { name: 'metrics-top-signatures', kind: 'int', default: '20', env: 'TRACEMESH_OUTCOMES_METRICS_TOP_SIGNATURES', description: 'Path signatures with metric series of their own (top by failures in the last hour); the rest count as signature_id="other".' },
  { name: 'metrics-top-root-causes', kind: 'int', default: '50', env: 'TRACEMESH_OUTCOMES_METRICS_TOP_ROOT_CAUSES', description: 'Root-cause (service, pod, node, reason) groups with series of their own; the rest count as root_cause_pod="other".' },
  {
    name: 'evaluate-rules',
    kind: 'string',
    default: 'auto',
    env: 'TRACEMESH_OUTCOMES_EVALUATE_RULES',
    description: 'Run the alert evaluator: auto (only shard 0, so a rule set is evaluated once however many replicas run), true or false.',
  },
  { name: 'rules-file', kind: 'string', default: '', env: 'TRACEMESH_OUTCOMES_RULES_FILE', description: 'Alert rules over outcomes (YAML, reloaded on change). Empty: the built-in default rules (outcomes/alerts/default-rules.yaml).' },
  { name: 'alertmanager-url', kind: 'list', default: '', env: 'TRACEMESH_OUTCOMES_ALERTMANAGER_URL', description: 'Alertmanager base URLs (comma-separated) that get alerts via POST /api/v2/alerts. Empty: alerts are evaluated and shown at /debug/alerts only.' },
  { name: 'evaluation-interval', kind: 'duration', default: '15s', env: 'TRACEMESH_OUTCOMES_EVALUATION_INTERVAL', description: 'How often the alert rules are evaluated and firing alerts re-sent.' },
  { name: 'ui-url', kind: 'string', default: 'http://127.0.0.1:16686', env: 'TRACEMESH_OUTCOMES_UI_URL', description: "Base URL of the query API's UI, for the links in alerts (/trace/{id}, /paths/{signatureId})." },
] as const satisfies readonly FlagSpec[];
