// What the path API answers for failures real sidecars recorded, on a small mesh that is not
// the demo: an app answering 500 with a body, a gRPC app answering INTERNAL, an app that
// refuses its own sidecar's connection, and a trace read before the called pod reported. The
// spans go through the OpenTelemetry SDK's OTLP JSON serializer and the collector's conversion
// into the path reconstruction, as they would through the collector and ClickHouse.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { decodeTraceRequestJson } from '../collector/otlp/json.ts';
import { convertTraces } from '../collector/otlp/convert.ts';
import { ATTR, MESH_ERROR } from '../common/semconv.ts';
import { reconstructPath } from '../query-api/path/reconstruct.ts';
import type { TracePath } from '../query-api/path/model.ts';
import type { EndpointSpec } from '../sidecar/endpoints/endpoints.ts';
import { closedPort, httpRequest, startServer, startTestSidecar, waitFor, type TestServer, type TestSidecar } from '../sidecar/testing/harness.ts';

const spans = new InMemorySpanExporter();
const started: TestSidecar[] = [];
let httpApp: TestServer;
let grpcServer: grpc.Server;
let front: TestSidecar;
let orders: TestSidecar;

const LEDGER_ERROR = JSON.stringify({ error: 'ledger is locked by a migration', retry_after_s: 30 });

const raw = (b: Buffer): Buffer => b;
const RESERVE: grpc.MethodDefinition<Buffer, Buffer> = { path: '/shop.Stock/Reserve', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw };

async function sidecar(service: string, appPort: number, services: Record<string, EndpointSpec[]> = {}): Promise<TestSidecar> {
  const t = await startTestSidecar({ service, appPort, node: `node-${service}` }, services, { spans });
  started.push(t);
  return t;
}

const at = (t: TestSidecar, pod: string): EndpointSpec[] => [{ address: `127.0.0.1:${t.sidecar.inboundPort}`, pod, node: `node-${pod.replace(/-\d+$/, '')}` }];

before(async () => {
  httpApp = await startServer((req, res) => {
    req.resume();
    if (req.url === '/chunked') {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.write('{"error":"');
      for (let i = 0; i < 40; i++) res.write('overloaded ');
      res.end('"}');
      return;
    }
    if (req.url === '/charge') {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(LEDGER_ERROR);
      return;
    }
    res.end('ok');
  });
  grpcServer = new grpc.Server();
  grpcServer.addService({ Reserve: RESERVE }, {
    Reserve: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback({ code: grpc.status.INTERNAL, details: 'stock ledger is locked' }),
  });
  const grpcPort = await new Promise<number>((resolve, reject) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  orders = await sidecar('orders', httpApp.port);
  const stock = await sidecar('stock', grpcPort);
  const dead = await sidecar('ledger', await closedPort());
  front = await sidecar('front', httpApp.port, { orders: at(orders, 'orders-1'), stock: at(stock, 'stock-1'), ledger: at(dead, 'ledger-1') });
});

after(async () => {
  for (const t of started.reverse()) await t.close();
  grpcServer?.forceShutdown();
  await httpApp?.close();
});

/** The spans of the trace of request `rid`, once `expected` of them (from `from`, default all sidecars) are exported. */
async function spansOf(rid: string, expected: number, from: readonly TestSidecar[] = started): Promise<{ traceId: string; spans: ReadableSpan[] }> {
  const traceId = await waitFor(async () => {
    await front.sidecar.flush();
    return spans.getFinishedSpans().find((s) => s.attributes[ATTR.requestId] === rid && s.attributes[ATTR.meshDirection] === 'outbound')?.spanContext().traceId;
  }, `the client span of ${rid}`);
  const found = await waitFor(async () => {
    await Promise.all(from.map((s) => s.sidecar.flush()));
    const ofTrace = spans.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    return ofTrace.length >= expected ? ofTrace : undefined;
  }, `${expected} spans of ${rid}`);
  return { traceId, spans: found };
}

function pathFrom(traceId: string, ofTrace: ReadableSpan[], nowUnixNano?: bigint): TracePath {
  const converted = convertTraces(decodeTraceRequestJson(new TextDecoder().decode(JsonTraceSerializer.serializeRequest(ofTrace))));
  assert.equal(converted.rejected, 0, converted.errorMessage);
  return reconstructPath(traceId, converted.records, nowUnixNano === undefined ? {} : { nowUnixNano });
}

void describe('path answers from real sidecars', () => {
  void it('an app that answers 500: named once, without "500: 500", with its error body', async () => {
    const r = await httpRequest(front.sidecar.outboundPort, { path: '/charge', headers: { host: 'orders', 'x-request-id': 'pa-500' } });
    assert.equal(r.status, 500);
    const { traceId, spans: s } = await spansOf('pa-500', 2);
    const p = pathFrom(traceId, s);
    assert.equal(p.rootCause?.pod, 'orders-1');
    assert.equal(p.rootCause?.reason, 'HTTP_500');
    assert.doesNotMatch(p.rootCause?.summary ?? '', /500: 500/);
    // The inbound sidecar recorded the start of the app's body (mesh.error.body); the summary quotes it.
    assert.equal(p.rootCause?.errorBody, LEDGER_ERROR);
    assert.equal(p.rootCause?.summary, `orders-1 on node-orders (service orders) returned 500: ${LEDGER_ERROR}`);
    assert.deepEqual(p.rootCause?.observedBy && { pod: p.rootCause.observedBy.pod, direction: p.rootCause.observedBy.direction }, { pod: 'orders-1', direction: 'inbound' });
  });

  void it('a long chunked error body is cut to 256 bytes, without chunk framing', async () => {
    const r = await httpRequest(front.sidecar.outboundPort, { path: '/chunked', headers: { host: 'orders', 'x-request-id': 'pa-chunked' } });
    assert.equal(r.status, 503);
    const { traceId, spans: s } = await spansOf('pa-chunked', 2);
    const body = pathFrom(traceId, s).rootCause?.errorBody ?? '';
    assert.equal(body.length, 256);
    assert.equal(body, `{"error":"${'overloaded '.repeat(40)}`.slice(0, 256));
  });

  void it('a gRPC app that answers INTERNAL: reason GRPC_INTERNAL with its message', async () => {
    const client = new grpc.Client(`127.0.0.1:${front.sidecar.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'stock' });
    const md = new grpc.Metadata();
    md.set('x-request-id', 'pa-grpc');
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      client.makeUnaryRequest(RESERVE.path, raw, raw, Buffer.from('sku-1'), md, (e) => resolve(e!));
    });
    client.close();
    assert.equal(err.code, grpc.status.INTERNAL);
    const { traceId, spans: s } = await spansOf('pa-grpc', 2);
    const p = pathFrom(traceId, s);
    assert.equal(p.rootCause?.pod, 'stock-1');
    assert.equal(p.rootCause?.reason, 'GRPC_INTERNAL');
    assert.equal(p.rootCause?.grpcStatus, 13);
    assert.equal(p.rootCause?.summary, 'stock-1 on node-stock (service stock) answered gRPC INTERNAL: stock ledger is locked');
  });

  void it("an app that refuses its sidecar's connection: the app is named, seen by its inbound sidecar", async () => {
    const r = await httpRequest(front.sidecar.outboundPort, { path: '/post', headers: { host: 'ledger', 'x-request-id': 'pa-refused' } });
    assert.equal(r.status, 502);
    const { traceId, spans: s } = await spansOf('pa-refused', 2);
    const p = pathFrom(traceId, s);
    assert.equal(p.rootCause?.pod, 'ledger-1');
    assert.equal(p.rootCause?.reason, MESH_ERROR.connectionRefused);
    assert.equal(p.rootCause?.unreached, false, 'the pod was reached; its app refused');
    assert.equal(p.rootCause?.observedBy?.pod, 'ledger-1');
    assert.equal(p.rootCause?.observedBy?.direction, 'inbound');
    assert.doesNotMatch(p.rootCause?.summary ?? '', /could not connect to sidecar/);
    assert.match(p.rootCause?.summary ?? '', /^the app in ledger-1 on node-ledger \(service ledger\) refused the connection from its sidecar \(CONNECTION_REFUSED\): could not connect to local app at 127\.0\.0\.1:\d+ .*; observed by the inbound sidecar of ledger-1 \(service ledger\)$/);
  });

  void it('read before the called pod reported: says the trace may be incomplete and which peer it waits for', async () => {
    const r = await httpRequest(front.sidecar.outboundPort, { path: '/charge', headers: { host: 'orders', 'x-request-id': 'pa-early' } });
    assert.equal(r.status, 500);
    // Only the calling sidecar has exported: orders-1's span is still in its exporter.
    const { traceId, spans: s } = await spansOf('pa-early', 1, [front]);
    const early = s.filter((x) => x.resource.attributes[ATTR.serviceName] === 'front');
    const p = pathFrom(traceId, early);
    assert.equal(p.completeness.mayBeIncomplete, true);
    assert.equal(p.completeness.spansMayStillArrive, true);
    assert.deepEqual(p.completeness.unreportedPeers.map((u) => [u.pod, u.reason]), [['orders-1', 'the called pod has not reported its side of the call']]);
    assert.match(p.summary, /the trace may be incomplete/);
    // Once everything is in and the quiet period is over, the answer is final.
    const all = await spansOf('pa-early', 2);
    const later = pathFrom(traceId, all.spans, BigInt(Date.now() + 11_000) * 1_000_000n);
    assert.equal(later.completeness.mayBeIncomplete, false);
    assert.equal(later.rootCause?.pod, 'orders-1');
  });
});
