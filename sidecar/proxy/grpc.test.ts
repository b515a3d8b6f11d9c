// gRPC helpers of the proxy: what counts as a gRPC call, the status of each mesh failure,
// grpc-message encoding, and the span name and rpc.* attributes.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR, MESH_ERROR } from '../../common/semconv.ts';
import { ProxyError } from '../errors.ts';
import { decodeGrpcMessage, encodeGrpcMessage, GRPC_STATUS, grpcStatusName, grpcStatusOfHttp, grpcStatusOfMeshError, isGrpcContentType, startGrpcSpan } from './grpc.ts';

void describe('gRPC helpers', () => {
  void it('recognises gRPC content types, not gRPC-Web or look-alikes', () => {
    for (const ct of ['application/grpc', 'application/grpc+proto', 'application/grpc+json', 'application/grpc;charset=utf-8']) assert.equal(isGrpcContentType(ct), true, ct);
    for (const ct of ['application/grpc-web', 'application/grpc-web+proto', 'application/grpcx', 'application/json', '', undefined]) assert.equal(isGrpcContentType(ct), false, String(ct));
  });

  void it('maps every mesh failure to a gRPC status', () => {
    const status = (code: (typeof MESH_ERROR)[keyof typeof MESH_ERROR], http?: number): number =>
      grpcStatusOfMeshError(new ProxyError(code, 'x', http === undefined ? undefined : { status: http }));
    assert.equal(status(MESH_ERROR.connectionRefused), GRPC_STATUS.UNAVAILABLE);
    assert.equal(status(MESH_ERROR.upstreamReset), GRPC_STATUS.UNAVAILABLE);
    assert.equal(status(MESH_ERROR.noEndpoint), GRPC_STATUS.UNAVAILABLE);
    assert.equal(status(MESH_ERROR.tlsHandshake), GRPC_STATUS.UNAVAILABLE);
    assert.equal(status(MESH_ERROR.tlsHandshake, 403), GRPC_STATUS.UNAUTHENTICATED, 'the inbound side refusing the caller\'s certificate');
    assert.equal(status(MESH_ERROR.timeout), GRPC_STATUS.DEADLINE_EXCEEDED);
    assert.equal(status(MESH_ERROR.plaintextRefused), GRPC_STATUS.UNAUTHENTICATED);
    assert.equal(status(MESH_ERROR.policyDenied), GRPC_STATUS.PERMISSION_DENIED);
    assert.equal(grpcStatusOfHttp(503), GRPC_STATUS.UNAVAILABLE);
    assert.equal(grpcStatusOfHttp(404), GRPC_STATUS.UNIMPLEMENTED);
    assert.equal(grpcStatusOfHttp(500), GRPC_STATUS.UNKNOWN);
    assert.equal(grpcStatusName(14), 'UNAVAILABLE');
    assert.equal(grpcStatusName(99), '99');
  });

  void it('percent-encodes grpc-message as the spec asks, and decodes it back', () => {
    assert.equal(encodeGrpcMessage('plain text: ok'), 'plain text: ok');
    const text = '100% full — ünïcode\nline';
    const encoded = encodeGrpcMessage(text);
    assert.equal(encoded, '100%25 full %E2%80%94 %C3%BCn%C3%AFcode%0Aline');
    assert.equal(decodeGrpcMessage(encoded), text);
    assert.equal(decodeGrpcMessage('bad %zz'), 'bad %zz');
  });

  void it('names the span <service>/<method> and records rpc.* attributes', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const tracer = provider.getTracer('t');
    const good = tracer.startSpan('POST');
    startGrpcSpan(good, '/pkg.v1.Greeter/SayHello');
    good.end();
    const odd = tracer.startSpan('POST');
    startGrpcSpan(odd, '/no-method');
    odd.end();
    const [a, b] = exporter.getFinishedSpans();
    assert.equal(a?.name, 'pkg.v1.Greeter/SayHello');
    assert.equal(a?.attributes[ATTR.rpcSystem], 'grpc');
    assert.equal(a?.attributes[ATTR.rpcService], 'pkg.v1.Greeter');
    assert.equal(a?.attributes[ATTR.rpcMethod], 'SayHello');
    assert.equal(b?.name, 'POST', 'a path that names no method keeps the HTTP name');
    assert.equal(b?.attributes[ATTR.rpcSystem], 'grpc');
    assert.equal(b?.attributes[ATTR.rpcService], undefined);
    await provider.shutdown();
  });
});
