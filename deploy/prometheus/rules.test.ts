// The shipped Prometheus rules: `promtool check rules` and `promtool test rules` (Debian's
// promtool 2.42, found or installed through common/provision), then a real Prometheus 2.42
// that loads them and scrapes the outcomes component's OpenMetrics: the rules evaluate
// without errors and the failure counters' trace-id exemplars are stored.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../common/logger.ts';
import { provideProgram } from '../../common/provision.ts';
import { OutcomeMetrics } from '../../outcomes/metrics.ts';
import { analyzeTrace } from '../../outcomes/analyze.ts';
import { PROMTOOL, startPrometheus, type ServerHandle } from '../../outcomes/prometheus-servers.ts';
import { TraceBuilder, pod } from '../../query-api/testing/trace-builder.ts';
import { eventually } from '../../test/support/clickhouse.ts';

const DIR = fileURLToPath(new URL('.', import.meta.url));
const RULES = fileURLToPath(new URL('./tracemesh-rules.yaml', import.meta.url));

function promtool(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(provideProgram(PROMTOOL), args, { cwd: DIR, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

void describe('Prometheus rules in deploy/prometheus', () => {
  void it('pass promtool check rules', () => {
    const r = promtool('check', 'rules', 'tracemesh-rules.yaml');
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /SUCCESS: 7 rules found/);
  });

  void it('pass their unit tests (promtool test rules)', () => {
    const r = promtool('test', 'rules', 'tracemesh-rules.test.yaml');
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /SUCCESS/);
  });

  void describe('on a real Prometheus scraping the outcomes metrics', () => {
    let prom: ServerHandle;
    let server: Server;
    const metrics = new OutcomeMetrics({ defaultMetrics: false });
    const b = new TraceBuilder('dddddddddddddddddddddddddddddddd');
    const fe = b.server(pod('frontend', 1, 'node-1'), undefined, { name: 'GET', startMs: 0, durationMs: 10, http: 502 });
    const call = b.client(fe, { name: 'GET', startMs: 1, durationMs: 8, http: 500, to: pod('payments', 2, 'node-3') });
    b.server(pod('payments', 2, 'node-3'), call, { name: 'GET', startMs: 2, durationMs: 6, http: 500 });

    before(async () => {
      const t = analyzeTrace(b.traceId, b.spans, 1n);
      metrics.record(t, t.outcome, undefined);
      server = createServer((req, res) => {
        void metrics.registry.metrics().then((body) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(body);
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as AddressInfo).port;
      prom = await startPrometheus({ ruleFiles: [RULES], scrape: { outcomes: [`127.0.0.1:${port}`] }, interval: '1s', logger: silentLogger });
    });
    after(async () => {
      await prom?.stop();
      server?.close();
      metrics.close();
    });

    void it('loads the rules, evaluates them without errors and stores the exemplars', async () => {
      const rules = await eventually(
        async () => (await (await fetch(`${prom.url}/api/v1/rules`)).json()) as { data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } },
        (r) => r.data.groups.length === 2 && r.data.groups.every((g) => g.rules.every((x) => x.health === 'ok')),
        20_000,
        'every rule evaluated once, healthy',
      );
      assert.equal(rules.data.groups.flatMap((g) => g.rules).length, 7);
      const exemplars = await eventually(
        async () => {
          const now = Date.now() / 1000;
          const res = await fetch(`${prom.url}/api/v1/query_exemplars?query=tracemesh_path_failures_total&start=${now - 300}&end=${now + 60}`);
          return (await res.json()) as { data: { seriesLabels: Record<string, string>; exemplars: { labels: Record<string, string> }[] }[] };
        },
        (r) => r.data.length > 0,
        20_000,
        'an exemplar of tracemesh_path_failures_total',
      );
      const first = exemplars.data[0]!;
      assert.equal(first.seriesLabels['root_cause_service'], 'payments');
      assert.equal(first.exemplars[0]?.labels['trace_id'], b.traceId);
    });
  });
});
