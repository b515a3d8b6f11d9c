import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { createApp } from '../app.ts';
import { MemoryTraceStore } from '../memory-store.ts';
import type { TracePath } from '../path/model.ts';
import { FAILING_TRACE, HEALTHY_TRACE, NOW_NS, REFUSED_TRACE, fixture } from '../testing/fixtures.ts';
import { checkSchema, responseSchema } from '../testing/schema-check.ts';
import { BASE_TIME_NS, TraceBuilder, pod } from '../testing/trace-builder.ts';

const store = new MemoryTraceStore();
const app = createApp({ reader: store, now: () => NOW_NS, maxPathSpans: 50 });

before(async () => {
  const f = fixture();
  await store.writeSpans(f.spans);
  await store.writeLogs(f.logs);
  await store.writeEdges(f.edges);
});

async function get<T = unknown>(path: string): Promise<{ status: number; body: T }> {
  const res = await app.request(path);
  return { status: res.status, body: (await res.json()) as T };
}

interface ApiErrorBody {
  error: { status: number; code: string; message: string };
}

void describe('GET /api/v1/traces/{id}/path', () => {
  void it('returns the path with the root cause of a failed request', async () => {
    const r = await get<TracePath>(`/api/v1/traces/${FAILING_TRACE}/path`);
    assert.equal(r.status, 200);
    assert.deepEqual(checkSchema(r.body, responseSchema('/api/v1/traces/{traceId}/path')), []);
    assert.equal(r.body.traceId, FAILING_TRACE);
    assert.equal(r.body.status, 'error');
    assert.equal(r.body.rootCause?.pod, 'payments-1');
    assert.equal(r.body.rootCause?.node, 'node-3');
    assert.equal(r.body.summary, 'payments-1 on node-3 (service payments) returned 500: ledger write timed out');
    assert.deepEqual(r.body.services, ['frontend', 'checkout', 'payments']);
  });

  void it('names the refused target pod', async () => {
    const r = await get<TracePath>(`/api/v1/traces/${REFUSED_TRACE}/path`);
    assert.deepEqual(checkSchema(r.body, responseSchema('/api/v1/traces/{traceId}/path')), []);
    assert.equal(r.body.rootCause?.pod, 'checkout-2');
    assert.equal(r.body.rootCause?.reason, 'CONNECTION_REFUSED');
    assert.equal(r.body.rootCause?.observedBy?.pod, 'frontend-1');
  });

  void it('returns rootCause null for a request that succeeded', async () => {
    const r = await get<TracePath>(`/api/v1/traces/${HEALTHY_TRACE}/path`);
    assert.equal(r.body.status, 'ok');
    assert.equal(r.body.rootCause, null);
  });

  void it('answers 400 for a malformed id and 404 for an unknown one', async () => {
    const bad = await get<ApiErrorBody>('/api/v1/traces/not-a-trace/path');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'INVALID_PARAMETER');
    assert.match(bad.body.error.message, /trace id must be 1 to 32 hexadecimal characters/);
    assert.deepEqual(checkSchema(bad.body, responseSchema('/api/v1/traces/{traceId}/path', '400')), []);
    const unknown = await get<ApiErrorBody>(`/api/v1/traces/${'ef'.repeat(16)}/path`);
    assert.equal(unknown.status, 404);
    assert.deepEqual(unknown.body, { error: { status: 404, code: 'TRACE_NOT_FOUND', message: `trace ${'ef'.repeat(16)} not found` } });
    const flag = await get<ApiErrorBody>(`/api/v1/traces/${FAILING_TRACE}/path?adjustClockSkew=perhaps`);
    assert.equal(flag.status, 400);
    assert.match(flag.body.error.message, /^adjustClockSkew: must be true or false/);
  });

  void it('caps huge traces at the configured span limit', async () => {
    const b = new TraceBuilder('feedfacefeedfacefeedfacefeedface');
    const root = b.server(pod('batch', 1, 'node-1'), undefined, { startMs: 0, durationMs: 1000, http: 200 });
    for (let i = 0; i < 200; i++) b.app(root, { startMs: i, durationMs: 1 });
    const local = new MemoryTraceStore();
    await local.writeSpans(b.spans);
    const res = await createApp({ reader: local, maxPathSpans: 50 }).request(`/api/v1/traces/${b.traceId}/path`);
    const body = (await res.json()) as TracePath;
    assert.equal(body.truncated, true);
    assert.equal(body.spanCount, 50);
  });

  void it('can leave clock skew unadjusted', async () => {
    const b = new TraceBuilder('0123456789abcdef0123456789abcdef');
    const fe = b.server(pod('frontend', 1, 'node-1'), undefined, { startMs: 0, durationMs: 100, http: 200 });
    const c = b.client(fe, { startMs: 10, durationMs: 80, http: 200 });
    b.server(pod('payments', 1, 'node-3'), c, { startMs: -35, durationMs: 70, http: 200 });
    const local = new MemoryTraceStore();
    await local.writeSpans(b.spans);
    const a = createApp({ reader: local });
    const adjusted = (await (await a.request(`/api/v1/traces/${b.traceId}/path`)).json()) as TracePath;
    const raw = (await (await a.request(`/api/v1/traces/${b.traceId}/path?adjustClockSkew=false`)).json()) as TracePath;
    assert.equal(adjusted.hops[0]!.children[0]!.clockSkewAdjustmentNano, '50000000');
    assert.equal(raw.hops[0]!.children[0]!.clockSkewAdjustmentNano, '0');
    assert.equal(BigInt(raw.hops[0]!.children[0]!.startUnixNano), BASE_TIME_NS - 35_000_000n);
  });
});

void describe('GET /api/v1/traces/{id}/logs', () => {
  void it('returns the logs of a trace, oldest first', async () => {
    const r = await get<{ traceId: string; logs: { body: string; severityText: string; time: string; attributes: Record<string, unknown>; resource: Record<string, unknown> }[] }>(
      `/api/v1/traces/${FAILING_TRACE}/logs`,
    );
    assert.equal(r.status, 200);
    assert.deepEqual(checkSchema(r.body, responseSchema('/api/v1/traces/{traceId}/logs')), []);
    assert.deepEqual(r.body.logs.map((l) => l.body), ['charging card', 'ledger write timed out']);
    assert.equal(r.body.logs[1]!.severityText, 'ERROR');
    assert.equal(r.body.logs[0]!.time, '2023-11-14T22:13:20.020000000Z');
    assert.deepEqual(r.body.logs[1]!.attributes, { 'http.response.status_code': 500 });
    assert.deepEqual(r.body.logs[1]!.resource, { 'k8s.pod.name': 'payments-1' });
  });

  void it('returns an empty list for a trace without logs, and 400 for a bad id', async () => {
    const r = await get<{ logs: unknown[] }>(`/api/v1/traces/${HEALTHY_TRACE}/logs`);
    assert.deepEqual(r.body.logs, []);
    assert.equal((await get(`/api/v1/traces/${'x'.repeat(40)}/logs`)).status, 400);
  });
});

void describe('GET /api/v1/services/graph', () => {
  void it('returns calls, errors, error rate and average duration per edge', async () => {
    const r = await get<{ services: string[]; edges: Record<string, unknown>[] }>(`/api/v1/services/graph?start=${BASE_TIME_NS / 1_000_000n}&end=${BASE_TIME_NS / 1_000_000n + 3_600_000n}`);
    assert.equal(r.status, 200);
    assert.deepEqual(checkSchema(r.body, responseSchema('/api/v1/services/graph')), []);
    assert.deepEqual(r.body.services, ['checkout', 'frontend', 'payments']);
    assert.deepEqual(r.body.edges, [
      { client: 'checkout', server: 'payments', calls: 4, errors: 2, errorRate: 0.5, avgDurationNano: '100000000', avgDurationMs: 100 },
      { client: 'frontend', server: 'checkout', calls: 20, errors: 1, errorRate: 0.05, avgDurationNano: '100000000', avgDurationMs: 100 },
    ]);
  });

  void it('defaults to the last hour and rejects an inverted window', async () => {
    const r = await get<{ edges: unknown[] }>('/api/v1/services/graph');
    assert.equal(r.body.edges.length, 2);
    const bad = await get<ApiErrorBody>('/api/v1/services/graph?start=2000&end=1000');
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /start must not be after end/);
  });
});
