// End to end: real sidecars, collector, ClickHouse, the outcomes component with the default
// alert rules, and a real Alertmanager 0.25 on a free port with a private config. A failure
// injected deep in the mesh (c-2 on node-3 starts answering 500) must arrive in Alertmanager
// (GET /api/v2/alerts) with the failing path's signature, the root-cause pod and node, and an
// exemplar trace id whose path names that pod; once the failure stops and the rule's window
// has passed, the alert is resolved.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../common/logger.ts';
import { startAlertmanager, type ServerHandle } from '../outcomes/prometheus-servers.ts';
import type { TracePath } from '../query-api/path/model.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';
import { startTestMesh, type TestMesh } from './support/mesh.ts';

interface AmAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  status: { state: string };
}

void describe('alerts on a failing path reach Alertmanager', () => {
  let db: TestDatabase;
  let am: ServerHandle;
  let mesh: TestMesh;
  let dir: string;
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
    mesh = await startTestMesh({
      db,
      backend: {
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
      },
      pods: [
        { service: 'a', pod: 'a-1', node: 'node-1', calls: ['b'] },
        { service: 'b', pod: 'b-1', node: 'node-2', calls: ['c'] },
        { service: 'c', pod: 'c-1', node: 'node-2', calls: [] },
        { service: 'c', pod: 'c-2', node: 'node-3', calls: [], app: c2 },
      ],
    });
  });

  after(async () => {
    await mesh?.close();
    await am?.stop();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const send = async (): Promise<number> => (await mesh.send()).status;

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
    await mesh.tracing.forceFlush();

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
    assert.equal(alert.annotations['path_url'], `${mesh.backend.queryApi.url}/paths/${alert.labels['signature_id']}`);
    const exemplar = (alert.annotations['exemplar_trace_ids'] ?? '').split(',')[0] ?? '';
    assert.match(exemplar, /^[0-9a-f]{32}$/);
    assert.equal(alert.annotations['exemplar_trace_url'], `${mesh.backend.queryApi.url}/trace/${exemplar}`);
    const res = await fetch(`${mesh.backend.queryApi.url}/api/v1/traces/${exemplar}/path`);
    assert.equal(res.status, 200);
    const path = (await res.json()) as TracePath;
    assert.equal(path.rootCause?.pod, 'c-2');
    assert.equal(path.rootCause?.node, 'node-3');

    // The failing-path API agrees.
    const paths = (await (await fetch(`${mesh.backend.queryApi.url}/api/v1/paths?lookback=5m`)).json()) as { paths: { signatureId: string; failures: number }[] };
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
    const admin = mesh.backend.outcomes!.adminUrl!;
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    assert.match(metrics, /tracemesh_alertmanager_sends_total\{alertmanager="[^"]+",result="success"\} [1-9]/);
  });
});
