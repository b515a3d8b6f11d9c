// The hand-written OTLP encoder against the OpenTelemetry SDK's own protobuf serializer: the
// same spans and log records, encoded both ways, must decode (protobufjs, the OTLP schema) to
// the same messages.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SpanKind, SpanStatusCode, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { ProtobufLogsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, InMemoryLogRecordExporter, LoggerProvider } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { decodeLogsRequest, decodeTraceRequest, protoTypes } from '../../collector/otlp/proto.ts';
import { encodeLogsRequest, encodeTraceRequest } from './otlp-encode.ts';

const resource = resourceFromAttributes({ 'service.name': 'a', 'k8s.pod.name': 'a-1', 'x.count': 3, 'x.ratio': 0.5, 'x.flag': true });

function json(type: 'trace' | 'logs', bytes: Uint8Array): unknown {
  const msg = type === 'trace' ? decodeTraceRequest(bytes) : decodeLogsRequest(bytes);
  const t = type === 'trace' ? protoTypes.traceRequest : protoTypes.logsRequest;
  return t.toObject(msg as never, { longs: String, bytes: String, defaults: false });
}

void describe('OTLP encoder', () => {
  void it('encodes spans exactly as the SDK serializer does', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const tracer = provider.getTracer('tracemesh-sidecar', '1.2.3');
    const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true });
    const s1 = tracer.startSpan('GET', { kind: SpanKind.CLIENT, attributes: { 'http.request.method': 'GET', 'http.response.status_code': 503, 'neg': -7, 'big': 2 ** 40, 'f': 1.25, 'empty': '', 'ünï': 'cödé ✓', arr: ['a', 'b'], nums: [1, 2] } }, parent);
    s1.addEvent('mesh.trace_context.invalid', { header: 'traceparent', reason: 'bad' });
    s1.recordException(new Error('boom'));
    s1.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream said 503' });
    s1.end();
    const s2 = tracer.startSpan('POST', { kind: SpanKind.SERVER });
    s2.end();
    await provider.forceFlush();
    const spans = exporter.getFinishedSpans();
    assert.equal(spans.length, 2);
    const mine = encodeTraceRequest(spans);
    const sdk = ProtobufTraceSerializer.serializeRequest(spans) as Uint8Array;
    assert.deepEqual(json('trace', mine), json('trace', sdk));
  });

  void it('encodes log records exactly as the SDK serializer does', async () => {
    const exporter = new InMemoryLogRecordExporter();
    const provider = new LoggerProvider({ resource, processors: [new BatchLogRecordProcessor({ exporter })] });
    const logger = provider.getLogger('tracemesh-sidecar');
    const ctx = trace.setSpanContext(ROOT_CONTEXT, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 });
    logger.emit({ eventName: 'tracemesh.access', severityNumber: SeverityNumber.ERROR, severityText: 'ERROR', body: 'GET b/x 503 UPSTREAM_RESET', attributes: { 'http.response.status_code': 503, 'mesh.duration_ms': 1.5, ok: false }, context: ctx });
    logger.emit({ body: { nested: { k: 'v' }, list: [1, 'x'] } });
    await provider.forceFlush();
    const logs = exporter.getFinishedLogRecords();
    assert.equal(logs.length, 2);
    const mine = encodeLogsRequest(logs);
    const sdk = ProtobufLogsSerializer.serializeRequest(logs) as Uint8Array;
    assert.deepEqual(json('logs', mine), json('logs', sdk));
  });

  void it('grows its buffer for large batches', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const tracer = provider.getTracer('t');
    for (let i = 0; i < 600; i++) tracer.startSpan(`span-${i}`, { attributes: { 'url.path': `/items/${i}`.repeat(10) } }).end();
    await provider.forceFlush();
    const spans = exporter.getFinishedSpans();
    assert.ok(encodeTraceRequest(spans).length > 64 * 1024, 'larger than the initial buffer');
    assert.deepEqual(json('trace', encodeTraceRequest(spans)), json('trace', ProtobufTraceSerializer.serializeRequest(spans) as Uint8Array));
  });
});
