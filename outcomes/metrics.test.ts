// Outcome metrics: OpenMetrics with trace-id exemplars, Istio label names on edges, and the
// top-N bound on signatures (the rest as `other`, re-ranked by recent failures).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ATTR } from '../common/semconv.ts';
import { TraceBuilder, pod } from '../query-api/testing/trace-builder.ts';
import { analyzeTrace } from './analyze.ts';
import { OutcomeMetrics } from './metrics.ts';

let n = 0;
function trace(callee: string, fail: boolean): ReturnType<typeof analyzeTrace> {
  n++;
  const b = new TraceBuilder(n.toString(16).padStart(32, 'c'));
  const fe = b.server(pod('frontend', 1, 'node-1'), undefined, { name: 'GET', startMs: 0, durationMs: 10, http: fail ? 502 : 200, attrs: { [ATTR.urlPath]: '/checkout' } });
  const call = b.client(fe, { name: 'GET', startMs: 1, durationMs: 8, http: fail ? 500 : 200, to: pod(callee, 2, 'node-3') });
  b.server(pod(callee, 2, 'node-3'), call, { name: 'GET', startMs: 2, durationMs: 6, http: fail ? 500 : 200, attrs: { [ATTR.urlPath]: '/x' } });
  return analyzeTrace(b.traceId, b.spans, BigInt(n));
}

void describe('outcome metrics', () => {
  void it('counts RED per edge and service with Istio labels and trace-id exemplars, in OpenMetrics', async () => {
    const m = new OutcomeMetrics({ defaultMetrics: false });
    const t = trace('payments', true);
    m.record(t, t.outcome, undefined);
    const text = await m.registry.metrics();
    assert.equal(m.registry.contentType, 'application/openmetrics-text; version=1.0.0; charset=utf-8');
    const id = t.outcome.traceId;
    assert.ok(
      text.includes(
        `tracemesh_edge_requests_total{source_workload="frontend",source_workload_namespace="shop",destination_workload="payments",destination_workload_namespace="shop",destination_service="payments",response_code="500",mesh_error="",error="true"} 1 # {trace_id="${id}"} 1`,
      ),
      text,
    );
    assert.match(text, new RegExp(`tracemesh_service_requests_total\\{destination_workload="payments",destination_workload_namespace="shop",error="true"\\} 1 # \\{trace_id="${id}"\\}`));
    assert.match(text, new RegExp(`tracemesh_path_failures_total\\{signature_id="${t.outcome.signatureId}",signature="frontend GET /checkout > payments GET /x",root_service="frontend",root_cause_service="payments",reason="HTTP_500"\\} 1 # \\{trace_id="${id}"\\}`));
    assert.match(text, /tracemesh_root_cause_failures_total\{root_cause_service="payments",root_cause_namespace="shop",root_cause_pod="payments-2",root_cause_node="node-3",reason="HTTP_500"\} 1/);
    assert.match(text, /tracemesh_edge_request_duration_seconds_bucket\{le="0\.01",source_workload="frontend",destination_workload="payments",destination_service="payments"\} 1 # \{trace_id=/);
    assert.match(text, /tracemesh_outcomes_traces_total\{status="error"\} 1/);
    assert.ok(text.trimEnd().endsWith('# EOF'));
    m.close();
  });

  void it('keeps the top N signatures by recent failures and counts the rest as other', async () => {
    let now = 1_000_000_000;
    const m = new OutcomeMetrics({ defaultMetrics: false, topSignatures: 1, now: () => now });
    const a = trace('payments', true);
    m.record(a, a.outcome, undefined);
    for (let i = 0; i < 3; i++) {
      const b = trace('inventory', true);
      m.record(b, b.outcome, undefined);
    }
    let text = await m.registry.metrics();
    assert.match(text, /tracemesh_path_failures_total\{signature_id="other",signature="other",root_service="other",root_cause_service="inventory",reason="HTTP_500"\} 3/);
    assert.match(text, /signature="frontend GET \/checkout > payments GET \/x"/);
    // inventory has more failures in the last hour: it takes the one slot.
    m.rerank();
    const c = trace('inventory', true);
    m.record(c, c.outcome, undefined);
    text = await m.registry.metrics();
    assert.doesNotMatch(text, /signature="frontend GET \/checkout > payments GET \/x"/);
    assert.match(text, /tracemesh_path_failures_total\{signature_id="[0-9a-f]{16}",signature="frontend GET \/checkout > inventory GET \/x",root_service="frontend",root_cause_service="inventory",reason="HTTP_500"\} 1/);
    assert.match(text, /tracemesh_path_requests_total\{signature_id="[0-9a-f]{16}",signature="frontend GET \/checkout > inventory GET \/x",root_service="frontend"\} 1/);
    // An hour without failures: forgotten at the next re-rank.
    now += 61 * 60_000;
    m.rerank();
    text = await m.registry.metrics();
    assert.doesNotMatch(text, /signature="frontend GET \/checkout > inventory GET \/x"/);
    m.close();
  });
});
