// Interop: the real OpenTelemetry JS SDK exporters (OTLP/gRPC, OTLP/HTTP protobuf and OTLP/HTTP
// JSON, for traces and logs) send to a collector on port 0, which writes to real ClickHouse;
// what the SDK sent must come back from storage's reader with every attribute and its type.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type SpanContext } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { OTLPLogExporter as GrpcLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPLogExporter as JsonLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, SimpleLogRecordProcessor, type LogRecordExporter } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { startCollector, type Collector } from '../collector/collector.ts';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import type { Attribute, EdgeRecord, LogRecord, SpanRecord, TraceWriter } from '../storage/model.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { Gate } from '../collector/testing/memory-writer.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';

let db: TestDatabase;
let client: StorageClient;
let writer: ClickHouseTraceWriter;
let reader: ClickHouseTraceReader;
let collector: Collector;

before(async () => {
  db = await createTestDatabase();
  client = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(client);
  writer = new ClickHouseTraceWriter(client);
  reader = new ClickHouseTraceReader(client);
  collector = await startCollector({ batchTimeoutMs: 50 }, { writer });
});

after(async () => {
  await collector?.close();
  await writer?.close();
  await client?.close();
  await db?.drop();
});

const grpcUrl = (): string => `http://127.0.0.1:${collector.grpcPort}`;
const httpUrl = (signal: 'traces' | 'logs'): string => `http://127.0.0.1:${collector.httpPort}/v1/${signal}`;

const traceExporters: [string, () => SpanExporter][] = [
  ['grpc', () => new GrpcTraceExporter({ url: grpcUrl() })],
  ['grpc+gzip', () => new GrpcTraceExporter({ url: grpcUrl(), compression: CompressionAlgorithm.GZIP })],
  ['http/protobuf', () => new ProtoTraceExporter({ url: httpUrl('traces') })],
  ['http/protobuf+gzip', () => new ProtoTraceExporter({ url: httpUrl('traces'), compression: CompressionAlgorithm.GZIP })],
  ['http/json', () => new JsonTraceExporter({ url: httpUrl('traces') })],
];

const logExporters: [string, () => LogRecordExporter][] = [
  ['grpc', () => new GrpcLogExporter({ url: grpcUrl() })],
  ['http/protobuf', () => new ProtoLogExporter({ url: httpUrl('logs') })],
  ['http/json', () => new JsonLogExporter({ url: httpUrl('logs') })],
];

const LINKED: SpanContext = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED };

function attr(attrs: readonly Attribute[], key: string): Pick<Attribute, 'type' | 'value'> | undefined {
  const a = attrs.find((x) => x.key === key);
  return a && { type: a.type, value: a.value };
}

function fetchTrace(traceId: string, count = 1): Promise<SpanRecord[]> {
  return eventually(() => reader.getTrace(traceId), (spans) => spans.length >= count, 20_000, `trace ${traceId} in ClickHouse`);
}

void describe('OpenTelemetry SDK trace exporters → collector → ClickHouse', () => {
  for (const [name, makeExporter] of traceExporters) {
    void it(`${name}: the span comes back with all attributes and their types, its event and its link`, async () => {
      const service = `interop-${name.replace(/[^a-z]/g, '-')}`;
      const provider = new BasicTracerProvider({
        resource: defaultResource().merge(resourceFromAttributes({ 'service.name': service, 'k8s.pod.name': `${service}-0` })),
        spanProcessors: [new SimpleSpanProcessor(makeExporter())],
      });
      const tracer = provider.getTracer('interop-test', '1.2.3');
      const span = tracer.startSpan('GET /interop', {
        kind: SpanKind.CLIENT,
        attributes: {
          'str.attr': 'hello "world"',
          'int.attr': 42,
          'neg.attr': -7,
          'big.attr': 9007199254740991,
          'double.attr': 3.25,
          'bool.attr': true,
          'strings.attr': ['a', 'b'],
          'ints.attr': [1, 2, 3],
          'bools.attr': [true, false],
        },
        links: [{ context: LINKED, attributes: { 'link.attr': 'l' } }],
      });
      span.addEvent('cache-miss', { 'event.attr': 5 });
      span.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream failed' });
      span.end();
      const { traceId, spanId } = span.spanContext();
      await provider.forceFlush();
      await provider.shutdown();

      const [got] = await fetchTrace(traceId);
      assert.ok(got);
      assert.equal(got.spanId, spanId);
      assert.equal(got.parentSpanId, '');
      assert.equal(got.name, 'GET /interop');
      assert.equal(got.kind, 'CLIENT');
      assert.equal(got.statusCode, 'ERROR');
      assert.equal(got.statusMessage, 'upstream failed');
      assert.equal(got.serviceName, service);
      assert.equal(got.scopeName, 'interop-test');
      assert.equal(got.scopeVersion, '1.2.3');
      assert.ok(got.durationNano >= 0n);
      assert.deepEqual(attr(got.resourceAttributes, 'k8s.pod.name'), { type: 'string', value: `${service}-0` });
      assert.deepEqual(attr(got.resourceAttributes, 'telemetry.sdk.language'), { type: 'string', value: 'nodejs' });
      assert.deepEqual(attr(got.attributes, 'str.attr'), { type: 'string', value: 'hello "world"' });
      assert.deepEqual(attr(got.attributes, 'int.attr'), { type: 'int', value: '42' });
      assert.deepEqual(attr(got.attributes, 'neg.attr'), { type: 'int', value: '-7' });
      assert.deepEqual(attr(got.attributes, 'big.attr'), { type: 'int', value: '9007199254740991' });
      assert.deepEqual(attr(got.attributes, 'double.attr'), { type: 'double', value: '3.25' });
      assert.deepEqual(attr(got.attributes, 'bool.attr'), { type: 'bool', value: 'true' });
      assert.deepEqual(attr(got.attributes, 'strings.attr'), { type: 'json', value: '["a","b"]' });
      assert.deepEqual(attr(got.attributes, 'ints.attr'), { type: 'json', value: '[1,2,3]' });
      assert.deepEqual(attr(got.attributes, 'bools.attr'), { type: 'json', value: '[true,false]' });
      assert.equal(got.events.length, 1);
      assert.equal(got.events[0]!.name, 'cache-miss');
      assert.ok(got.events[0]!.timeUnixNano >= got.startTimeUnixNano);
      assert.deepEqual(got.events[0]!.attributes, [{ key: 'event.attr', type: 'int', value: '5' }]);
      assert.deepEqual(got.links, [{ traceId: LINKED.traceId, spanId: LINKED.spanId, traceState: '', attributes: [{ key: 'link.attr', type: 'string', value: 'l' }] }]);
    });
  }

  void it('a batch of spans through the BatchSpanProcessor arrives complete, parent links intact', async () => {
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'interop-batch' }),
      spanProcessors: [new BatchSpanProcessor(new ProtoTraceExporter({ url: httpUrl('traces') }), { maxExportBatchSize: 64 })],
    });
    const tracer = provider.getTracer('batch');
    const root = tracer.startSpan('root', { kind: SpanKind.SERVER });
    const ctx = trace.setSpan(ROOT_CONTEXT, root);
    for (let i = 0; i < 200; i++) tracer.startSpan(`child-${i}`, { attributes: { i } }, ctx).end();
    root.end();
    await provider.forceFlush();
    await provider.shutdown();
    const spans = await fetchTrace(root.spanContext().traceId, 201);
    assert.equal(spans.length, 201);
    const rootId = root.spanContext().spanId;
    assert.equal(spans.filter((s) => s.parentSpanId === rootId).length, 200);
  });

  void it('CLIENT and SERVER spans of two services become a service-graph edge in ClickHouse', async () => {
    const make = (service: string) =>
      new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': service }), spanProcessors: [new SimpleSpanProcessor(new GrpcTraceExporter({ url: grpcUrl() }))] });
    const front = make('interop-frontend');
    const cart = make('interop-cart');
    const clientSpan = front.getTracer('t').startSpan('GET cart', { kind: SpanKind.CLIENT });
    const serverSpan = cart.getTracer('t').startSpan('GET /cart', { kind: SpanKind.SERVER }, trace.setSpan(ROOT_CONTEXT, clientSpan));
    serverSpan.setStatus({ code: SpanStatusCode.ERROR });
    serverSpan.end();
    clientSpan.end();
    await Promise.all([front.forceFlush(), cart.forceFlush()]);
    await Promise.all([front.shutdown(), cart.shutdown()]);
    await fetchTrace(clientSpan.spanContext().traceId, 2);
    await collector.forceFlush();
    const now = BigInt(Date.now()) * 1_000_000n;
    const edges = await eventually(
      () => reader.getEdges(now - 3_600_000_000_000n, now + 60_000_000_000n),
      (e) => e.some((x) => x.clientService === 'interop-frontend'),
      20_000,
      'the frontend → cart edge',
    );
    const edge = edges.find((x) => x.clientService === 'interop-frontend')!;
    assert.equal(edge.serverService, 'interop-cart');
    assert.equal(edge.calls, 1);
    assert.equal(edge.errors, 1);
  });
});

void describe('OpenTelemetry SDK log exporters → collector → ClickHouse', () => {
  for (const [name, makeExporter] of logExporters) {
    void it(`${name}: the log record comes back with body, severity, attributes and trace context`, async () => {
      const service = `interop-logs-${name.replace(/[^a-z]/g, '-')}`;
      const provider = new LoggerProvider({
        resource: resourceFromAttributes({ 'service.name': service }),
        processors: [new SimpleLogRecordProcessor({ exporter: makeExporter() })],
      });
      // The reader finds logs through the trace index, so the trace needs a span too.
      const tracerProvider = new BasicTracerProvider({
        resource: resourceFromAttributes({ 'service.name': service }),
        spanProcessors: [new SimpleSpanProcessor(new GrpcTraceExporter({ url: grpcUrl() }))],
      });
      const span = tracerProvider.getTracer('t').startSpan('logged');
      provider.getLogger('interop-logger', '2.0.0').emit({
        severityNumber: SeverityNumber.WARN,
        severityText: 'WARN',
        body: 'disk almost full',
        attributes: { 'disk.free': 12, 'disk.path': '/var', ratio: 0.5, critical: false },
        context: trace.setSpan(ROOT_CONTEXT, span),
      });
      span.end();
      await Promise.all([provider.forceFlush(), tracerProvider.forceFlush()]);
      await Promise.all([provider.shutdown(), tracerProvider.shutdown()]);
      const { traceId, spanId } = span.spanContext();
      const logs = await eventually(() => reader.getTraceLogs(traceId), (l) => l.length >= 1, 20_000, `logs of ${traceId}`);
      const log = logs[0]!;
      assert.equal(log.body, 'disk almost full');
      assert.equal(log.severityNumber, SeverityNumber.WARN);
      assert.equal(log.severityText, 'WARN');
      assert.equal(log.serviceName, service);
      assert.equal(log.scopeName, 'interop-logger');
      assert.equal(log.traceId, traceId);
      assert.equal(log.spanId, spanId);
      assert.ok(log.timeUnixNano > 0n && log.observedTimeUnixNano > 0n);
      assert.deepEqual(attr(log.attributes, 'disk.free'), { type: 'int', value: '12' });
      assert.deepEqual(attr(log.attributes, 'disk.path'), { type: 'string', value: '/var' });
      assert.deepEqual(attr(log.attributes, 'ratio'), { type: 'double', value: '0.5' });
      assert.deepEqual(attr(log.attributes, 'critical'), { type: 'bool', value: 'false' });
    });
  }
});

/** Holds span writes until the gate opens, then writes to ClickHouse. */
class GatedWriter implements TraceWriter {
  readonly gate = new Gate();
  readonly #inner: TraceWriter;
  constructor(inner: TraceWriter) {
    this.#inner = inner;
  }
  async writeSpans(spans: readonly SpanRecord[]): Promise<void> {
    await this.gate.wait();
    await this.#inner.writeSpans(spans);
  }
  writeLogs(logs: readonly LogRecord[]): Promise<void> {
    return this.#inner.writeLogs(logs);
  }
  writeEdges(edges: readonly EdgeRecord[]): Promise<void> {
    return this.#inner.writeEdges(edges);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

void describe('backpressure with a real SDK exporter', () => {
  void it('http/protobuf: a 429 with Retry-After makes the exporter retry, and the span is stored once storage catches up', async () => {
    const gated = new GatedWriter(writer);
    const small = await startCollector({ queueSize: 1, batchSize: 1, batchTimeoutMs: 10, servicegraph: { enabled: false } }, { writer: gated });
    try {
      const provider = new BasicTracerProvider({
        resource: resourceFromAttributes({ 'service.name': 'interop-backpressure' }),
        spanProcessors: [new SimpleSpanProcessor(new ProtoTraceExporter({ url: `http://127.0.0.1:${small.httpPort}/v1/traces` }))],
      });
      const tracer = provider.getTracer('bp');
      const first = tracer.startSpan('first');
      first.end();
      await eventually(async () => gated.gate.held, (n) => n === 1, 10_000, 'the first write to be held');
      const second = tracer.startSpan('second');
      second.end();
      const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${small.adminPort}/metrics`)).text();
      await eventually(metrics, (m) => /tracemesh_collector_rejected_spans_total\{reason="queue_full"\} [1-9]/.test(m), 10_000, 'a 429 to the exporter');
      gated.gate.open();
      await provider.forceFlush();
      await provider.shutdown();
      await fetchTrace(first.spanContext().traceId);
      const [stored] = await fetchTrace(second.spanContext().traceId);
      assert.equal(stored!.name, 'second');
    } finally {
      await small.close();
    }
  });
});
