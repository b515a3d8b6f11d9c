// The hand-encoded load is a well-formed OTLP request of the SDK generator's shape: protobufjs
// (the collector's reference decoder) reads it, and every span has the SDK's fields.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { convertTraces } from '../../collector/otlp/convert.ts';
import { decodeTraceRequest } from '../../collector/otlp/proto.ts';
import { WireWorkload } from './wire-generator.ts';

void describe('WireWorkload', () => {
  void it('encodes whole traces of CLIENT/SERVER hops that protobufjs and convert.ts accept', () => {
    const w = new WireWorkload(1, 4242);
    const { body, spans } = w.request(500);
    assert.equal(spans, 500);
    const { records, rejected } = convertTraces(decodeTraceRequest(body));
    assert.equal(rejected, 0);
    assert.equal(records.length, 500);
    const first = records[0]!;
    assert.equal(first.serviceName, 'checkout');
    assert.equal(first.kind, 'SERVER');
    assert.equal(first.parentSpanId, '');
    assert.equal(first.scopeName, 'tracemesh-bench-ingest');
    assert.deepEqual(first.resourceAttributes.map((a) => a.key), ['service.name', 'service.instance.id', 'k8s.pod.name', 'k8s.namespace.name', 'k8s.node.name', 'telemetry.sdk.language']);
    assert.equal(first.attributes.length, 11);
    assert.deepEqual(first.attributes.find((a) => a.key === 'http.response.status_code')?.type, 'int');
    const byId = new Map(records.map((r) => [r.spanId, r]));
    for (const r of records) {
      if (r.parentSpanId === '') continue;
      const parent = byId.get(r.parentSpanId);
      assert.ok(parent, 'every parent is in the request (traces are whole)');
      assert.equal(parent.traceId, r.traceId);
      assert.equal(r.kind, parent.kind === 'CLIENT' ? 'SERVER' : 'CLIENT');
    }
    assert.ok(records.some((r) => r.statusCode === 'ERROR' && r.statusMessage === 'upstream answered 500'));
    assert.equal(new Set(records.map((r) => r.spanId)).size, 500, 'span ids are unique');
  });
});
