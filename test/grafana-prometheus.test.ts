// Every PromQL expression of deploy/grafana's dashboards on a real Prometheus 2.42 (Debian's,
// started on a free port with a private config through outcomes/prometheus-servers.ts and
// common/provision.ts) that scrapes real components: a sidecar's admin /metrics, a collector's
// admin /metrics, and the outcomes component's OpenMetrics. Each expression, with Grafana's
// $__rate_interval / $__interval / $__range replaced as Grafana does before sending it, must
// evaluate without error; every metric it names must be one the components really expose
// (declared in a scraped exposition), and the ones traffic has produced must return series.

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Dataquery } from '@grafana/grafana-foundation-sdk/cog';
import { startCollector, type Collector } from '../collector/collector.ts';
import { InMemoryTraceWriter } from '../collector/testing/memory-writer.ts';
import { silentLogger } from '../common/logger.ts';
import { DATASOURCES, dashboards } from '../deploy/grafana/dashboards.ts';
import { analyzeTrace } from '../outcomes/analyze.ts';
import { OutcomeMetrics } from '../outcomes/metrics.ts';
import { startPrometheus, type ServerHandle } from '../outcomes/prometheus-servers.ts';
import { TraceBuilder, pod } from '../query-api/testing/trace-builder.ts';
import { httpRequest, startServer, startTestSidecar, type TestServer, type TestSidecar } from '../sidecar/testing/harness.ts';
import { eventually } from './support/clickhouse.ts';

let prom: ServerHandle;
let outcomesServer: Server;
let app: TestServer;
let sidecar: TestSidecar;
let collector: Collector;
const metrics = new OutcomeMetrics({ defaultMetrics: false });
const declared = new Set<string>();

interface PromPanel {
  readonly dashboard: string;
  readonly title: string;
  readonly expr: string;
}

function promQueries(): PromPanel[] {
  const out: PromPanel[] = [];
  for (const [file, d] of Object.entries(dashboards())) {
    for (const p of d.panels ?? []) {
      if (!('targets' in p)) continue;
      for (const t of (p.targets ?? []) as (Dataquery & { datasource?: { uid?: string }; expr?: string })[]) {
        if (t.datasource?.uid === DATASOURCES.prometheus.uid && t.expr) out.push({ dashboard: file, title: p.title ?? '', expr: t.expr });
      }
    }
  }
  return out;
}

/** Grafana's built-in variables, as it interpolates them for a 1 h range at a 15 s step. */
function interpolate(expr: string): string {
  return expr.replace(/\$__rate_interval/g, '1m').replace(/\$__interval/g, '15s').replace(/\$__range/g, '1h');
}

/** Metric names an expression reads (tracemesh_*; histogram series map to their family). */
function metricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\btracemesh_[a-z_]+/g)].map((m) => m[0]))];
}

function family(series: string): string[] {
  return [series, series.replace(/_(bucket|sum|count|total)$/, '')];
}

async function scrapeDeclared(url: string): Promise<void> {
  const text = await (await fetch(url)).text();
  for (const m of text.matchAll(/^# TYPE (\S+) /gm)) {
    declared.add(m[1]!);
    // OpenMetrics declares a counter without its _total suffix.
    declared.add(`${m[1]!}_total`);
  }
}

before(async () => {
  app = await startServer((req, res) => {
    req.resume();
    res.writeHead(req.url === '/fail' ? 503 : 200);
    res.end('ok');
  });
  sidecar = await startTestSidecar({ service: 'grafana-probe', appPort: app.port });
  collector = await startCollector({ grpcPort: 0, httpPort: 0, adminPort: 0, batchTimeoutMs: 50 }, { writer: new InMemoryTraceWriter() });
  // Traffic, so the request counters have series.
  for (const path of ['/ok', '/fail']) await httpRequest(sidecar.sidecar.inboundPort, { path });
  const b = new TraceBuilder('eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee');
  const fe = b.server(pod('frontend', 1, 'node-1'), undefined, { name: 'GET', startMs: 0, durationMs: 10, http: 502 });
  const call = b.client(fe, { name: 'GET', startMs: 1, durationMs: 8, http: 500, to: pod('payments', 2, 'node-3') });
  b.server(pod('payments', 2, 'node-3'), call, { name: 'GET', startMs: 2, durationMs: 6, http: 500 });
  const t = analyzeTrace(b.traceId, b.spans, 1n);
  metrics.record(t, t.outcome, undefined);
  outcomesServer = createServer((_req, res) => {
    void metrics.registry.metrics().then((body) => {
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      res.end(body);
    });
  });
  await new Promise<void>((r) => outcomesServer.listen(0, '127.0.0.1', r));
  const outcomesPort = (outcomesServer.address() as AddressInfo).port;
  const targets = {
    sidecar: `127.0.0.1:${sidecar.sidecar.adminPort}`,
    collector: `127.0.0.1:${collector.adminPort}`,
    outcomes: `127.0.0.1:${outcomesPort}`,
  };
  for (const target of Object.values(targets)) await scrapeDeclared(`http://${target}/metrics`);
  prom = await startPrometheus({ scrape: Object.fromEntries(Object.entries(targets).map(([k, v]) => [k, [v]])), interval: '1s', logger: silentLogger });
  await eventually(
    async () => (await (await fetch(`${prom.url}/api/v1/targets`)).json()) as { data: { activeTargets: { health: string }[] } },
    (r) => r.data.activeTargets.length === 3 && r.data.activeTargets.every((x) => x.health === 'up'),
    30_000,
    'the three targets scraped',
  );
});

after(async () => {
  await prom?.stop();
  outcomesServer?.close();
  metrics.close();
  await sidecar?.close();
  await collector?.close();
  await app?.close();
});

interface QueryResult {
  status: string;
  error?: string;
  data?: { resultType: string; result: unknown[] };
}

async function query(expr: string): Promise<QueryResult> {
  const res = await fetch(`${prom.url}/api/v1/query`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ query: expr }) });
  return (await res.json()) as QueryResult;
}

void describe('Grafana PromQL on a real Prometheus', () => {
  const queries = promQueries();

  void it('every dashboard that uses Prometheus has queries', () => {
    assert.ok(queries.length >= 15, `${queries.length} queries`);
  });

  for (const q of queries) {
    void it(`${q.dashboard}: "${q.title}": ${q.expr.slice(0, 70)}`, async () => {
      for (const name of metricNames(q.expr)) {
        assert.ok(family(name).some((f) => declared.has(f)), `${name} is not exposed by the sidecar, the collector or the outcomes component`);
      }
      const r = await query(interpolate(q.expr));
      assert.equal(r.status, 'success', `${r.error ?? ''}: ${q.expr}`);
    });
  }

  void it('with traffic, the RED, edge and health panels return series', async () => {
    const wanted = [
      'sum by (destination_workload) (rate(tracemesh_service_requests_total[$__rate_interval]))',
      'sum by (source_workload, mesh_error) (rate(tracemesh_requests_total{mesh_error!=""}[$__rate_interval]))',
      'sum by (instance, signal) (tracemesh_collector_queue_capacity)',
    ];
    for (const w of wanted) assert.ok(queries.some((q) => q.expr === w), `the dashboards have ${w}`);
    await eventually(
      async () => Promise.all([query(interpolate(wanted[0]!)), query(interpolate('sum(rate(tracemesh_requests_total[1m]))')), query(wanted[2]!)]),
      (rs) => rs.every((r) => r.status === 'success' && (r.data?.result.length ?? 0) > 0),
      30_000,
      'series for service requests, sidecar requests and the collector queue',
    );
  });
});
