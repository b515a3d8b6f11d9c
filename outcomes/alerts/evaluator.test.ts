// The alert evaluator against a real Alertmanager 0.25: pending → firing after `for`, labels
// and annotations as promised, resolved alerts sent as resolved, an unreachable Alertmanager
// retried and counted without a throw, and a rule file reload that keeps the last good rules
// when the new file is malformed. The outcome reader here is a small real implementation of
// the interface over fixed summaries (the ClickHouse reader is tested in analyser.test.ts).

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Registry, type OpenMetricsContentType } from 'prom-client';
import { silentLogger } from '../../common/logger.ts';
import type { OutcomeReader, PathSummary, RootCauseGroup } from '../../storage/outcomes/model.ts';
import { createClickHouseClient, type StorageClient } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/schema/migrate.ts';
import { createTestDatabase, eventually, type TestDatabase } from '../../test/support/clickhouse.ts';
import { startOutcomes } from '../component.ts';
import { startAlertmanager, type ServerHandle } from '../prometheus-servers.ts';
import { AlertmanagerClient } from './alertmanager.ts';
import { AlertEvaluator } from './evaluator.ts';
import { parseRules } from './rules.ts';

class FixedOutcomes implements OutcomeReader {
  paths: PathSummary[] = [];
  causes: RootCauseGroup[] = [];
  fail = false;
  listPaths(): Promise<PathSummary[]> {
    return this.fail ? Promise.reject(new Error('ClickHouse is down')) : Promise.resolve(this.paths);
  }
  getPath(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
  rootCauses(): Promise<RootCauseGroup[]> {
    return Promise.resolve(this.causes);
  }
}

const PATH: PathSummary = {
  signatureId: '0123456789abcdef',
  signature: 'ingress GET /checkout > frontend > payments POST /charge',
  rootService: 'ingress',
  rootOperation: 'GET /checkout',
  requests: 100,
  failures: 30,
  errorRate: 0.3,
  p50Ms: 3,
  p99Ms: 12,
  rootCauses: [{ service: 'payments', pod: 'payments-2', node: 'node-3', namespace: 'shop', reason: 'HTTP_500', failures: 30, share: 1 }],
  firstSeenUnixNano: 1n,
  lastSeenUnixNano: 2n,
  exemplars: ['aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'],
};

const RULES = parseRules(['rules:', '  - name: PathErrorRate', '    kind: signature_error_rate', '    threshold: 0.05', '    for: 2s', '    labels: { severity: critical }', ''].join('\n'), 'test.yaml');

interface AmAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

void describe('alert evaluator', () => {
  let am: ServerHandle;
  before(async () => {
    am = await startAlertmanager({ logger: silentLogger });
  });
  after(async () => {
    await am?.stop();
  });

  const amAlerts = async (): Promise<AmAlert[]> => (await (await fetch(`${am.url}/api/v2/alerts`)).json()) as AmAlert[];

  void it('goes pending, fires after `for` with labels and links, and sends the resolution', async () => {
    const reader = new FixedOutcomes();
    reader.paths = [PATH];
    const ev = new AlertEvaluator({ reader, alertmanager: new AlertmanagerClient({ urls: [am.url] }), rules: RULES, uiUrl: 'http://tracemesh.example:16686' });
    const started = Date.now();
    await ev.evaluate();
    assert.deepEqual(ev.alerts().map((a) => a.state), ['pending']);
    assert.deepEqual(await amAlerts(), [], 'a pending alert is not sent');
    await eventually(
      async () => {
        await ev.evaluate();
        return ev.alerts().map((a) => a.state);
      },
      (s) => s[0] === 'firing',
      10_000,
      'the alert to fire',
    );
    assert.ok(Date.now() - started >= 2000, 'not before `for` (2s) has passed');
    const [alert] = await eventually(amAlerts, (l) => l.length === 1, 10_000, 'the alert in Alertmanager');
    assert.deepEqual(alert!.labels, {
      alertname: 'PathErrorRate',
      severity: 'critical',
      source: 'tracemesh-outcomes',
      signature: PATH.signature,
      signature_id: PATH.signatureId,
      root_service: 'ingress',
      root_cause_service: 'payments',
      root_cause_pod: 'payments-2',
      root_cause_node: 'node-3',
      root_cause_namespace: 'shop',
      reason: 'HTTP_500',
    });
    assert.equal(alert!.annotations['exemplar_trace_ids'], PATH.exemplars.join(','));
    assert.equal(alert!.annotations['exemplar_trace_url'], `http://tracemesh.example:16686/trace/${PATH.exemplars[0]}`);
    assert.equal(alert!.annotations['path_url'], `http://tracemesh.example:16686/paths/${PATH.signatureId}`);
    assert.match(alert!.annotations['summary'] ?? '', /30\.0% of 100 requests through ingress GET \/checkout > frontend > payments POST \/charge failed/);

    // A failing storage read keeps the alert as it is.
    reader.fail = true;
    await ev.evaluate();
    assert.deepEqual(ev.alerts().map((a) => a.state), ['firing']);
    reader.fail = false;

    reader.paths = [{ ...PATH, failures: 1, errorRate: 0.01 }];
    await ev.evaluate();
    assert.deepEqual(ev.alerts().map((a) => a.state), ['resolved']);
    await eventually(amAlerts, (l) => l.length === 0, 10_000, 'Alertmanager to see the alert resolved');
  });

  void it('retries and counts an unreachable Alertmanager, and keeps evaluating', async () => {
    const registry = new Registry<OpenMetricsContentType>();
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    const reader = new FixedOutcomes();
    reader.paths = [PATH];
    let failures = 0;
    const client = new AlertmanagerClient({ urls: [`http://127.0.0.1:${await closedPort()}`], attempts: 3, initialDelayMs: 10, onFailure: () => failures++ });
    const ev = new AlertEvaluator({ reader, alertmanager: client, rules: parseRules('rules:\n  - name: A\n    kind: signature_error_rate\n    threshold: 0.05\n', 't.yaml'), uiUrl: 'http://x', registry });
    await ev.evaluate();
    await ev.evaluate();
    assert.equal(failures, 2, 'each evaluation counted one failed send (after its retries)');
    assert.deepEqual(ev.alerts().map((a) => a.state), ['firing']);
    assert.match(await registry.metrics(), /tracemesh_alert_evaluations_total 2/);
  });

  void describe('rule file reload', () => {
    let db: TestDatabase;
    let storage: StorageClient;
    let dir: string;
    before(async () => {
      db = await createTestDatabase();
      storage = createClickHouseClient({ url: db.url, database: db.database });
      await migrate(storage);
      dir = await mkdtemp(join(tmpdir(), 'tracemesh-rules-'));
    });
    after(async () => {
      await storage?.close();
      await db?.drop();
      await rm(dir, { recursive: true, force: true });
    });

    void it('takes a valid new file, refuses a malformed one and keeps the last good rules', async () => {
      const file = join(dir, 'rules.yaml');
      await writeFile(file, 'rules:\n  - name: First\n    kind: new_failing_signature\n');
      const outcomes = await startOutcomes({ storage, logger: silentLogger, evaluate: true, rulesFile: file, adminPort: 0, defaultMetrics: false, evaluationIntervalMs: 60_000 });
      try {
        const names = (): string[] => outcomes.evaluator!.rules.rules.map((r) => r.name);
        assert.deepEqual(names(), ['First']);
        await writeFile(file, 'rules:\n  - name: Second\n    kind: new_failing_signature\n');
        await eventually(async () => names(), (n) => n[0] === 'Second', 10_000, 'the new rules');
        await writeFile(file, 'rules:\n  - name: Third\n    kind: signature_error_rate\n    threshold: 2\n');
        const metric = await eventually(
          async () => (await (await fetch(`${outcomes.adminUrl}/metrics`)).text()).match(/tracemesh_alert_rules_reload_failures_total (\d+)/)?.[1],
          (v) => v === '1',
          10_000,
          'the refused reload to be counted',
        );
        assert.equal(metric, '1');
        assert.deepEqual(names(), ['Second'], 'the last good rules stay');
      } finally {
        await outcomes.close();
      }
    });
  });
});
