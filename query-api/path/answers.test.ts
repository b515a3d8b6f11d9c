// Answers that read right the first time, on topologies that are not the demo: gRPC failures
// named by status, summaries without "returned 500: 500", the app's error body, a refused
// connection to an app told apart from an unreachable pod, the latency root cause of a slow
// request that succeeded, and whether a trace may still be incomplete.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ATTR, MESH_ERROR } from '../../common/semconv.ts';
import type { SpanRecord } from '../../storage/model.ts';
import { BASE_TIME_NS, TraceBuilder, pod } from '../testing/trace-builder.ts';
import type { TracePath } from './model.ts';
import { reconstructPath } from './reconstruct.ts';

const GATEWAY = pod('gateway', 1, 'edge-a');
const ORDERS = pod('orders', 3, 'pool-b');
const STOCK = pod('stock', 2, 'pool-c');
const SEARCH = pod('search', 1, 'pool-d');
const AUTH = pod('auth', 4, 'pool-b');

const LONG_AGO = BASE_TIME_NS + 3_600_000_000_000n;

function path(b: TraceBuilder, spans: readonly SpanRecord[] = b.spans, nowUnixNano = LONG_AGO): TracePath {
  const p = reconstructPath(b.traceId, spans, { nowUnixNano });
  JSON.parse(JSON.stringify(p));
  return p;
}

/** gateway-1 → orders-3 → stock-2 over gRPC; stock answers `status` with `message`. */
function grpcChain(status: number, message: string): TraceBuilder {
  const b = new TraceBuilder();
  const grpc = (code: number) => ({ [ATTR.rpcSystem]: 'grpc', [ATTR.rpcGrpcStatusCode]: code });
  const gw = b.server(GATEWAY, undefined, { name: 'shop.Gateway/Checkout', startMs: 0, durationMs: 40, http: 200, status: 'ERROR', message: 'upstream failed', attrs: grpc(status) });
  const c1 = b.client(gw, { name: 'shop.Orders/Place', startMs: 1, durationMs: 38, http: 200, status: 'ERROR', message, endpoint: '10.1.0.3:15006', to: ORDERS, attrs: grpc(status) });
  const o = b.server(ORDERS, c1, { name: 'shop.Orders/Place', startMs: 2, durationMs: 36, http: 200, status: 'ERROR', message, attrs: grpc(status) });
  const c2 = b.client(o, { name: 'shop.Stock/Reserve', startMs: 3, durationMs: 30, http: 200, status: 'ERROR', message, endpoint: '10.1.0.9:15006', to: STOCK, attrs: grpc(status) });
  b.server(STOCK, c2, { name: 'shop.Stock/Reserve', startMs: 4, durationMs: 28, http: 200, status: 'ERROR', message, attrs: grpc(status) });
  return b;
}

void describe('failure reasons and summaries', () => {
  void it('names a gRPC failure by its status, GRPC_INTERNAL, not SPAN_ERROR', () => {
    const p = path(grpcChain(13, 'stock ledger is locked'));
    assert.equal(p.rootCause?.pod, 'stock-2');
    assert.equal(p.rootCause?.reason, 'GRPC_INTERNAL');
    assert.equal(p.rootCause?.grpcStatus, 13);
    assert.equal(p.rootCause?.summary, 'stock-2 on pool-c (service stock) answered gRPC INTERNAL: stock ledger is locked');
  });

  void it('GRPC_UNAVAILABLE, and a status message that only repeats the status is left out', () => {
    const p = path(grpcChain(14, 'UNAVAILABLE'));
    assert.equal(p.rootCause?.reason, 'GRPC_UNAVAILABLE');
    assert.equal(p.rootCause?.message, null);
    assert.equal(p.rootCause?.summary, 'stock-2 on pool-c (service stock) answered gRPC UNAVAILABLE');
  });

  void it('says "returned 500", never "returned 500: 500", when the app said nothing more', () => {
    const b = new TraceBuilder();
    const gw = b.server(GATEWAY, undefined, { startMs: 0, durationMs: 10, http: 500, attrs: { [ATTR.errorType]: '500' } });
    const c = b.client(gw, { startMs: 1, durationMs: 8, http: 500, endpoint: '10.1.0.3:15006', to: ORDERS, attrs: { [ATTR.errorType]: '500' } });
    b.server(ORDERS, c, { startMs: 2, durationMs: 6, http: 500, attrs: { [ATTR.errorType]: '500' }, message: 'HTTP 500 Internal Server Error' });
    const p = path(b);
    assert.equal(p.rootCause?.reason, 'HTTP_500');
    assert.equal(p.rootCause?.summary, 'orders-3 on pool-b (service orders) returned 500');
    assert.doesNotMatch(p.summary, /500: 500/);
  });

  void it("includes the app's error body, truncated, when its sidecar recorded one", () => {
    const b = new TraceBuilder();
    const gw = b.server(GATEWAY, undefined, { startMs: 0, durationMs: 10, http: 503 });
    const c = b.client(gw, { startMs: 1, durationMs: 8, http: 503, endpoint: '10.1.0.3:15006', to: ORDERS });
    const body = `{"error":"orders database is in read-only mode","detail":"${'x'.repeat(400)}"}`;
    b.server(ORDERS, c, { startMs: 2, durationMs: 6, http: 503, attrs: { [ATTR.errorType]: '503', [ATTR.meshErrorBody]: body.slice(0, 256) } });
    const p = path(b);
    assert.equal(p.rootCause?.errorBody, body.slice(0, 256));
    assert.match(p.rootCause?.summary ?? '', /^orders-3 on pool-b \(service orders\) returned 503: \{"error":"orders database is in read-only mode","detail":"x+…$/);
    assert.ok((p.rootCause?.summary.length ?? 0) < 300);
  });

  void it('a refused connection to the app behind a sidecar is the app refusing, seen by that inbound sidecar', () => {
    const b = new TraceBuilder();
    const gw = b.server(GATEWAY, undefined, { startMs: 0, durationMs: 10, http: 502 });
    const c = b.client(gw, { startMs: 1, durationMs: 8, http: 502, endpoint: '10.1.0.3:15006', to: ORDERS });
    const o = b.server(ORDERS, c, {
      startMs: 2,
      durationMs: 1,
      http: 502,
      status: 'ERROR',
      message: 'could not connect to 127.0.0.1:8080 (ECONNREFUSED); is the workload running and listening?',
      attrs: { [ATTR.meshErrorCode]: MESH_ERROR.connectionRefused },
    });
    const p = path(b);
    assert.equal(p.rootCause?.pod, 'orders-3');
    assert.equal(p.rootCause?.reason, 'CONNECTION_REFUSED');
    assert.equal(p.rootCause?.unreached, false);
    assert.deepEqual(p.rootCause?.observedBy, { service: 'orders', pod: 'orders-3', spanId: o.spanId, direction: 'inbound' });
    assert.equal(
      p.rootCause?.summary,
      'the app in orders-3 on pool-b (service orders) refused the connection from its sidecar (CONNECTION_REFUSED): could not connect to 127.0.0.1:8080 (ECONNREFUSED); is the workload running and listening?; observed by the inbound sidecar of orders-3 (service orders)',
    );
  });

  void it('a refused connection to a pod is that pod unreached, seen by the caller\'s outbound sidecar', () => {
    const b = new TraceBuilder();
    const gw = b.server(GATEWAY, undefined, { startMs: 0, durationMs: 10, http: 502 });
    const c = b.client(gw, { startMs: 1, durationMs: 2, http: 502, endpoint: '10.1.0.3:15006', to: ORDERS, meshError: MESH_ERROR.connectionRefused, message: 'could not connect to 10.1.0.3:15006 (ECONNREFUSED)' });
    const p = path(b);
    assert.equal(p.rootCause?.unreached, true);
    assert.deepEqual(p.rootCause?.observedBy, { service: 'gateway', pod: 'gateway-1', spanId: c.spanId, direction: 'outbound' });
    assert.match(p.rootCause?.summary ?? '', /^orders-3 on pool-b \(service orders\) was not reached: CONNECTION_REFUSED: .*; observed by the outbound sidecar of gateway-1 \(service gateway\) calling 10\.1\.0\.3:15006$/);
    assert.equal(p.completeness.unreportedPeers.length, 0, 'an unreached pod is not waited for');
  });
});

void describe('latency root cause', () => {
  /** api → auth (fast) and api → search (slow: most of it in its own "scan index" span). */
  function fanOut(): TraceBuilder {
    const b = new TraceBuilder();
    const api = b.server(GATEWAY, undefined, { name: 'GET /find', startMs: 0, durationMs: 200, http: 200 });
    const ca = b.client(api, { startMs: 2, durationMs: 12, http: 200, endpoint: '10.1.0.4:15006', to: AUTH });
    const auth = b.server(AUTH, ca, { name: 'POST /verify', startMs: 3, durationMs: 10, http: 200 });
    b.app(auth, { name: 'check token', startMs: 4, durationMs: 8 });
    const cs = b.client(api, { startMs: 16, durationMs: 180, http: 200, endpoint: '10.1.0.5:15006', to: SEARCH });
    const search = b.server(SEARCH, cs, { name: 'GET /query', startMs: 18, durationMs: 176, http: 200 });
    b.app(search, { name: 'parse query', startMs: 19, durationMs: 5 });
    b.app(search, { name: 'scan index', startMs: 25, durationMs: 165 });
    return b;
  }

  void it('names the hop whose own time dominates the critical path, with its share and span', () => {
    const p = path(fanOut());
    assert.equal(p.status, 'ok');
    assert.equal(p.rootCause, null);
    const l = p.latencyRootCause;
    assert.ok(l);
    assert.equal(l.pod, 'search-1');
    assert.equal(l.node, 'pool-d');
    assert.equal(l.spanName, 'scan index');
    // search-1's own time on the critical path: 18→194 ms = 176 ms; of 200 ms.
    assert.equal(l.selfTimeMs, 176);
    assert.equal(l.share, 0.88);
    assert.equal(l.hops[0]?.hopId, l.hopId);
    // The caller's client span around search (16→18 and 194→196) is search's call time, not gateway's own.
    assert.equal(l.hops[0]?.callTimeNano, '4000000');
    const gw = l.hops.find((h) => h.pod === 'gateway-1');
    assert.equal(gw?.selfTimeMs, 8, 'gateway: 0→2, 14→16 (auth ran 2→14 on the critical path too) and 196→200');
    assert.equal(l.summary, '88% of the 200 ms (176 ms) was spent in search-1 on pool-d (service search) itself (mostly in "scan index"), not in its calls');
    assert.match(p.summary, /^the request succeeded: 3 hops across 3 services in 200 ms; 88% of the 200 ms/);
  });

  void it('is the deep hop, not its callers, in a chain where every caller only waits', () => {
    const b = new TraceBuilder();
    const gw = b.server(GATEWAY, undefined, { startMs: 0, durationMs: 100, http: 200 });
    const c1 = b.client(gw, { startMs: 1, durationMs: 98, http: 200, endpoint: '10.1.0.3:15006', to: ORDERS });
    const o = b.server(ORDERS, c1, { startMs: 2, durationMs: 96, http: 200 });
    const c2 = b.client(o, { startMs: 3, durationMs: 94, http: 200, endpoint: '10.1.0.9:15006', to: STOCK });
    b.server(STOCK, c2, { startMs: 4, durationMs: 92, http: 200 });
    const l = path(b).latencyRootCause;
    assert.equal(l?.pod, 'stock-2');
    assert.equal(l?.share, 0.92);
    assert.equal(l?.spanName, 'inbound');
    assert.doesNotMatch(l?.summary ?? '', /mostly in/);
  });
});

void describe('completeness', () => {
  void it('within a second of a failure, with only the client\'s root span, says spans may still arrive', () => {
    const b = new TraceBuilder();
    const root = b.span('CLIENT', { service: 'loadgen' }, undefined, { name: 'GET /checkout', startMs: 0, durationMs: 12, http: 502, attrs: { [ATTR.serverAddress]: 'ingress' } });
    const end = root.startTimeUnixNano + root.durationNano;
    const soon = path(b, b.spans, end + 800_000_000n);
    assert.equal(soon.completeness.mayBeIncomplete, true);
    assert.equal(soon.completeness.spansMayStillArrive, true);
    assert.equal(soon.completeness.quietPeriodMs, 10_000);
    assert.match(soon.completeness.reasons[0] ?? '', /^a span ended 0\.8 s ago, within the 10 s quiet period: more spans may still arrive$/);
    assert.match(soon.summary, /; the trace may be incomplete: a span ended 0\.8 s ago/);
    // An app's call out of the mesh is not waited for: nothing would ever answer it.
    assert.deepEqual(soon.completeness.unreportedPeers, []);
    const later = path(b, b.spans, end + 11_000_000_000n);
    assert.equal(later.completeness.mayBeIncomplete, false);
    assert.deepEqual(later.completeness.reasons, []);
    assert.doesNotMatch(later.summary, /incomplete/);
  });

  void it('names the hops whose peers have not reported: a sidecar call with no server span, a span whose caller is missing', () => {
    const b = new TraceBuilder();
    const gw = b.server(GATEWAY, undefined, { startMs: 0, durationMs: 50, http: 504 });
    b.client(gw, { startMs: 1, durationMs: 48, http: 504, endpoint: '10.1.0.3:15006', to: ORDERS, meshError: MESH_ERROR.timeout });
    b.server(STOCK, undefined, { startMs: 5, durationMs: 10, http: 200, parentSpanId: 'feedfacefeedface' });
    const p = path(b);
    assert.equal(p.completeness.mayBeIncomplete, true);
    assert.equal(p.completeness.spansMayStillArrive, false);
    assert.deepEqual(
      p.completeness.unreportedPeers.map((u) => [u.pod, u.reason]),
      [
        ['orders-3', 'the called pod has not reported its side of the call'],
        ['stock-2', "the caller's span feedfacefeedface has not been reported"],
      ],
    );
  });
});
