// tracemesh's Grafana dashboards, built with the Grafana Foundation SDK (dashboard schema of
// the SDK's version: the current one). `build.ts` writes them as JSON into dashboards/; the
// tests read the same definitions to run every query on the real servers.
//
// Data sources are referenced by the fixed uids that provisioning/datasources/tracemesh.yaml
// gives them.

import * as cog from '@grafana/grafana-foundation-sdk/cog';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as nodegraph from '@grafana/grafana-foundation-sdk/nodegraph';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

export const DATASOURCES = {
  jaeger: { type: 'jaeger', uid: 'tracemesh-jaeger' },
  prometheus: { type: 'prometheus', uid: 'tracemesh-prometheus' },
  clickhouse: { type: 'grafana-clickhouse-datasource', uid: 'tracemesh-clickhouse' },
} as const;

/** Dashboard uids, for links between them. */
export const UIDS = {
  overview: 'tracemesh-mesh-overview',
  failingPaths: 'tracemesh-failing-paths',
  trace: 'tracemesh-trace-lookup',
  health: 'tracemesh-health',
} as const;

/**
 * The trace-outcomes table (storage/schema/006_outcomes.ts) with the default table prefix; in
 * cluster mode the Distributed table has this name too. A custom --table-prefix needs the
 * dashboards rebuilt with TRACEMESH_GRAFANA_TABLE_PREFIX.
 */
const OUTCOMES = `${process.env['TRACEMESH_GRAFANA_TABLE_PREFIX'] ?? 'tracemesh_'}outcomes`;

/** A query of the ClickHouse plugin (`CHSqlQuery`: editorType sql, raw SQL with the plugin's macros). */
export interface ClickHouseQuery {
  readonly refId: string;
  readonly datasource: { readonly type: string; readonly uid: string };
  readonly editorType: 'sql';
  readonly queryType: 'table' | 'timeSeries';
  readonly rawSql: string;
  readonly format?: number;
}

/** A query of Grafana's Jaeger data source: a trace id, a search, or the dependency graph. */
export interface JaegerQuery {
  readonly refId: string;
  readonly datasource: { readonly type: string; readonly uid: string };
  readonly queryType?: 'search' | 'dependencyGraph';
  readonly query?: string;
  readonly service?: string;
  readonly tags?: string;
  readonly minDuration?: string;
  readonly limit?: number;
}

class QueryBuilder<T extends object> implements cog.Builder<cog.Dataquery> {
  readonly #query: T;
  constructor(query: T) {
    this.#query = query;
  }
  build(): cog.Dataquery {
    return this.#query as unknown as cog.Dataquery;
  }
}

function sql(refId: string, queryType: ClickHouseQuery['queryType'], rawSql: string): QueryBuilder<ClickHouseQuery> {
  // format: the plugin's Format enum, 0 time series, 1 table.
  return new QueryBuilder<ClickHouseQuery>({ refId, datasource: DATASOURCES.clickhouse, editorType: 'sql', queryType, rawSql: rawSql.trim(), format: queryType === 'timeSeries' ? 0 : 1 });
}

function jaeger(query: Omit<JaegerQuery, 'datasource'>): QueryBuilder<JaegerQuery> {
  return new QueryBuilder<JaegerQuery>({ ...query, datasource: DATASOURCES.jaeger });
}

function prom(refId: string, expr: string, legend: string): prometheus.DataqueryBuilder {
  return new prometheus.DataqueryBuilder().refId(refId).expr(expr).legendFormat(legend).datasource(DATASOURCES.prometheus);
}

const RATE = '$__rate_interval';

/** Failures of one path signature link to the trace-lookup dashboard with an exemplar trace. */
const traceLink = (field: string): dashboard.DashboardLink => ({
  title: 'Open this trace',
  type: dashboard.DashboardLinkType.Link,
  icon: '',
  tooltip: '',
  url: `/d/${UIDS.trace}?var-trace_id=\${__data.fields.${field}}&\${__url_time_range}`,
  tags: [],
  asDropdown: false,
  targetBlank: false,
  includeVars: false,
  keepTime: false,
});

const linkTo = (title: string, uid: string): dashboard.DashboardLinkBuilder => new dashboard.DashboardLinkBuilder(title).type(dashboard.DashboardLinkType.Link).url(`/d/${uid}`).keepTime(true);

const TOP_FAILING_PATHS_SQL = `
SELECT
  signature,
  toString(signature_id) AS signature_id,
  toUInt64(sum(sign * (status = 'error'))) AS failures,
  toUInt64(sum(sign)) AS requests,
  failures / greatest(requests, 1) AS error_rate,
  argMaxIf(rc_pod, timestamp, sign > 0 AND status = 'error') AS root_cause_pod,
  argMaxIf(rc_reason, timestamp, sign > 0 AND status = 'error') AS reason,
  lower(hex(argMaxIf(trace_id, timestamp, sign > 0 AND status = 'error'))) AS exemplar_trace_id
FROM ${OUTCOMES}
WHERE $__timeFilter(timestamp)
GROUP BY signature, signature_id
HAVING failures > 0
ORDER BY failures DESC
LIMIT 20`;

function overview(): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder('tracemesh / mesh overview')
    .uid(UIDS.overview)
    .tags(['tracemesh'])
    .refresh('30s')
    .time({ from: 'now-1h', to: 'now' })
    .link(linkTo('Failing paths', UIDS.failingPaths))
    .link(linkTo('Trace lookup', UIDS.trace))
    .withRow(new dashboard.RowBuilder('Requests, errors and duration per service'))
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Requests per second by service')
        .unit('reqps')
        .span(8)
        .withTarget(prom('A', `sum by (destination_workload) (rate(tracemesh_service_requests_total[${RATE}]))`, '{{destination_workload}}')),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Error rate by service')
        .unit('percentunit')
        .span(8)
        .withTarget(
          prom(
            'A',
            `sum by (destination_workload) (rate(tracemesh_service_requests_total{error="true"}[${RATE}])) / sum by (destination_workload) (rate(tracemesh_service_requests_total[${RATE}]))`,
            '{{destination_workload}}',
          ),
        ),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .title('p99 duration by service')
        .unit('s')
        .span(8)
        .withTarget(prom('A', `histogram_quantile(0.99, sum by (le, destination_workload) (rate(tracemesh_service_request_duration_seconds_bucket[${RATE}])))`, '{{destination_workload}}')),
    )
    .withRow(new dashboard.RowBuilder('Edges: caller → callee'))
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Edge error rate')
        .unit('percentunit')
        .span(12)
        .withTarget(
          prom(
            'A',
            `sum by (source_workload, destination_workload) (rate(tracemesh_edge_requests_total{error="true"}[${RATE}])) / sum by (source_workload, destination_workload) (rate(tracemesh_edge_requests_total[${RATE}]))`,
            '{{source_workload}} → {{destination_workload}}',
          ),
        ),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Edge p99 duration')
        .unit('s')
        .span(12)
        .withTarget(
          prom('A', `histogram_quantile(0.99, sum by (le, source_workload, destination_workload) (rate(tracemesh_edge_request_duration_seconds_bucket[${RATE}])))`, '{{source_workload}} → {{destination_workload}}'),
        ),
    )
    .withPanel(new nodegraph.PanelBuilder().title('Service graph').span(12).height(12).withTarget(jaeger({ refId: 'A', queryType: 'dependencyGraph' })))
    .withPanel(
      new table.PanelBuilder()
        .title('Top failing paths (click an exemplar trace)')
        .description('From the trace outcomes: each path signature with its failures, its latest root cause and one exemplar trace.')
        .span(12)
        .height(12)
        .withTarget(sql('A', 'table', TOP_FAILING_PATHS_SQL))
        .overrideByName('exemplar_trace_id', [{ id: 'links', value: [traceLink('exemplar_trace_id')] }])
        .overrideByName('error_rate', [{ id: 'unit', value: 'percentunit' }]),
    );
}

function failingPaths(): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder('tracemesh / failing paths')
    .uid(UIDS.failingPaths)
    .tags(['tracemesh'])
    .refresh('30s')
    .time({ from: 'now-1h', to: 'now' })
    .link(linkTo('Mesh overview', UIDS.overview))
    .link(linkTo('Trace lookup', UIDS.trace))
    .withPanel(
      new stat.PanelBuilder()
        .title('Failed requests')
        .span(6)
        .withTarget(sql('A', 'table', `SELECT toUInt64(sum(sign * (status = 'error'))) AS failures FROM ${OUTCOMES} WHERE $__timeFilter(timestamp)`)),
    )
    .withPanel(
      new stat.PanelBuilder()
        .title('Failing path signatures')
        .span(6)
        .withTarget(sql('A', 'table', `SELECT toUInt64(uniqExactIf(signature_id, status = 'error' AND sign > 0)) AS signatures FROM ${OUTCOMES} WHERE $__timeFilter(timestamp)`)),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Failures over time by root-cause service')
        .span(12)
        .withTarget(
          sql(
            'A',
            'timeSeries',
            // Buckets by $__interval_s arithmetic rather than $__timeInterval: that macro expands to
            // toStartOfInterval, which ClickHouse 18.16 lacks.
            `SELECT toDateTime(intDiv(toUInt32(timestamp), $__interval_s) * $__interval_s) AS time, rc_service, toUInt64(sum(sign)) AS failures
FROM ${OUTCOMES}
WHERE $__timeFilter(timestamp) AND status = 'error'
GROUP BY time, rc_service
ORDER BY time`,
          ),
        ),
    )
    .withPanel(
      new table.PanelBuilder()
        .title('Path signatures by failures')
        .span(24)
        .height(10)
        .withTarget(sql('A', 'table', TOP_FAILING_PATHS_SQL))
        .overrideByName('exemplar_trace_id', [{ id: 'links', value: [traceLink('exemplar_trace_id')] }])
        .overrideByName('error_rate', [{ id: 'unit', value: 'percentunit' }]),
    )
    .withPanel(
      new table.PanelBuilder()
        .title('Root causes by pod')
        .span(12)
        .withTarget(
          sql(
            'A',
            'table',
            `SELECT rc_service AS service, rc_pod AS pod, rc_node AS node, rc_reason AS reason, toUInt64(sum(sign)) AS failures
FROM ${OUTCOMES}
WHERE $__timeFilter(timestamp) AND status = 'error'
GROUP BY service, pod, node, reason
HAVING failures > 0
ORDER BY failures DESC
LIMIT 50`,
          ),
        ),
    )
    .withPanel(
      new table.PanelBuilder()
        .title('Root causes by node')
        .span(12)
        .withTarget(
          sql(
            'A',
            'table',
            `SELECT rc_node AS node, toUInt64(sum(sign)) AS failures, toUInt64(uniqExact(rc_pod)) AS pods
FROM ${OUTCOMES}
WHERE $__timeFilter(timestamp) AND status = 'error'
GROUP BY node
HAVING failures > 0
ORDER BY failures DESC`,
          ),
        ),
    );
}

function traceLookup(): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder('tracemesh / trace lookup')
    .uid(UIDS.trace)
    .tags(['tracemesh'])
    .time({ from: 'now-6h', to: 'now' })
    .link(linkTo('Failing paths', UIDS.failingPaths))
    .withVariable(new dashboard.TextBoxVariableBuilder('trace_id').label('Trace id').description('32 hex digits, as the sidecar logs, traceresponse and the failing-path API print it.'))
    .withPanel(
      new dashboard.PanelBuilder()
        .type('traces')
        .title('Trace ${trace_id}')
        .span(24)
        .height(20)
        .datasource(DATASOURCES.jaeger)
        .withTarget(jaeger({ refId: 'A', query: '${trace_id}' })),
    );
}

function health(): dashboard.DashboardBuilder {
  const ts = (title: string, unit: string, refs: [string, string][]): timeseries.PanelBuilder => {
    const p = new timeseries.PanelBuilder().title(title).unit(unit).span(8);
    refs.forEach(([expr, legend], i) => p.withTarget(prom(String.fromCharCode(65 + i), expr, legend)));
    return p;
  };
  return new dashboard.DashboardBuilder('tracemesh / sidecar and collector health')
    .uid(UIDS.health)
    .tags(['tracemesh'])
    .refresh('30s')
    .time({ from: 'now-1h', to: 'now' })
    .withRow(new dashboard.RowBuilder('Collector'))
    .withPanel(
      ts('Queue depth', 'short', [
        ['sum by (instance, signal) (tracemesh_collector_queue_size)', '{{instance}} {{signal}}'],
        ['sum by (instance, signal) (tracemesh_collector_queue_capacity)', '{{instance}} {{signal}} capacity'],
      ]),
    )
    .withPanel(
      ts('Dropped and rejected items per second', 'short', [
        [`sum by (instance) (rate(tracemesh_collector_dropped_items_total[${RATE}]))`, '{{instance}} dropped'],
        [`sum by (instance) (rate(tracemesh_collector_rejected_spans_total[${RATE}]))`, '{{instance}} spans rejected'],
        [`sum by (instance) (rate(tracemesh_collector_admission_refusals_total[${RATE}]))`, '{{instance}} refused at admission'],
      ]),
    )
    .withPanel(
      ts('Export to ClickHouse: retries and dead letters per second', 'short', [
        [`sum by (instance) (rate(tracemesh_collector_write_retries_total[${RATE}]))`, '{{instance}} retries'],
        [`sum by (instance) (rate(tracemesh_collector_dead_lettered_items_total[${RATE}]))`, '{{instance}} dead-lettered'],
      ]),
    )
    .withPanel(
      ts('Spans received and written per second', 'short', [
        [`sum by (instance) (rate(tracemesh_collector_received_spans_total[${RATE}]))`, '{{instance}} received'],
        [`sum by (instance) (rate(tracemesh_collector_written_spans_total[${RATE}]))`, '{{instance}} written'],
      ]),
    )
    .withPanel(ts('Write-ahead log size', 'bytes', [['sum by (instance) (tracemesh_collector_wal_bytes)', '{{instance}}']]))
    .withRow(new dashboard.RowBuilder('Sidecars'))
    .withPanel(
      ts('Mesh errors per second', 'short', [[`sum by (source_workload, mesh_error) (rate(tracemesh_requests_total{mesh_error!=""}[${RATE}]))`, '{{source_workload}} {{mesh_error}}']]),
    )
    .withPanel(ts('TLS handshake failures per second', 'short', [[`sum by (instance, reason) (rate(tracemesh_tls_handshake_failures_total[${RATE}]))`, '{{instance}} {{reason}}']]))
    .withPanel(
      new stat.PanelBuilder()
        .title('Workload certificate: time to expiry (lowest)')
        .unit('s')
        .span(8)
        .withTarget(prom('A', 'min(tracemesh_workload_certificate_expiry_timestamp_seconds - time())', 'expires in')),
    );
}

/** Each panel queries one data source: say it on the panel too, as Grafana's editor does. */
function withPanelDatasources(d: dashboard.Dashboard): dashboard.Dashboard {
  for (const p of d.panels ?? []) {
    if (p.type === 'row' || !('targets' in p)) continue;
    const first = p.targets?.[0] as { datasource?: { type: string; uid: string } } | undefined;
    if (p.datasource === undefined && first?.datasource !== undefined) p.datasource = first.datasource;
  }
  return d;
}

/** Every dashboard, by file name. */
export function dashboards(): Record<string, dashboard.Dashboard> {
  return {
    'mesh-overview.json': withPanelDatasources(overview().build()),
    'failing-paths.json': withPanelDatasources(failingPaths().build()),
    'trace-lookup.json': withPanelDatasources(traceLookup().build()),
    'health.json': withPanelDatasources(health().build()),
  };
}
