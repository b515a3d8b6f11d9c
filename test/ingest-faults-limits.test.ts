// Hostile or careless senders against the attribute limits, through real OpenTelemetry SDK
// exporters (protobuf, gRPC and JSON) into real ClickHouse: a 10 MiB attribute value, 100k
// attributes on one span, thousands of events and links. The spans are stored (not refused),
// cut to the limits, marked with otel.dropped_*_count, and every cut is counted by reason.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ROOT_CONTEXT, trace, TraceFlags, type Attributes } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { OTLPLogExporter as ProtoLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { startCollector, type Collector } from '../collector/collector.ts';
import { DEFAULT_ATTRIBUTE_LIMITS } from '../collector/otlp/limits.ts';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import type { Attribute, SpanRecord } from '../storage/model.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';

let db: TestDatabase;
let client: StorageClient;
let writer: ClickHouseTraceWriter;
let reader: ClickHouseTraceReader;
let collector: Collector;
const L = DEFAULT_ATTRIBUTE_LIMITS;

before(async () => {
  db = await createTestDatabase();
  client = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(client);
  writer = new ClickHouseTraceWriter(client);
  reader = new ClickHouseTraceReader(client);
  collector = await startCollector({ batchTimeoutMs: 50, servicegraph: { enabled: false } }, { writer });
});

after(async () => {
  await collector?.close();
  await writer?.close();
  await client?.close();
  await db?.drop();
});

async function metrics(): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${collector.adminPort}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('tracemesh_collector_limited')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** The growth of each limited-metric series across `f`. */
async function counted(f: () => Promise<void>): Promise<Map<string, number>> {
  const before = await metrics();
  await f();
  const after = await metrics();
  const delta = new Map<string, number>();
  for (const [k, v] of after) if (v - (before.get(k) ?? 0) > 0) delta.set(k, v - (before.get(k) ?? 0));
  return delta;
}

const attr = (attrs: readonly Attribute[], key: string): Attribute | undefined => attrs.find((a) => a.key === key);

/** An SDK tracer that does not limit anything itself: the collector's limits are the only ones. */
function unlimitedProvider(service: string, exporter: SpanExporter): BasicTracerProvider {
  return new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service }),
    spanLimits: { attributeCountLimit: 1_000_000, attributeValueLengthLimit: Infinity, eventCountLimit: 1_000_000, linkCountLimit: 1_000_000, attributePerEventCountLimit: 1_000_000, attributePerLinkCountLimit: 1_000_000 },
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
}

async function stored(traceId: string): Promise<SpanRecord> {
  const traces = await eventually(() => reader.getTraces([traceId]), (t) => (t.get(traceId)?.length ?? 0) === 1, 30_000, `trace ${traceId}`);
  return traces.get(traceId)![0]!;
}

const exporters: [string, (c: Collector) => SpanExporter][] = [
  ['http/protobuf', (c) => new ProtoTraceExporter({ url: `http://127.0.0.1:${c.httpPort}/v1/traces`, timeoutMillis: 60_000 })],
  ['grpc', (c) => new GrpcTraceExporter({ url: `http://127.0.0.1:${c.grpcPort}`, timeoutMillis: 60_000 })],
  ['http/json', (c) => new JsonTraceExporter({ url: `http://127.0.0.1:${c.httpPort}/v1/traces`, timeoutMillis: 60_000 })],
];

void describe('attribute limits against real SDK exporters', () => {
  for (const [name, makeExporter] of exporters) {
    void it(`${name}: a 10 MiB value and 100k attributes on one span are cut to the limits, marked and counted`, async () => {
      const provider = unlimitedProvider(`limits-${name}`, makeExporter(collector));
      const attributes: Attributes = { 'huge.value': 'x'.repeat(10 * 1024 * 1024 - 100) + 'é' };
      const many = name === 'http/json' ? 20_000 : 100_000;
      for (let i = 0; i < many; i++) attributes[`a.${i}`] = i;
      let traceId = '';
      const delta = await counted(async () => {
        const span = provider.getTracer('limits').startSpan('hostile', { attributes });
        traceId = span.spanContext().traceId;
        span.end();
        await provider.forceFlush();
        await stored(traceId);
      });
      await provider.shutdown();
      const s = await stored(traceId);
      assert.equal(s.attributes.length, L.maxAttributes + 1, 'the first 128 attributes and the mark');
      const huge = attr(s.attributes, 'huge.value')!;
      assert.equal(huge.type, 'string');
      assert.equal(Buffer.byteLength(huge.value), L.maxValueBytes, 'the value cut to 16 KiB');
      assert.equal(attr(s.attributes, 'otel.dropped_attributes_count')?.value, String(many + 1 - L.maxAttributes));
      assert.equal(delta.get('tracemesh_collector_limited_total{signal="traces",reason="attribute_count"}'), many + 1 - L.maxAttributes);
      assert.equal(delta.get('tracemesh_collector_limited_total{signal="traces",reason="value_length"}'), 1);
      assert.equal(delta.get('tracemesh_collector_limited_items_total{signal="traces"}'), 1);
    });
  }

  void it('events, links, their attributes, keys and a value cut mid-character', async () => {
    const provider = unlimitedProvider('limits-events', new ProtoTraceExporter({ url: `http://127.0.0.1:${collector.httpPort}/v1/traces` }));
    const linkContext = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED };
    const eventAttrs: Attributes = {};
    for (let i = 0; i < 300; i++) eventAttrs[`e.${i}`] = i;
    let traceId = '';
    const delta = await counted(async () => {
      const span = provider.getTracer('limits').startSpan('busy', {
        links: Array.from({ length: 1_000 }, (_, i) => ({ context: linkContext, attributes: i === 0 ? eventAttrs : { i } })),
        attributes: { ['k'.repeat(1_000)]: 'long key', cut: 'a'.repeat(L.maxValueBytes - 1) + '€', list: Array.from({ length: 10_000 }, (_, i) => `item-${i}`) },
      });
      span.addEvent('first', eventAttrs);
      for (let i = 1; i < 2_000; i++) span.addEvent(`event ${i}`);
      traceId = span.spanContext().traceId;
      span.end();
      await provider.forceFlush();
      await stored(traceId);
    });
    await provider.shutdown();
    const s = await stored(traceId);
    assert.equal(s.events.length, L.maxEvents);
    assert.equal(s.links.length, L.maxLinks);
    assert.equal(attr(s.attributes, 'otel.dropped_events_count')?.value, String(2_000 - L.maxEvents));
    assert.equal(attr(s.attributes, 'otel.dropped_links_count')?.value, String(1_000 - L.maxLinks));
    assert.equal(s.events[0]!.attributes.length, L.maxEventAttributes + 1);
    assert.equal(attr(s.events[0]!.attributes, 'otel.dropped_attributes_count')?.value, String(300 - L.maxEventAttributes));
    assert.equal(s.links[0]!.attributes.length, L.maxEventAttributes + 1);
    assert.equal(attr(s.attributes, 'k'.repeat(L.maxKeyBytes))?.value, 'long key', 'the key cut to 256 bytes');
    // '€' is 3 bytes: it does not fit in the last byte, so it goes whole.
    assert.equal(attr(s.attributes, 'cut')?.value, 'a'.repeat(L.maxValueBytes - 1));
    const list = attr(s.attributes, 'list')!;
    assert.equal(list.type, 'string', 'an array cut short is no longer JSON');
    assert.ok(list.value.startsWith('["item-0","item-1"') && Buffer.byteLength(list.value) === L.maxValueBytes);
    const r = (reason: string): number | undefined => delta.get(`tracemesh_collector_limited_total{signal="traces",reason="${reason}"}`);
    assert.equal(r('event_count'), 2_000 - L.maxEvents);
    assert.equal(r('link_count'), 1_000 - L.maxLinks);
    assert.equal(r('event_attribute_count'), 300 - L.maxEventAttributes);
    assert.equal(r('link_attribute_count'), 300 - L.maxEventAttributes);
    assert.equal(r('key_length'), 1);
    assert.equal(r('value_length'), 2);
  });

  void it('what the SDK dropped itself is added to the mark; the collector keeps what fits', async () => {
    // The SDK's own defaults: 128 attributes. It sends 128 and dropped_attributes_count 72.
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'limits-sdk' }),
      spanProcessors: [new SimpleSpanProcessor(new ProtoTraceExporter({ url: `http://127.0.0.1:${collector.httpPort}/v1/traces` }))],
    });
    const attributes: Attributes = {};
    for (let i = 0; i < 200; i++) attributes[`a.${i}`] = i;
    const span = provider.getTracer('limits').startSpan('sdk-limited', { attributes });
    span.end();
    await provider.forceFlush();
    await provider.shutdown();
    const s = await stored(span.spanContext().traceId);
    assert.equal(s.attributes.length, 129);
    assert.equal(attr(s.attributes, 'otel.dropped_attributes_count')?.value, '72');
  });

  void it('logs: attributes per record and resource attributes are limited and counted', async () => {
    const resource: Attributes = { 'service.name': 'limits-logs' };
    for (let i = 0; i < 200; i++) resource[`r.${i}`] = i;
    const provider = new LoggerProvider({
      resource: resourceFromAttributes(resource),
      logRecordLimits: { attributeCountLimit: 1_000_000, attributeValueLengthLimit: Infinity },
      processors: [new SimpleLogRecordProcessor({ exporter: new ProtoLogExporter({ url: `http://127.0.0.1:${collector.httpPort}/v1/logs` }) })],
    });
    const tracer = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'limits-logs' }),
      spanProcessors: [new SimpleSpanProcessor(new ProtoTraceExporter({ url: `http://127.0.0.1:${collector.httpPort}/v1/traces` }))],
    });
    const attributes: Attributes = { big: 'y'.repeat(100_000) };
    for (let i = 0; i < 1_000; i++) attributes[`l.${i}`] = i;
    const span = tracer.getTracer('t').startSpan('logged');
    const delta = await counted(async () => {
      provider.getLogger('limits').emit({ severityNumber: SeverityNumber.INFO, body: 'many attributes', attributes, context: trace.setSpan(ROOT_CONTEXT, span) });
      span.end();
      await Promise.all([provider.forceFlush(), tracer.forceFlush()]);
      await eventually(() => reader.getTraceLogs(span.spanContext().traceId), (l) => l.length === 1, 30_000, 'the log record');
    });
    await Promise.all([provider.shutdown(), tracer.shutdown()]);
    const [log] = await reader.getTraceLogs(span.spanContext().traceId);
    assert.equal(log!.attributes.length, L.maxAttributes + 1);
    assert.equal(Buffer.byteLength(attr(log!.attributes, 'big')!.value), L.maxValueBytes);
    assert.equal(attr(log!.attributes, 'otel.dropped_attributes_count')?.value, String(1_001 - L.maxAttributes));
    assert.equal(log!.resourceAttributes.length, L.maxResourceAttributes + 1);
    assert.equal(attr(log!.resourceAttributes, 'otel.dropped_attributes_count')?.value, String(201 - L.maxResourceAttributes));
    assert.equal(delta.get('tracemesh_collector_limited_total{signal="logs",reason="attribute_count"}'), 1_001 - L.maxAttributes);
    assert.equal(delta.get('tracemesh_collector_limited_total{signal="logs",reason="resource_attribute_count"}'), 201 - L.maxResourceAttributes);
    assert.equal(delta.get('tracemesh_collector_limited_total{signal="logs",reason="value_length"}'), 1);
    assert.equal(delta.get('tracemesh_collector_limited_items_total{signal="logs"}'), 1);
  });
});
