// Jaeger API v3 end to end: the real OpenTelemetry SDK exports spans (OTLP/HTTP JSON) to a
// collector on port 0, which writes to real ClickHouse; the query API's /api/v3 routes must
// give back what the SDK sent, as OTLP JSON in Jaeger's `{result: …}` wrapper, with Jaeger's
// parameter names (camelCase, and the snake_case aliases its gateway still takes) and its
// error shape. Every response is checked against the v3 schemas of the served OpenAPI
// document, which follow Jaeger's published query_service OpenAPI document.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type SpanContext } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startCollector, type Collector } from '../collector/collector.ts';
import { createQueryApp } from '../query-api/app.ts';
import { MemoryTraceStore } from '../query-api/memory-store.ts';
import type { OtlpAnyValue, OtlpSpan, OtlpTracesData } from '../query-api/jaeger/otlp.ts';
import { checkSchema, responseSchema } from '../query-api/testing/schema-check.ts';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';

let db: TestDatabase;
let client: StorageClient;
let writer: ClickHouseTraceWriter;
let collector: Collector;
let app: ReturnType<typeof createQueryApp>['app'];
const captured = new InMemorySpanExporter();
let rootSpan: ReadableSpan;
let childSpan: ReadableSpan;
let cartSpan: ReadableSpan;
let traceId: string;
const LINKED: SpanContext = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED };
const T0 = new Date(Date.now() - 60_000).toISOString();
const T1 = new Date(Date.now() + 600_000).toISOString();
const WINDOW = `query.startTimeMin=${T0}&query.startTimeMax=${T1}`;

function provider(service: string, pod: string): BasicTracerProvider {
  return new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service, 'k8s.pod.name': pod }),
    spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `http://127.0.0.1:${collector.httpPort}/v1/traces` })), new SimpleSpanProcessor(captured)],
  });
}

before(async () => {
  db = await createTestDatabase();
  client = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(client);
  writer = new ClickHouseTraceWriter(client);
  collector = await startCollector({ batchTimeoutMs: 50, grpcPort: 0, httpPort: 0, adminPort: 0 }, { writer });
  const reader = new ClickHouseTraceReader(client);
  app = createQueryApp({ reader, ready: () => client.ping() }).app;

  const shop = provider('v3-shop', 'shop-1');
  const cart = provider('v3-cart', 'cart-7');
  const root = shop.getTracer('v3-test', '4.5.6').startSpan('GET /basket', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200 } });
  const rootCtx = trace.setSpan(ROOT_CONTEXT, root);
  const child = shop.getTracer('v3-test', '4.5.6').startSpan('call cart', {
    kind: SpanKind.CLIENT,
    attributes: { 'big.attr': 9007199254740991, 'double.attr': 2.5, 'bool.attr': false, 'strings.attr': ['a', 'b'], 'ints.attr': [1, 2] },
    links: [{ context: LINKED, attributes: { 'link.attr': 'l' } }],
  }, rootCtx);
  const server = cart.getTracer('cart-lib').startSpan('POST /cart', { kind: SpanKind.SERVER, attributes: { 'http.response.status_code': 503 } }, trace.setSpan(ROOT_CONTEXT, child));
  server.addEvent('exception', { 'exception.message': 'cart store is read-only' });
  server.setStatus({ code: SpanStatusCode.ERROR, message: 'cart store is read-only' });
  await new Promise((r) => setTimeout(r, 5)); // a measurable duration for durationMin
  server.end();
  child.end();
  root.end();
  await Promise.all([shop.forceFlush(), cart.forceFlush()]);
  // Before shutdown, which empties the in-memory exporter.
  const spans = captured.getFinishedSpans();
  await Promise.all([shop.shutdown(), cart.shutdown()]);
  rootSpan = spans.find((s) => s.name === 'GET /basket')!;
  childSpan = spans.find((s) => s.name === 'call cart')!;
  cartSpan = spans.find((s) => s.name === 'POST /cart')!;
  traceId = root.spanContext().traceId;
  await eventually(() => reader.getTrace(traceId), (s) => s.length === 3, 20_000, 'the trace in ClickHouse');
});

after(async () => {
  await collector?.close();
  await writer?.close();
  await client?.close();
  await db?.drop();
});

async function get<T = unknown>(path: string): Promise<{ status: number; body: T }> {
  const res = await app.request(path);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/, path);
  return { status: res.status, body: (await res.json()) as T };
}

function conforms(body: unknown, route: string, status = '200'): void {
  assert.deepEqual(checkSchema(body, responseSchema(route, status)), [], `${route} ${status}`);
}

type Wrapped = { result: OtlpTracesData };

function allSpans(data: OtlpTracesData): { span: OtlpSpan; resource: Record<string, OtlpAnyValue>; scope: { name?: string; version?: string } }[] {
  return data.resourceSpans.flatMap((rs) => {
    const resource = Object.fromEntries(rs.resource.attributes.map((a) => [a.key, a.value]));
    return rs.scopeSpans.flatMap((ss) => ss.spans.map((span) => ({ span, resource, scope: ss.scope })));
  });
}

function attrs(s: OtlpSpan): Record<string, OtlpAnyValue> {
  return Object.fromEntries(s.attributes.map((a) => [a.key, a.value]));
}

const nanos = (t: readonly [number, number]): string => (BigInt(t[0]) * 1_000_000_000n + BigInt(t[1])).toString();

void describe('Jaeger API v3: services and operations', () => {
  void it('lists services as {services}', async () => {
    const r = await get<{ services: string[] }>('/api/v3/services');
    assert.equal(r.status, 200);
    conforms(r.body, '/api/v3/services');
    assert.deepEqual(r.body.services, ['v3-cart', 'v3-shop']);
  });

  void it('lists operations with span kinds, filtered by spanKind or span_kind', async () => {
    const all = await get<{ operations: { name: string; spanKind: string }[] }>('/api/v3/operations?service=v3-shop');
    assert.equal(all.status, 200);
    conforms(all.body, '/api/v3/operations');
    assert.deepEqual(all.body.operations.map((o) => `${o.name}:${o.spanKind}`).sort(), ['GET /basket:server', 'call cart:client']);
    const camel = await get<{ operations: { name: string }[] }>('/api/v3/operations?service=v3-shop&spanKind=client');
    assert.deepEqual(camel.body.operations, [{ name: 'call cart', spanKind: 'client' }]);
    const snake = await get<{ operations: { name: string }[] }>('/api/v3/operations?service=v3-shop&span_kind=server');
    assert.deepEqual(snake.body.operations, [{ name: 'GET /basket', spanKind: 'server' }]);
  });

  void it('refuses a missing service and an unknown kind in the gateway error shape', async () => {
    const missing = await get<{ error: { httpCode: number; message: string } }>('/api/v3/operations');
    assert.equal(missing.status, 400);
    conforms(missing.body, '/api/v3/operations', '400');
    assert.deepEqual(missing.body, { error: { httpCode: 400, message: 'service is required' } });
    const kind = await get<{ error: { message: string } }>('/api/v3/operations?service=v3-shop&spanKind=sideways');
    assert.equal(kind.status, 400);
    assert.match(kind.body.error.message, /spanKind: must be one of server, client/);
  });
});

void describe('Jaeger API v3: trace by id', () => {
  void it('returns what the SDK exported, as OTLP JSON in {result}', async () => {
    const r = await get<Wrapped>(`/api/v3/traces/${traceId}`);
    assert.equal(r.status, 200);
    conforms(r.body, '/api/v3/traces/{traceId}');
    const spans = allSpans(r.body.result);
    assert.equal(spans.length, 3);
    assert.equal(r.body.result.resourceSpans.length, 2, 'one resourceSpans per resource');
    for (const sent of [rootSpan, childSpan, cartSpan]) {
      const got = spans.find((s) => s.span.spanId === sent.spanContext().spanId);
      assert.ok(got, sent.name);
      assert.equal(got.span.traceId, traceId);
      assert.equal(got.span.name, sent.name);
      assert.equal(got.span.kind, sent.kind + 1, 'OTLP numbers kinds one above the API enum');
      assert.equal(got.span.startTimeUnixNano, nanos(sent.startTime));
      assert.equal(got.span.endTimeUnixNano, nanos(sent.endTime));
      assert.equal(got.span.parentSpanId, sent.parentSpanContext?.spanId);
      assert.deepEqual(got.resource['service.name'], { stringValue: sent.resource.attributes['service.name'] });
      assert.deepEqual(got.resource['k8s.pod.name'], { stringValue: sent.resource.attributes['k8s.pod.name'] });
      assert.equal(got.scope.name, sent.instrumentationScope.name);
      assert.equal(got.scope.version, sent.instrumentationScope.version);
    }
    const child = spans.find((s) => s.span.name === 'call cart')!.span;
    assert.deepEqual(attrs(child), {
      'big.attr': { intValue: '9007199254740991' },
      'double.attr': { doubleValue: 2.5 },
      'bool.attr': { boolValue: false },
      'strings.attr': { arrayValue: { values: [{ stringValue: 'a' }, { stringValue: 'b' }] } },
      'ints.attr': { arrayValue: { values: [{ intValue: '1' }, { intValue: '2' }] } },
    });
    assert.deepEqual(child.links, [{ traceId: LINKED.traceId, spanId: LINKED.spanId, attributes: [{ key: 'link.attr', value: { stringValue: 'l' } }] }]);
    assert.deepEqual(child.status, {});
    const cart = spans.find((s) => s.span.name === 'POST /cart')!.span;
    assert.deepEqual(cart.status, { code: 2, message: 'cart store is read-only' });
    assert.deepEqual(attrs(cart)['http.response.status_code'], { intValue: '503' });
    assert.equal(cart.events.length, 1);
    assert.equal(cart.events[0]!.name, 'exception');
    assert.equal(cart.events[0]!.timeUnixNano, nanos(cartSpan.events[0]!.time));
    assert.deepEqual(cart.events[0]!.attributes, [{ key: 'exception.message', value: { stringValue: 'cart store is read-only' } }]);
  });

  void it('takes startTime/endTime (and the snake_case names) as hints, and checks them', async () => {
    for (const q of [`startTime=${T0}&endTime=${T1}`, `start_time=${T0}&end_time=${T1}`, 'rawTraces=true', 'raw_traces=false']) {
      const r = await get<Wrapped>(`/api/v3/traces/${traceId}?${q}`);
      assert.equal(r.status, 200, q);
      assert.equal(allSpans(r.body.result).length, 3, q);
    }
    const bad = await get<{ error: { httpCode: number; message: string } }>(`/api/v3/traces/${traceId}?startTime=yesterday`);
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /^malformed parameter startTime: /);
    const raw = await get<{ error: { message: string } }>(`/api/v3/traces/${traceId}?rawTraces=maybe`);
    assert.equal(raw.status, 400);
  });

  void it('answers an unknown id 404 and a malformed one 400, in the gateway error shape', async () => {
    const missing = await get(`/api/v3/traces/${'ab'.repeat(16)}`);
    assert.equal(missing.status, 404);
    conforms(missing.body, '/api/v3/traces/{traceId}', '404');
    assert.deepEqual(missing.body, { error: { httpCode: 404, message: 'No traces found' } });
    const bad = await get<{ error: { httpCode: number; message: string } }>('/api/v3/traces/not-hex');
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /^malformed parameter trace_id: trace id must be 1 to 32 hexadecimal characters/);
  });

  void it('keeps exact duplicates only with rawTraces', async () => {
    // ClickHouse keeps one copy of a span exported twice; a store that keeps both (the
    // in-memory reference store) shows what rawTraces changes.
    const [dup] = (await new ClickHouseTraceReader(client).getTrace(traceId)).filter((s) => s.name === 'call cart');
    const store = new MemoryTraceStore();
    await store.writeSpans([dup!, dup!]);
    const mem = createQueryApp({ reader: store }).app;
    const adjusted = (await (await mem.request(`/api/v3/traces/${traceId}`)).json()) as Wrapped;
    assert.equal(allSpans(adjusted.result).length, 1);
    const raw = (await (await mem.request(`/api/v3/traces/${traceId}?rawTraces=true`)).json()) as Wrapped;
    assert.equal(allSpans(raw.result).length, 2);
  });
});

void describe('Jaeger API v3: search', () => {
  const ids = (b: Wrapped): string[] => [...new Set(allSpans(b.result).map((s) => s.span.traceId))];

  void it('finds traces by service, operation, attributes and duration (camelCase names)', async () => {
    const cases = [
      `query.serviceName=v3-cart`,
      `query.serviceName=v3-shop&query.operationName=${encodeURIComponent('call cart')}`,
      `query.attributes=${encodeURIComponent('{"http.response.status_code":"503"}')}`,
      `query.serviceName=v3-cart&query.durationMin=1ms&query.searchDepth=5`,
    ];
    for (const q of cases) {
      const r = await get<Wrapped>(`/api/v3/traces?${WINDOW}&${q}`);
      assert.equal(r.status, 200, q);
      conforms(r.body, '/api/v3/traces');
      assert.deepEqual(ids(r.body), [traceId], q);
      assert.equal(allSpans(r.body.result).length, 3, `${q}: whole traces, every span`);
    }
  });

  void it('takes Jaeger\'s snake_case names too', async () => {
    const q = `query.service_name=v3-cart&query.operation_name=${encodeURIComponent('POST /cart')}&query.start_time_min=${T0}&query.start_time_max=${T1}&query.duration_min=1ms&query.search_depth=3&query.raw_traces=false`;
    const r = await get<Wrapped>(`/api/v3/traces?${q}`);
    assert.equal(r.status, 200);
    assert.deepEqual(ids(r.body), [traceId]);
  });

  void it('answers no match with Jaeger\'s 404 "No traces found"', async () => {
    for (const q of [`query.serviceName=v3-cart&query.durationMax=1us`, `query.attributes=${encodeURIComponent('{"http.response.status_code":"418"}')}`, 'query.serviceName=nobody']) {
      const r = await get(`/api/v3/traces?${WINDOW}&${q}`);
      assert.equal(r.status, 404, q);
      conforms(r.body, '/api/v3/traces', '404');
      assert.deepEqual(r.body, { error: { httpCode: 404, message: 'No traces found' } });
    }
  });

  void it('refuses hostile and malformed parameters with a 400 naming them', async () => {
    const cases: [string, RegExp][] = [
      ['query.serviceName=v3-cart', /query.startTimeMin and query.startTimeMax are required/],
      [`${WINDOW}&query.durationMin=soon`, /^malformed parameter query.durationMin: /],
      [`${WINDOW}&query.duration_max=-1s`, /^malformed parameter query.duration_max: must not be negative/],
      [`${WINDOW}&query.searchDepth=0`, /^malformed parameter query.searchDepth: must be between 1 and 1500/],
      [`${WINDOW}&query.searchDepth=1e9`, /^malformed parameter query.searchDepth: must be a whole number/],
      [`${WINDOW}&query.attributes=%5B1%5D`, /^malformed parameter query.attributes: must be a JSON object/],
      [`${WINDOW}&query.rawTraces=perhaps`, /^malformed parameter query.rawTraces: must be true or false/],
      [`query.startTimeMin=${T1}&query.startTimeMax=${T0}`, /query.startTimeMin must not be after query.startTimeMax/],
      [`${WINDOW}&query.durationMin=2s&query.durationMax=1s`, /query.durationMin must not be greater than query.durationMax/],
      [`${WINDOW}&query.filter=${encodeURIComponent('{"op":"eq","args":[]}')}`, /query.filter \(structured filters\) is not supported/],
      [`${WINDOW}&query.serviceName=${'x'.repeat(2000)}`, /must be at most 1024 characters/],
      [`${WINDOW}&query.serviceName=${'x'.repeat(9000)}`, /must be at most 8192 characters/],
    ];
    for (const [q, want] of cases) {
      const r = await get<{ error: { httpCode: number; message: string } }>(`/api/v3/traces?${q}`);
      assert.equal(r.status, 400, q.slice(0, 80));
      conforms(r.body, '/api/v3/traces', '400');
      assert.match(r.body.error.message, want, q.slice(0, 80));
    }
  });
});
