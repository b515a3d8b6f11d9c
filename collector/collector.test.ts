// The assembled collector over real sockets (port 0), with an in-memory writer.

import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { eventually } from '../test/support/clickhouse.ts';
import { startCollector, type Collector, type CollectorOptions } from './collector.ts';
import { decodeRpcStatus } from './otlp/proto.ts';
import { LOGS_EXPORT_PATH, TRACE_EXPORT_PATH } from './receiver/grpc.ts';
import { Gate, InMemoryTraceWriter } from './testing/memory-writer.ts';
import { decodeLogsResponse, decodeTraceResponse, encodeLogs, encodeTraces, hex, logsRequest, newSpanId, newTraceId, span, str, traceRequest } from './testing/otlp.ts';

const running: Collector[] = [];
after(async () => {
  await Promise.all(running.map((c) => c.close()));
});

async function start(options: CollectorOptions = {}, writer = new InMemoryTraceWriter()) {
  const collector = await startCollector({ batchTimeoutMs: 20, ...options }, { writer });
  running.push(collector);
  return { collector, writer };
}

interface GrpcResult {
  error: grpc.ServiceError | null;
  response: Buffer | undefined;
}

function grpcExport(port: number, path: string, body: Uint8Array, options: { gzip?: boolean } = {}): Promise<GrpcResult> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options.gzip ? { 'grpc.default_compression_algorithm': 2 } : {});
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(body),
      new grpc.Metadata(),
      { deadline: Date.now() + 10_000 },
      (error, response) => {
        client.close();
        resolve({ error, response });
      },
    );
  });
}

function post(port: number, path: string, body: NonNullable<RequestInit['body']>, headers: Record<string, string>): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', body, headers });
}

const PROTO = { 'content-type': 'application/x-protobuf' };
const JSONCT = { 'content-type': 'application/json' };

function jsonSpan(traceId = newTraceId(), spanId = newSpanId()) {
  return { traceId, spanId, name: 'GET /json', kind: 2, startTimeUnixNano: '1700000000000000000', endTimeUnixNano: '1700000000000001000' };
}

void describe('collector over OTLP/gRPC', () => {
  void it('accepts traces, answers partial success for the invalid ones and writes the valid ones', async () => {
    const { collector, writer } = await start();
    const good = span({ name: 'good' });
    const bad = { ...span(), spanId: hex('0102') };
    const { error, response } = await grpcExport(collector.grpcPort, TRACE_EXPORT_PATH, encodeTraces(traceRequest('svc', [good, bad])));
    assert.equal(error, null);
    const decoded = decodeTraceResponse(response!);
    assert.equal(decoded.partialSuccess?.rejectedSpans, 1);
    assert.match(decoded.partialSuccess!.errorMessage, /spans\[1\]: spanId must be 8 bytes/);
    await collector.forceFlush();
    assert.deepEqual(
      writer.spans.map((s) => s.name),
      ['good'],
    );
  });

  void it('leaves partial_success unset when everything is accepted, and takes gzip', async () => {
    const { collector, writer } = await start();
    const { error, response } = await grpcExport(collector.grpcPort, TRACE_EXPORT_PATH, encodeTraces(traceRequest('svc', [span(), span()])), { gzip: true });
    assert.equal(error, null);
    assert.equal(response!.length, 0);
    assert.deepEqual(decodeTraceResponse(response!), {});
    await collector.forceFlush();
    assert.equal(writer.spans.length, 2);
  });

  void it('accepts logs', async () => {
    const { collector, writer } = await start();
    const { error, response } = await grpcExport(
      collector.grpcPort,
      LOGS_EXPORT_PATH,
      encodeLogs(logsRequest('svc', [{ body: { stringValue: 'hello' } }, { traceId: hex('01') }])),
    );
    assert.equal(error, null);
    assert.equal(decodeLogsResponse(response!).partialSuccess?.rejectedLogRecords, 1);
    await collector.forceFlush();
    assert.deepEqual(
      writer.logs.map((l) => l.body),
      ['hello'],
    );
  });

  void it('answers INVALID_ARGUMENT for garbage and keeps serving; earlier data is still written', async () => {
    const { collector, writer } = await start();
    assert.equal((await grpcExport(collector.grpcPort, TRACE_EXPORT_PATH, encodeTraces(traceRequest('svc', [span({ name: 'before' })])))).error, null);
    const bad = await grpcExport(collector.grpcPort, TRACE_EXPORT_PATH, Buffer.from('\x0a\xff\xff\xff\xff\x0f garbage'));
    assert.equal(bad.error?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(bad.error!.details, /not a valid ExportTraceServiceRequest protobuf/);
    assert.equal((await grpcExport(collector.grpcPort, TRACE_EXPORT_PATH, encodeTraces(traceRequest('svc', [span({ name: 'after' })])))).error, null);
    await collector.forceFlush();
    assert.deepEqual(
      writer.spans.map((s) => s.name),
      ['before', 'after'],
    );
  });

  void it('refuses a message over the size limit with RESOURCE_EXHAUSTED (no retry hint)', async () => {
    const { collector } = await start({ maxBodyBytes: 1024 });
    const big = encodeTraces(traceRequest('svc', [span({ attributes: [str('blob', 'x'.repeat(4096))] })]));
    const { error } = await grpcExport(collector.grpcPort, TRACE_EXPORT_PATH, big);
    assert.equal(error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(error?.metadata.get('grpc-status-details-bin').length, 0);
  });
});

void describe('collector over OTLP/HTTP', () => {
  void it('accepts protobuf and answers in protobuf with partial success', async () => {
    const { collector, writer } = await start();
    const res = await post(collector.httpPort, '/v1/traces', encodeTraces(traceRequest('svc', [span({ name: 'p' }), { ...span(), name: '' }])), PROTO);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-protobuf');
    const body = decodeTraceResponse(new Uint8Array(await res.arrayBuffer()));
    assert.equal(body.partialSuccess?.rejectedSpans, 1);
    assert.match(body.partialSuccess!.errorMessage, /name is missing/);
    await collector.forceFlush();
    assert.deepEqual(
      writer.spans.map((s) => s.name),
      ['p'],
    );
  });

  void it('accepts JSON (also gzip-compressed) and answers in JSON', async () => {
    const { collector, writer } = await start();
    const payload = JSON.stringify({ resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'js' } }] }, scopeSpans: [{ spans: [jsonSpan()] }] }] });
    const plain = await post(collector.httpPort, '/v1/traces', payload, { 'content-type': 'application/json; charset=utf-8' });
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get('content-type'), 'application/json');
    assert.deepEqual(await plain.json(), {});
    const zipped = await post(collector.httpPort, '/v1/traces', gzipSync(payload), { ...JSONCT, 'content-encoding': 'gzip' });
    assert.equal(zipped.status, 200);
    const partial = await post(collector.httpPort, '/v1/traces', JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{ ...jsonSpan(), spanId: 'abc' }] }] }] }), JSONCT);
    assert.deepEqual(((await partial.json()) as { partialSuccess: { rejectedSpans: string } }).partialSuccess.rejectedSpans, '1');
    await collector.forceFlush();
    assert.deepEqual(
      writer.spans.map((s) => s.serviceName),
      ['js', 'js'],
    );
  });

  void it('accepts logs in both encodings', async () => {
    const { collector, writer } = await start();
    assert.equal((await post(collector.httpPort, '/v1/logs', encodeLogs(logsRequest('svc', [{ body: { stringValue: 'a' } }])), PROTO)).status, 200);
    const res = await post(collector.httpPort, '/v1/logs', JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords: [{ body: { stringValue: 'b' } }] }] }] }), JSONCT);
    assert.equal(res.status, 200);
    await collector.forceFlush();
    assert.deepEqual(writer.logs.map((l) => l.body).sort(), ['a', 'b']);
  });

  void it('answers 415 for other content types and encodings, 404 and 405 for other routes', async () => {
    const { collector } = await start();
    const text = await post(collector.httpPort, '/v1/traces', 'x', { 'content-type': 'text/plain' });
    assert.equal(text.status, 415);
    assert.match(((await text.json()) as { message: string }).message, /Content-Type "text\/plain" is not supported; send application\/x-protobuf/);
    const br = await post(collector.httpPort, '/v1/traces', 'x', { ...PROTO, 'content-encoding': 'lzma' });
    assert.equal(br.status, 415);
    // The error body of a protobuf request is a protobuf google.rpc.Status.
    assert.match(decodeRpcStatus(new Uint8Array(await br.arrayBuffer())).message, /Content-Encoding "lzma" is not supported/);
    assert.equal((await post(collector.httpPort, '/v1/metrics', 'x', PROTO)).status, 404);
    const get = await fetch(`http://127.0.0.1:${collector.httpPort}/v1/traces`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
  });

  void it('answers 413 for bodies over the limit, on the wire or after decompression', async () => {
    const { collector } = await start({ maxBodyBytes: 2048 });
    const big = encodeTraces(traceRequest('svc', [span({ attributes: [str('blob', 'x'.repeat(8192))] })]));
    const declared = await post(collector.httpPort, '/v1/traces', big, PROTO);
    assert.equal(declared.status, 413);
    assert.match(decodeRpcStatus(new Uint8Array(await declared.arrayBuffer())).message, /more than the limit of 2048 bytes \(collector flag --max-body-size\)/);
    // A small gzip body that inflates beyond the limit.
    const bomb = await post(collector.httpPort, '/v1/traces', gzipSync(big), { ...PROTO, 'content-encoding': 'gzip' });
    assert.equal(bomb.status, 413);
    assert.match(decodeRpcStatus(new Uint8Array(await bomb.arrayBuffer())).message, /gzip-decompressed body is larger than the limit/);
    // Chunked upload without Content-Length.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(big.subarray(0, 4000));
        c.enqueue(big.subarray(4000));
        c.close();
      },
    });
    const chunked = await fetch(`http://127.0.0.1:${collector.httpPort}/v1/traces`, { method: 'POST', body: stream, headers: PROTO, duplex: 'half' } as RequestInit);
    assert.equal(chunked.status, 413);
  });

  void it('answers 400 naming the problem for garbage protobuf, bad JSON and wrong types, and keeps serving', async () => {
    const { collector, writer } = await start();
    assert.equal((await post(collector.httpPort, '/v1/traces', encodeTraces(traceRequest('svc', [span({ name: 'before' })])), PROTO)).status, 200);
    const garbage = await post(collector.httpPort, '/v1/traces', Buffer.from('\x0a\xff\xff\xff\xff\x0f garbage'), PROTO);
    assert.equal(garbage.status, 400);
    assert.match(decodeRpcStatus(new Uint8Array(await garbage.arrayBuffer())).message, /not a valid ExportTraceServiceRequest protobuf/);
    const badJson = await post(collector.httpPort, '/v1/traces', '{"resourceSpans": [}', JSONCT);
    assert.equal(badJson.status, 400);
    assert.match(((await badJson.json()) as { message: string }).message, /not valid JSON/);
    const wrongType = await post(collector.httpPort, '/v1/logs', '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"loud"}]}]}]}', JSONCT);
    assert.equal(wrongType.status, 400);
    assert.match(((await wrongType.json()) as { message: string }).message, /resourceLogs\[0\]\.scopeLogs\[0\]\.logRecords\[0\]\.severityNumber: expected an integer enum value/);
    const badGzip = await post(collector.httpPort, '/v1/traces', 'not gzip', { ...PROTO, 'content-encoding': 'gzip' });
    assert.equal(badGzip.status, 400);
    assert.match(decodeRpcStatus(new Uint8Array(await badGzip.arrayBuffer())).message, /not valid gzip data/);
    assert.equal((await post(collector.httpPort, '/v1/traces', encodeTraces(traceRequest('svc', [span({ name: 'after' })])), PROTO)).status, 200);
    await collector.forceFlush();
    assert.deepEqual(
      writer.spans.map((s) => s.name),
      ['before', 'after'],
    );
    const metrics = await (await fetch(`http://127.0.0.1:${collector.adminPort}/metrics`)).text();
    assert.match(metrics, /tracemesh_collector_rejected_requests_total\{transport="http",signal="traces",reason="malformed"\} 3/);
  });
});

void describe('backpressure', () => {
  void it('refuses with RESOURCE_EXHAUSTED + RetryInfo and 429 + Retry-After while storage blocks, then writes everything accepted', async () => {
    const writer = new InMemoryTraceWriter();
    const gate = new Gate();
    writer.beforeWrite = gate.wait;
    const { collector } = await start({ queueSize: 10, batchSize: 5 }, writer);
    const accepted: string[] = [];
    const batch = (n: number) => Array.from({ length: n }, (_, i) => span({ name: `s-${accepted.length}-${i}` }));
    const sendGrpc = async (n: number) => {
      const spans = batch(n);
      const r = await grpcExport(collector.grpcPort, TRACE_EXPORT_PATH, encodeTraces(traceRequest('svc', spans)));
      if (r.error === null) accepted.push(...spans.map((s) => s.name as string));
      return r;
    };
    const sendHttp = async (n: number) => {
      const spans = batch(n);
      const r = await post(collector.httpPort, '/v1/traces', encodeTraces(traceRequest('svc', spans)), PROTO);
      if (r.status === 200) accepted.push(...spans.map((s) => s.name as string));
      return r;
    };
    assert.equal((await sendGrpc(5)).error, null);
    await eventually(async () => gate.held, (n) => n === 1, 5_000, 'the first write to be held');
    assert.equal((await sendHttp(5)).status, 200);
    // Queue (10) is now full: 5 in flight + 5 queued.
    const refused = await sendGrpc(1);
    assert.equal(refused.error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(refused.error!.details, /queue is full.*retry after \d+ s/);
    const details = refused.error!.metadata.get('grpc-status-details-bin')[0] as Buffer;
    const status = decodeRpcStatus(details);
    assert.equal(status.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.ok(status.retryAfterMs !== undefined && status.retryAfterMs >= 1_000, `RetryInfo delay ${status.retryAfterMs}`);
    const throttled = await sendHttp(1);
    assert.equal(throttled.status, 429);
    assert.ok(Number(throttled.headers.get('retry-after')) >= 1);
    const metrics = await (await fetch(`http://127.0.0.1:${collector.adminPort}/metrics`)).text();
    assert.match(metrics, /tracemesh_collector_rejected_spans_total\{reason="queue_full"\} 2/);
    assert.match(metrics, /tracemesh_collector_queue_size\{signal="spans"\} 10/);
    gate.open();
    await collector.forceFlush();
    assert.deepEqual(writer.spans.map((s) => s.name).sort(), accepted.sort());
    assert.equal((await sendHttp(1)).status, 200);
  });
});

void describe('storage failures', () => {
  void it('retries a failing writer with backoff and loses nothing', async () => {
    const writer = new InMemoryTraceWriter();
    let failuresLeft = 3;
    writer.beforeWrite = (kind) => {
      if (kind === 'spans' && failuresLeft-- > 0) throw new Error('ClickHouse unavailable');
    };
    const { collector } = await start({ retryInitialMs: 5, retryMaxMs: 20, batchSize: 3 }, writer);
    const names: string[] = [];
    for (let i = 0; i < 4; i++) {
      const spans = [span({ name: `a${i}` }), span({ name: `b${i}` })];
      names.push('a' + i, 'b' + i);
      assert.equal((await post(collector.httpPort, '/v1/traces', encodeTraces(traceRequest('svc', spans)), PROTO)).status, 200);
    }
    await collector.forceFlush();
    assert.deepEqual(writer.spans.map((s) => s.name).sort(), names.sort());
    assert.equal(writer.failures, 3);
    const metrics = await (await fetch(`http://127.0.0.1:${collector.adminPort}/metrics`)).text();
    assert.match(metrics, /tracemesh_collector_write_retries_total\{signal="spans"\} 3/);
    assert.match(metrics, /tracemesh_collector_written_spans_total 8/);
  });
});

void describe('service graph', () => {
  void it('derives edges from CLIENT/SERVER pairs sent by different services and writes them', async () => {
    const { collector, writer } = await start();
    const traceId = newTraceId();
    const clientId = newSpanId();
    const c = span({ traceId, spanId: clientId, kind: 3, name: 'GET cart', statusCode: 2 });
    const s = span({ traceId, parentSpanId: clientId, kind: 2, name: 'GET /cart', durationNs: 777n });
    await grpcExport(collector.grpcPort, TRACE_EXPORT_PATH, encodeTraces(traceRequest('cart', [s])));
    await post(collector.httpPort, '/v1/traces', encodeTraces(traceRequest('frontend', [c])), PROTO);
    await collector.forceFlush();
    assert.equal(writer.edges.length, 1);
    assert.deepEqual({ ...writer.edges[0]!, minuteUnixSeconds: 0 }, { minuteUnixSeconds: 0, clientService: 'frontend', serverService: 'cart', calls: 1, errors: 1, durationSumNano: 777n });
  });
});

void describe('lifecycle', () => {
  void it('flushes queued data on close, reports not ready while closing, refuses afterwards; close is safe twice', async () => {
    const writer = new InMemoryTraceWriter();
    const gate = new Gate();
    writer.beforeWrite = gate.wait;
    const { collector } = await start({ batchTimeoutMs: 60_000 }, writer);
    const ready = await fetch(`http://127.0.0.1:${collector.adminPort}/ready`);
    assert.equal(ready.status, 200);
    assert.equal((await post(collector.httpPort, '/v1/traces', encodeTraces(traceRequest('svc', [span(), span()])), PROTO)).status, 200);
    const closing = collector.close();
    await eventually(async () => (await fetch(`http://127.0.0.1:${collector.adminPort}/ready`)).status, (s) => s === 503, 5_000, '/ready to answer 503');
    await eventually(async () => gate.held, (n) => n === 1, 5_000, 'the flush write');
    gate.open();
    await closing;
    await collector.close();
    assert.equal(writer.spans.length, 2);
    assert.equal(writer.closed, 0, 'the writer belongs to the caller');
    await assert.rejects(post(collector.httpPort, '/v1/traces', encodeTraces(traceRequest('svc', [span()])), PROTO));
  });

  void it('serves Prometheus metrics and health on the admin port', async () => {
    const { collector } = await start();
    await post(collector.httpPort, '/v1/traces', encodeTraces(traceRequest('svc', [span({ kind: 3 })])), PROTO);
    await collector.forceFlush();
    const res = await fetch(`http://127.0.0.1:${collector.adminPort}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    for (const name of [
      'tracemesh_collector_received_spans_total{transport="http"} 1',
      'tracemesh_collector_written_spans_total 1',
      'tracemesh_collector_queue_size{signal="spans"} 0',
      'tracemesh_collector_write_duration_seconds_bucket',
      'tracemesh_collector_servicegraph_pending_spans 1',
    ]) {
      assert.ok(text.includes(name), `metrics lack ${name}`);
    }
    assert.equal((await fetch(`http://127.0.0.1:${collector.adminPort}/healthz`)).status, 200);
  });
});
