// Streaming OTLP export against a real gRPC server: spans and log records encoded where they
// end must reach the wire as the OpenTelemetry SDK's own serializer would have written them,
// batched by size and time, with the queue bound and flush semantics of the SDK processors.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { ProtobufLogsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, InMemoryLogRecordExporter, LoggerProvider } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { decodeLogsRequest, decodeTraceRequest, protoTypes } from '../../collector/otlp/proto.ts';
import { OtlpGrpcChannel } from './otlp-export.ts';
import { LOGS_METHOD, StreamingLogger, StreamingSpanProcessor, TRACE_METHOD } from './otlp-stream.ts';
import { SidecarMetrics } from './metrics.ts';
import { createTelemetry } from './telemetry.ts';

const resource = resourceFromAttributes({ 'service.name': 'a', 'k8s.pod.name': 'a-1', 'x.count': 3 });

interface Received {
  traces: Buffer[];
  logs: Buffer[];
}

function service(path: string, onBody: (b: Buffer) => void): grpc.ServiceDefinition {
  return {
    Export: {
      path,
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => {
        onBody(b);
        return b;
      },
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  };
}

function json(type: 'trace' | 'logs', bytes: Uint8Array): Record<string, unknown> {
  const msg = type === 'trace' ? decodeTraceRequest(bytes) : decodeLogsRequest(bytes);
  const t = type === 'trace' ? protoTypes.traceRequest : protoTypes.logsRequest;
  return t.toObject(msg as never, { longs: String, bytes: String, defaults: false }) as Record<string, unknown>;
}

/** The leaf records of decoded requests (spans or log records), in order. */
function leaves(type: 'trace' | 'logs', bodies: readonly Buffer[]): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const b of bodies) {
    const j = json(type, b) as { resourceSpans?: Array<{ scopeSpans: Array<{ spans: Array<Record<string, unknown>> }> }>; resourceLogs?: Array<{ scopeLogs: Array<{ logRecords: Array<Record<string, unknown>> }> }> };
    if (type === 'trace') for (const r of j.resourceSpans ?? []) for (const s of r.scopeSpans) out.push(...s.spans);
    else for (const r of j.resourceLogs ?? []) for (const s of r.scopeLogs) out.push(...s.logRecords);
  }
  return out;
}

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

void describe('streaming OTLP export', () => {
  const got: Received = { traces: [], logs: [] };
  const server = new grpc.Server();
  let url = '';

  before(async () => {
    const empty = Buffer.alloc(0);
    const ok = (_c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>): void => cb(null, empty);
    server.addService(service(TRACE_METHOD, (b) => got.traces.push(b)), { Export: ok });
    server.addService(service(LOGS_METHOD, (b) => got.logs.push(b)), { Export: ok });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    url = `http://127.0.0.1:${port}`;
  });
  after(() => server.forceShutdown());

  void it('sends spans as the SDK serializer encodes them, in batches of maxBatch', async () => {
    got.traces.length = 0;
    const channel = new OtlpGrpcChannel({ url, timeoutMillis: 5000 });
    const memory = new InMemorySpanExporter();
    const streaming = new StreamingSpanProcessor({ channel, maxBatch: 3, maxQueue: 100, delayMs: 60_000, timeoutMs: 5000 });
    const provider = new BasicTracerProvider({ resource, spanProcessors: [streaming, new SimpleSpanProcessor(memory)] });
    const tracer = provider.getTracer('tracemesh-sidecar', '1.0.0');
    const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true });
    for (let i = 0; i < 7; i++) {
      const s = tracer.startSpan('GET', { kind: SpanKind.CLIENT, attributes: { 'url.path': `/items/${i}`, 'http.response.status_code': 200 + i, 'ünï': 'cödé ✓', f: 1.5 } }, parent);
      if (i === 2) {
        s.recordException(new Error('boom'));
        s.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream said 503' });
      }
      s.end();
    }
    // Two full batches went at once; the seventh span waits for its timer (or a flush).
    await until(() => got.traces.length === 2, 'two batches');
    assert.equal(leaves('trace', got.traces).length, 6);
    await provider.forceFlush();
    assert.equal(got.traces.length, 3);
    const sdk = ProtobufTraceSerializer.serializeRequest(memory.getFinishedSpans()) as Uint8Array;
    assert.deepEqual(leaves('trace', got.traces), leaves('trace', [Buffer.from(sdk)]));
    // Resource and scope travel in every request.
    const first = json('trace', got.traces[0] as Buffer) as { resourceSpans: Array<{ resource: unknown; scopeSpans: Array<{ scope: unknown }> }> };
    const sdkFirst = json('trace', sdk) as typeof first;
    assert.deepEqual(first.resourceSpans[0]?.resource, sdkFirst.resourceSpans[0]?.resource);
    assert.deepEqual(first.resourceSpans[0]?.scopeSpans[0]?.scope, sdkFirst.resourceSpans[0]?.scopeSpans[0]?.scope);
    await provider.shutdown();
    channel.close();
  });

  void it('does not export unsampled spans', async () => {
    got.traces.length = 0;
    const channel = new OtlpGrpcChannel({ url, timeoutMillis: 5000 });
    const streaming = new StreamingSpanProcessor({ channel, maxBatch: 10, maxQueue: 100, delayMs: 10, timeoutMs: 5000 });
    const provider = new BasicTracerProvider({ resource, spanProcessors: [streaming] });
    const unsampled = trace.setSpanContext(ROOT_CONTEXT, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 0, isRemote: true });
    provider.getTracer('t').startSpan('GET', {}, unsampled).end();
    provider.getTracer('t').startSpan('POST').end();
    await provider.forceFlush();
    const spans = leaves('trace', got.traces);
    assert.equal(spans.length, 1);
    assert.equal(spans[0]?.['name'], 'POST');
    await provider.shutdown();
    channel.close();
  });

  void it('encodes log records as the SDK records and serializes them', async () => {
    got.logs.length = 0;
    const channel = new OtlpGrpcChannel({ url, timeoutMillis: 5000 });
    const streaming = new StreamingLogger({ channel, maxBatch: 100, maxQueue: 100, delayMs: 20, timeoutMs: 5000 }, resource.attributes, 'tracemesh-sidecar');
    const memory = new InMemoryLogRecordExporter();
    const sdkProvider = new LoggerProvider({ resource, processors: [new BatchLogRecordProcessor({ exporter: memory })] });
    const sdk = sdkProvider.getLogger('tracemesh-sidecar');
    const ctx = trace.setSpanContext(ROOT_CONTEXT, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 });
    const records = [
      { eventName: 'tracemesh.access', severityNumber: SeverityNumber.ERROR, severityText: 'ERROR', body: 'GET b/x 503 UPSTREAM_RESET', attributes: { 'http.response.status_code': 503, 'mesh.duration_ms': 1.5, ok: false, 'url.path': '/ü' }, context: ctx },
      { body: { nested: { k: 'v' }, list: [1, 'x'] }, timestamp: 1_700_000_000_123 },
      // An invalid span context is not recorded.
      { body: 'no trace', context: trace.setSpanContext(ROOT_CONTEXT, { traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 }) },
    ];
    for (const r of records) {
      streaming.emit(r);
      sdk.emit(r);
    }
    await until(() => got.logs.length === 1, 'the timer-driven batch');
    await sdkProvider.forceFlush();
    const mine = leaves('logs', got.logs);
    const theirs = leaves('logs', [Buffer.from(ProtobufLogsSerializer.serializeRequest(memory.getFinishedLogRecords()) as Uint8Array)]);
    assert.equal(mine.length, 3);
    assert.equal(memory.getFinishedLogRecords().length, 3);
    assert.equal(theirs.length, 3);
    // Timestamps are "now" on each side: compare them apart.
    for (const [i, m] of mine.entries()) {
      const t = theirs[i] as Record<string, unknown>;
      for (const k of ['timeUnixNano', 'observedTimeUnixNano']) {
        assert.ok(Math.abs(Number(m[k]) - Number(t[k])) < 5e9, `${k} of record ${i}`);
        delete m[k];
        delete t[k];
      }
    }
    assert.deepEqual(mine, theirs);
    assert.equal(leaves('logs', got.logs)[1]?.['timeUnixNano'], '1700000000123000000');
    await streaming.shutdown();
    channel.close();
  });

  void it('drops what does not fit in the queue while exports are unanswered, and counts it', async () => {
    // Nothing listens there: every export is retried until its deadline, so the items stay queued.
    const channel = new OtlpGrpcChannel({ url: 'http://127.0.0.1:1', timeoutMillis: 300 });
    const logger = new StreamingLogger({ channel, maxBatch: 1, maxQueue: 3, delayMs: 10, timeoutMs: 300 }, resource.attributes, 's');
    for (let i = 0; i < 5; i++) logger.emit({ body: `r${i}` });
    assert.equal(logger.batcher.dropped, 2);
    await logger.forceFlush();
    assert.equal(logger.batcher.failed, 3);
    // Room again once the failed exports were answered.
    logger.emit({ body: 'later' });
    assert.equal(logger.batcher.dropped, 2);
    await logger.shutdown();
    logger.emit({ body: 'after shutdown' });
    assert.equal(logger.batcher.dropped, 3);
    channel.close();
  });

  void it('is what createTelemetry uses when it exports over OTLP/gRPC itself', async () => {
    got.traces.length = 0;
    got.logs.length = 0;
    const t = createTelemetry({ service: 'svc', pod: 'svc-1', namespace: 'ns', node: '', samplingRatio: 1, collectorEndpoint: url, exportDelayMs: 10 });
    assert.ok(t.logger instanceof StreamingLogger);
    const span = t.tracer.startSpan('GET', { attributes: { 'url.path': '/a' } });
    t.logger.emit({ body: 'GET svc/a 200', context: trace.setSpan(ROOT_CONTEXT, span) });
    span.end();
    await t.forceFlush();
    const spans = leaves('trace', got.traces);
    const logs = leaves('logs', got.logs);
    assert.equal(spans.length, 1);
    assert.equal(logs.length, 1);
    assert.equal(logs[0]?.['spanId'], spans[0]?.['spanId']);
    const res = json('trace', got.traces[0] as Buffer) as { resourceSpans: Array<{ resource: { attributes: Array<{ key: string }> } }> };
    assert.ok(res.resourceSpans[0]?.resource.attributes.some((a) => a.key === 'service.name'));
    await t.shutdown();
  });

  void it('counts what it could not deliver, and the sidecar metrics show it', async () => {
    // Nothing listens on port 1: the export fails after its retries.
    const t = createTelemetry({ service: 'svc', pod: 'svc-1', namespace: 'ns', node: '', samplingRatio: 1, collectorEndpoint: 'http://127.0.0.1:1', exportDelayMs: 10, exportTimeoutMs: 300 });
    t.tracer.startSpan('GET').end();
    t.tracer.startSpan('GET').end();
    t.logger?.emit({ body: 'GET svc/ 200' });
    await t.forceFlush();
    assert.deepEqual(t.lost(), { spans: { dropped: 0, failed: 2 }, logs: { dropped: 0, failed: 1 } });
    const metrics = new SidecarMetrics();
    metrics.watchTelemetry(() => t.lost());
    const text = await metrics.registry.metrics();
    assert.match(text, /tracemesh_telemetry_lost_total\{signal="spans",reason="export_failed"\} 2/);
    assert.match(text, /tracemesh_telemetry_lost_total\{signal="logs",reason="export_failed"\} 1/);
    assert.match(text, /tracemesh_telemetry_lost_total\{signal="spans",reason="queue_full"\} 0/);
    await t.shutdown();
  });
});
