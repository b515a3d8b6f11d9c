// End to end: real sidecars, collector, ClickHouse, the outcomes component with the default
// alert rules, and a real Alertmanager 0.25 on a free port with a private config. A failure
// injected deep in the mesh (c-2 on node-3 starts answering 500) must arrive in Alertmanager
// (GET /api/v2/alerts) with the failing path's signature, the root-cause pod and node, and an
// exemplar trace id whose path names that pod; once the failure stops and the rule's window
// has passed, the alert is resolved.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { SpanStatusCode } from '@opentelemetry/api';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDemoApp, type DemoApp } from '../cli/demo/app.ts';
import { createAppTracing, injectHeaders, SpanKind, type AppTracing } from '../cli/demo/tracing.ts';
import { startBackend, type Backend } from '../cli/stack.ts';
import { silentLogger } from '../common/logger.ts';
import { startAlertmanager, type ServerHandle } from '../outcomes/prometheus-servers.ts';
import type { TracePath } from '../query-api/path/model.ts';
import { snapshotOf, StaticEndpointSource } from '../sidecar/endpoints/endpoints.ts';
import { startSidecar, type Sidecar } from '../sidecar/sidecar.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';

interface AmAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  status: { state: string };
}

function get(port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/order', headers: { host: 'a', ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

void describe('alerts on a failing path reach Alertmanager', () => {
  let db: TestDatabase;
  let am: ServerHandle;
  let backend: Backend;
  let tracing: AppTracing;
  let dir: string;
  const apps = new Map<string, DemoApp>();
  const sidecars = new Map<string, Sidecar>();
  const endpoints = new StaticEndpointSource();
  // c-2's failure rate is switched on by the test.
  const c2 = { service: 'c', pod: 'c-2', calls: [] as string[], outboundPort: 0, failRate: 0, workMs: 0 };

  before(async () => {
    db = await createTestDatabase();
    am = await startAlertmanager({ logger: silentLogger });
    dir = await mkdtemp(join(tmpdir(), 'tracemesh-e2e-alerts-'));
    // The default new-failing-path rule with a shorter window, so that resolution is quick too.
    // The window counts trace starts, and an outcome is written a quiet time (1 s here) plus
    // the analysis after its last span: on a loaded machine that can be seconds.
    const rules = join(dir, 'rules.yaml');
    await writeFile(rules, ['rules:', '  - name: TracemeshNewFailingPath', '    kind: new_failing_signature', '    window: 15s', '    baseline: 1h', '    labels: { severity: warning }', ''].join('\n'));
    backend = await startBackend({
      clickhouseUrl: db.url,
      database: db.database,
      collector: { batchTimeoutMs: 200 },
      queryHost: '127.0.0.1',
      queryPort: 0,
      logger: silentLogger,
      outcomes: {
        quietSeconds: 1,
        pollMs: 200,
        evaluate: true,
        rulesFile: rules,
        alertmanagerUrls: [am.url],
        evaluationIntervalMs: 1000,
        adminPort: 0,
        defaultMetrics: false,
      },
    });
    tracing = createAppTracing(backend.otlpGrpcEndpoint, { 'service.name': 'client' });
    const chain = [
      { service: 'a', pod: 'a-1', node: 'node-1', opts: { service: 'a', pod: 'a-1', calls: ['b'], outboundPort: 0, failRate: 0, workMs: 0 } },
      { service: 'b', pod: 'b-1', node: 'node-2', opts: { service: 'b', pod: 'b-1', calls: ['c'], outboundPort: 0, failRate: 0, workMs: 0 } },
      { service: 'c', pod: 'c-1', node: 'node-2', opts: { service: 'c', pod: 'c-1', calls: [] as string[], outboundPort: 0, failRate: 0, workMs: 0 } },
      { service: 'c', pod: 'c-2', node: 'node-3', opts: c2 },
    ];
    for (const p of chain) {
      const app = await startDemoApp(p.opts);
      const sidecar = await startSidecar(
        {
          service: p.service,
          pod: p.pod,
          node: p.node,
          namespace: 'shop',
          appPort: app.port(),
          outboundPort: 0,
          inboundPort: 0,
          adminPort: 0,
          bindAddress: '127.0.0.1',
          collectorEndpoint: backend.otlpGrpcEndpoint,
          accessLog: 'off',
        },
        { endpoints, logger: silentLogger, exportDelayMs: 100 },
      );
      app.options.outboundPort = sidecar.outboundPort;
      apps.set(p.pod, app);
      sidecars.set(p.pod, sidecar);
    }
    const ep = (pod: string, node: string): { address: string; pod: string; node: string; namespace: string } => ({
      address: `127.0.0.1:${sidecars.get(pod)!.inboundPort}`,
      pod,
      node,
      namespace: 'shop',
    });
    endpoints.set(snapshotOf({ b: [ep('b-1', 'node-2')], c: [ep('c-1', 'node-2'), ep('c-2', 'node-3')] }));
  });

  after(async () => {
    await tracing?.shutdown();
    for (const s of sidecars.values()) await s.close();
    for (const a of apps.values()) await a.close();
    await backend?.close();
    await am?.stop();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function send(): Promise<number> {
    const span = tracing.tracer.startSpan('GET /order', { kind: SpanKind.CLIENT });
    const status = await get(sidecars.get('a-1')!.inboundPort, injectHeaders(span));
    span.setAttribute('http.response.status_code', status);
    if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${status}` });
    span.end();
    return status;
  }

  async function alerts(): Promise<AmAlert[]> {
    const res = await fetch(`${am.url}/api/v2/alerts`);
    assert.equal(res.status, 200);
    return (await res.json()) as AmAlert[];
  }

  void it('a failure deep in the mesh arrives as an alert with signature, root-cause pod and an exemplar', async () => {
    for (let i = 0; i < 6; i++) assert.equal(await send(), 200);
    assert.deepEqual(await alerts(), [], 'no alert while everything works');
    c2.failRate = 1;
    let failed = 0;
    // The balancer (peak-EWMA, failures count as slow) sends c-2 few calls once it has failed:
    // send until some have reached it, with a deadline.
    const until = Date.now() + 60_000;
    for (let i = 0; (i < 10 || failed === 0) && Date.now() < until; i++) if ((await send()) === 502) failed++;
    assert.ok(failed > 0, 'c-2 is picked by the balancer for some requests within 60 s');
    await tracing.forceFlush();

    const [alert] = await eventually(
      async () => (await alerts()).filter((a) => a.labels['alertname'] === 'TracemeshNewFailingPath'),
      (l) => l.length > 0,
      60_000,
      'the alert in Alertmanager',
    );
    assert.ok(alert);
    assert.equal(alert.labels['signature'], 'client GET /order > a > b > c GET /order');
    assert.match(alert.labels['signature_id'] ?? '', /^[0-9a-f]{16}$/);
    assert.equal(alert.labels['root_cause_service'], 'c');
    assert.equal(alert.labels['root_cause_pod'], 'c-2');
    assert.equal(alert.labels['root_cause_node'], 'node-3');
    assert.equal(alert.labels['reason'], 'HTTP_500');
    assert.equal(alert.labels['severity'], 'warning');
    assert.equal(alert.status.state, 'active');
    assert.equal(alert.annotations['path_url'], `${backend.queryApi.url}/paths/${alert.labels['signature_id']}`);
    const exemplar = (alert.annotations['exemplar_trace_ids'] ?? '').split(',')[0] ?? '';
    assert.match(exemplar, /^[0-9a-f]{32}$/);
    assert.equal(alert.annotations['exemplar_trace_url'], `${backend.queryApi.url}/trace/${exemplar}`);
    const res = await fetch(`${backend.queryApi.url}/api/v1/traces/${exemplar}/path`);
    assert.equal(res.status, 200);
    const path = (await res.json()) as TracePath;
    assert.equal(path.rootCause?.pod, 'c-2');
    assert.equal(path.rootCause?.node, 'node-3');

    // The failing-path API agrees.
    const paths = (await (await fetch(`${backend.queryApi.url}/api/v1/paths?lookback=5m`)).json()) as { paths: { signatureId: string; failures: number }[] };
    assert.equal(paths.paths[0]?.signatureId, alert.labels['signature_id']);
    assert.equal(paths.paths[0]?.failures, failed);
  });

  void it('the alert is resolved once the failure stops', async () => {
    c2.failRate = 0;
    await eventually(
      async () => (await alerts()).filter((a) => a.labels['alertname'] === 'TracemeshNewFailingPath'),
      (l) => l.length === 0,
      60_000,
      'the alert to be resolved',
    );
    const admin = backend.outcomes!.adminUrl!;
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    assert.match(metrics, /tracemesh_alertmanager_sends_total\{alertmanager="[^"]+",result="success"\} [1-9]/);
  });
});
