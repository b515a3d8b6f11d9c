import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { TracemeshError } from '../../common/errors.ts';
import type { TraceReader } from '../../storage/model.ts';
import { createApp } from '../app.ts';
import type { JaegerKeyValue, JaegerResponse, JaegerTrace } from '../jaeger/model.ts';
import { MemoryTraceStore } from '../memory-store.ts';
import { FAILING_TRACE, HEALTHY_TRACE, NOW_NS, REFUSED_TRACE, SHORT_TRACE, fixture } from '../testing/fixtures.ts';
import { checkSchema, responseSchema } from '../testing/schema-check.ts';
import { BASE_TIME_NS } from '../testing/trace-builder.ts';

const store = new MemoryTraceStore();
const app = createApp({ reader: store, now: () => NOW_NS });

before(async () => {
  const f = fixture();
  await store.writeSpans(f.spans);
  await store.writeLogs(f.logs);
  await store.writeEdges(f.edges);
});

async function get<T = unknown>(path: string): Promise<{ status: number; body: T; type: string | null }> {
  const res = await app.request(path);
  return { status: res.status, body: (await res.json()) as T, type: res.headers.get('content-type') };
}

function assertConforms(body: unknown, path: string, status = '200'): void {
  assert.deepEqual(checkSchema(body, responseSchema(path, status)), []);
}

function tag(tags: readonly JaegerKeyValue[], key: string): JaegerKeyValue | undefined {
  return tags.find((t) => t.key === key);
}

const US = BASE_TIME_NS / 1_000n;
const MS = BASE_TIME_NS / 1_000_000n;
const S = BASE_TIME_NS / 1_000_000_000n;
const WINDOW = `start=${US - 1000n}&end=${US + 3_600_000_000n}`;

type TracesBody = JaegerResponse<JaegerTrace[]>;
const ids = (b: TracesBody): string[] => b.data.map((t) => t.traceID).sort();

void describe('GET /api/services and operations', () => {
  void it('lists services in the Jaeger envelope', async () => {
    const r = await get('/api/services');
    assert.equal(r.status, 200);
    assert.match(r.type ?? '', /application\/json/);
    assert.deepEqual(r.body, { data: ['checkout', 'frontend', 'legacy', 'payments'], total: 4, limit: 0, offset: 0, errors: null });
    assertConforms(r.body, '/api/services');
  });

  void it('lists operation names of a service', async () => {
    const r = await get<JaegerResponse<string[]>>('/api/services/checkout/operations');
    assert.deepEqual(r.body.data, ['POST /orders', 'outbound', 'validate cart']);
    assertConforms(r.body, '/api/services/{service}/operations');
    const unknown = await get<JaegerResponse<string[]>>('/api/services/nope/operations');
    assert.deepEqual(unknown.body.data, []);
  });

  void it('lists operations with span kinds, filtered by kind', async () => {
    const r = await get<JaegerResponse<{ name: string; spanKind: string }[]>>('/api/operations?service=checkout&spanKind=server');
    assert.deepEqual(r.body.data, [{ name: 'POST /orders', spanKind: 'server' }]);
    assertConforms(r.body, '/api/operations');
    const all = await get<JaegerResponse<{ name: string; spanKind: string }[]>>('/api/operations?service=checkout');
    assert.deepEqual(all.body.data.map((o) => o.spanKind).sort(), ['client', 'internal', 'server']);
  });

  void it('rejects a missing service and an unknown span kind', async () => {
    const missing = await get<JaegerResponse<null>>('/api/operations');
    assert.equal(missing.status, 400);
    assert.match(missing.body.errors?.[0]?.msg ?? '', /^service: is required/);
    const kind = await get<JaegerResponse<null>>('/api/operations?service=a&spanKind=sideways');
    assert.equal(kind.status, 400);
    assert.match(kind.body.errors?.[0]?.msg ?? '', /spanKind: must be one of server, client/);
  });
});

void describe('GET /api/traces/{id}', () => {
  void it('returns the trace in Jaeger JSON with typed tags, logs, references and processes', async () => {
    const r = await get<TracesBody>(`/api/traces/${FAILING_TRACE}`);
    assert.equal(r.status, 200);
    assertConforms(r.body, '/api/traces/{traceId}');
    assert.equal(r.body.errors, null);
    const [trace] = r.body.data;
    assert.ok(trace);
    assert.equal(trace.traceID, FAILING_TRACE);
    assert.equal(trace.spans.length, 5);
    assert.equal(trace.warnings, null);

    const root = trace.spans.find((s) => s.references.length === 0)!;
    assert.equal(root.operationName, 'GET /checkout');
    assert.equal(root.startTime, Number(US));
    assert.equal(root.duration, 120_000);
    assert.equal(root.flags, 1);
    assert.equal(root.warnings, null);
    assert.deepEqual(tag(root.tags, 'span.kind'), { key: 'span.kind', type: 'string', value: 'server' });
    assert.deepEqual(tag(root.tags, 'http.response.status_code'), { key: 'http.response.status_code', type: 'int64', value: 500 });
    assert.deepEqual(tag(root.tags, 'otel.status_code'), { key: 'otel.status_code', type: 'string', value: 'ERROR' });
    assert.deepEqual(tag(root.tags, 'error'), { key: 'error', type: 'bool', value: true });
    assert.deepEqual(tag(root.tags, 'w3c.tracestate'), { key: 'w3c.tracestate', type: 'string', value: 'vendor=abc' });
    assert.deepEqual(tag(root.tags, 'otel.scope.name'), { key: 'otel.scope.name', type: 'string', value: 'tracemesh-sidecar' });

    const pay = trace.spans.find((s) => s.operationName === 'POST /charge')!;
    assert.deepEqual(pay.references[0], { refType: 'CHILD_OF', traceID: FAILING_TRACE, spanID: trace.spans.find((s) => s.spanID === pay.references[0]!.spanID)!.spanID });
    assert.deepEqual(pay.references[1], { refType: 'FOLLOWS_FROM', traceID: HEALTHY_TRACE, spanID: '00f067aa0ba902b7' });
    assert.deepEqual(tag(pay.tags, 'payment.amount'), { key: 'payment.amount', type: 'float64', value: 12.5 });
    assert.deepEqual(tag(pay.tags, 'payment.retry'), { key: 'payment.retry', type: 'bool', value: false });
    assert.deepEqual(tag(pay.tags, 'payment.id'), { key: 'payment.id', type: 'int64', value: '9007199254740993' });
    assert.deepEqual(tag(pay.tags, 'payment.token'), { key: 'payment.token', type: 'binary', value: 'AQID' });
    assert.deepEqual(tag(pay.tags, 'payment.items'), { key: 'payment.items', type: 'string', value: '["a","b"]' });
    assert.deepEqual(tag(pay.tags, 'otel.status_description'), { key: 'otel.status_description', type: 'string', value: 'charge failed' });
    assert.deepEqual(pay.logs, [
      {
        timestamp: Number(US) + 100_000,
        fields: [
          { key: 'event', type: 'string', value: 'exception' },
          { key: 'exception.type', type: 'string', value: 'LedgerError' },
          { key: 'exception.message', type: 'string', value: 'ledger write timed out' },
        ],
      },
    ]);

    const proc = trace.processes[pay.processID]!;
    assert.equal(proc.serviceName, 'payments');
    assert.deepEqual(tag(proc.tags, 'k8s.pod.name'), { key: 'k8s.pod.name', type: 'string', value: 'payments-1' });
    assert.equal(tag(proc.tags, 'service.name'), undefined);
    assert.equal(Object.keys(trace.processes).length, 3);
  });

  void it('accepts upper case and 64-bit ids', async () => {
    assert.equal((await get(`/api/traces/${FAILING_TRACE.toUpperCase()}`)).status, 200);
    const short = await get<TracesBody>(`/api/traces/${SHORT_TRACE.slice(16)}`);
    assert.equal(short.status, 200);
    assert.equal(short.body.data[0]?.traceID, SHORT_TRACE);
  });

  void it('answers 400 for a malformed id and 404 for an unknown one, in the Jaeger error shape', async () => {
    for (const bad of ['xyz', 'g'.repeat(32), '1'.repeat(33), '0'.repeat(32), "1' OR '1'='1", '%00']) {
      const r = await get<JaegerResponse<null>>(`/api/traces/${encodeURIComponent(bad)}`);
      assert.equal(r.status, 400, bad);
      assert.equal(r.body.data, null);
      assert.equal(r.body.errors?.[0]?.code, 400);
      assert.match(r.body.errors?.[0]?.msg ?? '', /trace id/);
      assertConforms(r.body, '/api/traces/{traceId}', '400');
    }
    const missing = await get<JaegerResponse<null>>(`/api/traces/${'ab'.repeat(16)}`);
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.body, { data: null, total: 0, limit: 0, offset: 0, errors: [{ code: 404, msg: `trace ${'ab'.repeat(16)} not found` }] });
  });

  void it('warns about a span whose parent is missing', async () => {
    const local = new MemoryTraceStore();
    const spans = fixture().spans.filter((s) => s.traceId === FAILING_TRACE && s.serviceName !== 'checkout');
    await local.writeSpans(spans);
    const res = await createApp({ reader: local }).request(`/api/traces/${FAILING_TRACE}`);
    const body = (await res.json()) as TracesBody;
    const orphan = body.data[0]!.spans.find((s) => s.operationName === 'POST /charge')!;
    assert.match(orphan.warnings?.[0] ?? '', /invalid parent span IDs=/);
  });
});

void describe('GET /api/traces (search)', () => {
  void it('finds traces by service in a microsecond window (what Grafana sends)', async () => {
    const r = await get<TracesBody>(`/api/traces?service=frontend&${WINDOW}&lookback=custom&limit=20`);
    assert.equal(r.status, 200);
    assertConforms(r.body, '/api/traces');
    assert.deepEqual(ids(r.body), [HEALTHY_TRACE, REFUSED_TRACE, FAILING_TRACE].sort());
    assert.equal(r.body.total, 3);
    // Most recent first.
    assert.deepEqual(r.body.data.map((t) => t.traceID), [REFUSED_TRACE, HEALTHY_TRACE, FAILING_TRACE]);
  });

  void it('reads start/end in seconds, milliseconds, microseconds, nanoseconds or RFC 3339 alike', async () => {
    const expect = [FAILING_TRACE];
    const windows = [
      `start=${S}&end=${S + 1n}`,
      `start=${MS}&end=${MS + 1000n}`,
      `start=${US}&end=${US + 1_000_000n}`,
      `start=${BASE_TIME_NS}&end=${BASE_TIME_NS + 1_000_000_000n}`,
      `start=2023-11-14T22:13:20Z&end=2023-11-14T22:13:21.000Z`,
    ];
    for (const w of windows) {
      const r = await get<TracesBody>(`/api/traces?service=payments&${w}`);
      assert.equal(r.status, 200, w);
      assert.deepEqual(ids(r.body), expect, w);
    }
  });

  void it('defaults to the last hour before now, or lookback', async () => {
    // now is an hour after the fixtures: the default hour ends just after the failing trace starts.
    const r = await get<TracesBody>('/api/traces?service=frontend');
    assert.deepEqual(ids(r.body), [HEALTHY_TRACE, REFUSED_TRACE, FAILING_TRACE].sort());
    const short = await get<TracesBody>('/api/traces?service=frontend&lookback=45m');
    assert.deepEqual(ids(short.body), [REFUSED_TRACE]);
    const days = await get<TracesBody>('/api/traces?service=frontend&lookback=2d');
    assert.equal(days.body.data.length, 3);
  });

  void it('filters by operation, duration and limit', async () => {
    const op = await get<TracesBody>(`/api/traces?service=frontend&operation=GET%20%2Fcart&${WINDOW}`);
    assert.deepEqual(ids(op.body), [REFUSED_TRACE]);
    const slow = await get<TracesBody>(`/api/traces?service=frontend&minDuration=100ms&${WINDOW}`);
    assert.deepEqual(ids(slow.body), [FAILING_TRACE]);
    const fast = await get<TracesBody>(`/api/traces?service=frontend&maxDuration=0.05s&${WINDOW}`);
    assert.deepEqual(ids(fast.body), [HEALTHY_TRACE, REFUSED_TRACE].sort());
    const micros = await get<TracesBody>(`/api/traces?service=frontend&minDuration=39000us&maxDuration=41ms&${WINDOW}`);
    assert.deepEqual(ids(micros.body), [HEALTHY_TRACE]);
    const one = await get<TracesBody>(`/api/traces?service=frontend&limit=1&${WINDOW}`);
    assert.deepEqual(ids(one.body), [REFUSED_TRACE]);
  });

  void it('filters by tags given as JSON (Grafana) or as tag=key:value (Jaeger UI)', async () => {
    const json = await get<TracesBody>(`/api/traces?service=payments&tags=${encodeURIComponent('{"http.response.status_code":500}')}&${WINDOW}`);
    assert.deepEqual(ids(json.body), [FAILING_TRACE]);
    const resource = await get<TracesBody>(`/api/traces?tags=${encodeURIComponent('{"k8s.pod.name":"legacy-1"}')}&start=${US}&end=${US + 3_600_000_000n}`);
    assert.deepEqual(ids(resource.body), [SHORT_TRACE]);
    const pairs = await get<TracesBody>(`/api/traces?service=checkout&tag=${encodeURIComponent('mesh.peer.identity:spiffe://cluster.local/ns/shop/sa/frontend')}&${WINDOW}`);
    assert.deepEqual(ids(pairs.body), [FAILING_TRACE]);
  });

  void it('matches tags that the Jaeger view derives from span fields (error=true, span.kind)', async () => {
    const errors = await get<TracesBody>(`/api/traces?service=frontend&tags=${encodeURIComponent('{"error":"true"}')}&${WINDOW}`);
    assert.deepEqual(ids(errors.body), [FAILING_TRACE, REFUSED_TRACE].sort());
    const refusedOnly = await get<TracesBody>(`/api/traces?service=frontend&tags=${encodeURIComponent('{"error":"true","mesh.error.code":"CONNECTION_REFUSED"}')}&${WINDOW}`);
    assert.deepEqual(ids(refusedOnly.body), [REFUSED_TRACE]);
    const ok = await get<TracesBody>(`/api/traces?service=frontend&tags=${encodeURIComponent('{"otel.status_code":"OK","span.kind":"server"}')}&${WINDOW}`);
    assert.deepEqual(ids(ok.body), [HEALTHY_TRACE]);
  });

  void it('fetches traces by repeated traceID', async () => {
    const r = await get<TracesBody>(`/api/traces?traceID=${FAILING_TRACE}&traceID=${HEALTHY_TRACE}&traceID=${'cd'.repeat(16)}`);
    assert.deepEqual(ids(r.body), [FAILING_TRACE, HEALTHY_TRACE].sort());
    assert.deepEqual(r.body.errors, [{ code: 404, msg: 'trace not found', traceID: 'cd'.repeat(16) }]);
    assertConforms(r.body, '/api/traces');
  });

  void it('treats SQL-looking values as plain strings', async () => {
    const r = await get<TracesBody>(`/api/traces?service=${encodeURIComponent("frontend' OR 1=1 --")}&operation=${encodeURIComponent('"; DROP TABLE spans; --')}&${WINDOW}`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.data, []);
  });

  void it('answers 400, never 500, to hostile parameters', async () => {
    const cases: [string, RegExp][] = [
      ['limit=100000', /^limit: must be at most 1500/],
      ['limit=0', /^limit: must be at least 1/],
      ['limit=-5', /^limit: must be a whole number/],
      ['limit=1e3', /^limit: must be a whole number/],
      ['limit=99999999999999999999', /^limit: must be a whole number/],
      ['tags=not%20json', /^tags: must be a JSON object/],
      ['tags=%5B1%2C2%5D', /^tags: must be a JSON object/],
      ['tags=null', /^tags: must be a JSON object/],
      [`tags=${encodeURIComponent('{"a":{"b":1}}')}`, /^tags: the value of "a" must be a string/],
      [`tags=${encodeURIComponent('{"":"x"}')}`, /^tags: keys must be 1 to 256 characters/],
      [`tags=${encodeURIComponent(JSON.stringify(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'v']))))}`, /^tags: at most 32 tags/],
      ['tag=novalue', /^tag: must look like key:value/],
      ['minDuration=-1s', /^minDuration: must not be negative/],
      ['minDuration=10', /^minDuration: must be a duration such as 1.2s/],
      ['maxDuration=fast', /^maxDuration: must be a duration/],
      ['minDuration=2s&maxDuration=1s', /minDuration must not be greater than maxDuration/],
      ['start=yesterday', /^start: must be a Unix time/],
      ['start=-1', /^start: must not be negative/],
      ['end=99999999999999999999999', /^end: must be a Unix time/],
      [`start=${US + 10n}&end=${US}`, /start must not be after end/],
      ['lookback=forever', /^lookback: must be a duration/],
      [`service=${'x'.repeat(5000)}`, /^service: must be at most 1024 characters/],
      ['traceID=zz', /trace id must be 1 to 32 hexadecimal characters/],
    ];
    for (const [qs, msg] of cases) {
      const r = await get<JaegerResponse<null>>(`/api/traces?service=frontend&${qs}`.replace('service=frontend&service=', 'service='));
      assert.equal(r.status, 400, qs);
      assert.equal(r.body.data, null, qs);
      assert.equal(r.body.errors?.[0]?.code, 400, qs);
      assert.match(r.body.errors?.[0]?.msg ?? '', msg, qs);
    }
  });
});

void describe('GET /api/dependencies', () => {
  void it('sums call counts per caller → callee in the window (endTs and lookback in ms, as Grafana sends)', async () => {
    const r = await get<JaegerResponse<unknown[]>>(`/api/dependencies?endTs=${MS + 3_600_000n}&lookback=${3_600_000}`);
    assert.equal(r.status, 200);
    assertConforms(r.body, '/api/dependencies');
    assert.deepEqual(r.body.data, [
      { parent: 'checkout', child: 'payments', callCount: 4 },
      { parent: 'frontend', child: 'checkout', callCount: 20 },
    ]);
    const narrow = await get<JaegerResponse<unknown[]>>(`/api/dependencies?endTs=${MS + 90_000n}&lookback=1m`);
    assert.deepEqual(narrow.body.data, [
      { parent: 'checkout', child: 'payments', callCount: 4 },
      { parent: 'frontend', child: 'checkout', callCount: 10 },
    ]);
    const bad = await get<JaegerResponse<null>>('/api/dependencies?endTs=abc');
    assert.equal(bad.status, 400);
  });
});

void describe('storage failures', () => {
  const failing = (err: () => Error): TraceReader => ({
    getTrace: () => Promise.reject(err()),
    getTraces: () => Promise.reject(err()),
    findTraceIds: () => Promise.reject(err()),
    getServices: () => Promise.reject(err()),
    getOperations: () => Promise.reject(err()),
    getEdges: () => Promise.reject(err()),
    getTraceLogs: () => Promise.reject(err()),
  });

  void it('answers 503 when storage is unavailable', async () => {
    const down = createApp({ reader: failing(() => new TracemeshError('CLICKHOUSE_UNAVAILABLE', 'connect ECONNREFUSED 127.0.0.1:8123')) });
    const res = await down.request('/api/services');
    assert.equal(res.status, 503);
    const body = (await res.json()) as JaegerResponse<null>;
    assert.match(body.errors?.[0]?.msg ?? '', /trace storage is unavailable/);
  });

  void it('answers 500 without leaking internals for an unexpected error', async () => {
    const broken = createApp({ reader: failing(() => new Error('secret internal detail')) });
    const res = await broken.request(`/api/traces/${FAILING_TRACE}`);
    assert.equal(res.status, 500);
    const text = await res.text();
    assert.doesNotMatch(text, /secret/);
    assert.match(text, /internal error/);
  });

  void it('maps a storage rejection of the request to 400', async () => {
    const picky = createApp({ reader: failing(() => new TracemeshError('INVALID_QUERY', 'limit must be a whole number from 1 to 10000')) });
    const res = await picky.request('/api/traces?service=a');
    assert.equal(res.status, 400);
  });
});
