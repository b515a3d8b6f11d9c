import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ATTR, MESH_ERROR } from '../../common/semconv.ts';
import type { SpanRecord } from '../../storage/model.ts';
import { BASE_TIME_NS, TraceBuilder, pod } from '../testing/trace-builder.ts';
import type { PathHop, TracePath } from './model.ts';
import { reconstructPath } from './reconstruct.ts';

const FRONTEND = pod('frontend', 1, 'node-1');
const CHECKOUT = pod('checkout', 1, 'node-2');
const PAYMENTS = pod('payments', 1, 'node-3');

function flatten(hops: readonly PathHop[]): PathHop[] {
  const out: PathHop[] = [];
  const stack = [...hops].reverse();
  while (stack.length > 0) {
    const h = stack.pop()!;
    out.push(h);
    for (let i = h.children.length - 1; i >= 0; i--) stack.push(h.children[i]!);
  }
  return out;
}

function hopOf(path: TracePath, predicate: (h: PathHop) => boolean): PathHop {
  const h = flatten(path.hops).find(predicate);
  assert.ok(h, 'hop not found');
  return h;
}

function path(b: TraceBuilder, spans: readonly SpanRecord[] = b.spans, options = {}): TracePath {
  const p = reconstructPath(b.traceId, spans, options);
  // Whatever the input, the result must serialize.
  JSON.parse(JSON.stringify(p));
  return p;
}

function sumSegments(p: TracePath): bigint {
  return p.criticalPath.segments.reduce((acc, s) => acc + BigInt(s.durationNano), 0n);
}

/** frontend-1 → checkout-1 → payments-1, each relaying the answer of the next. */
function chain(paymentsHttp: number): { b: TraceBuilder; fe: SpanRecord; co: SpanRecord; pay: SpanRecord; db: SpanRecord } {
  const b = new TraceBuilder();
  const relay = paymentsHttp >= 500 ? paymentsHttp : 200;
  const fe = b.server(FRONTEND, undefined, { name: 'GET /checkout', startMs: 0, durationMs: 100, http: relay });
  const c1 = b.client(fe, { startMs: 5, durationMs: 90, http: relay, endpoint: '10.0.2.1:8080', to: CHECKOUT });
  const co = b.server(CHECKOUT, c1, { name: 'POST /orders', startMs: 6, durationMs: 88, http: relay, attrs: { [ATTR.meshPeerIdentity]: 'spiffe://cluster.local/ns/shop/sa/frontend', [ATTR.networkPeerAddress]: '10.0.1.1' } });
  const c2 = b.client(co, { startMs: 10, durationMs: 80, http: paymentsHttp, endpoint: '10.0.3.1:8080', to: PAYMENTS });
  const pay = b.server(PAYMENTS, c2, { name: 'POST /charge', startMs: 11, durationMs: 78, http: paymentsHttp });
  // The payments app's own SDK spans carry no k8s attributes: they still belong to its hop.
  const appServer = b.span('SERVER', { service: 'payments' }, pay, { name: 'POST /charge (app)', startMs: 12, durationMs: 76, status: paymentsHttp >= 500 ? 'ERROR' : 'UNSET' });
  const db = b.span('INTERNAL', { service: 'payments' }, appServer, {
    name: 'db.query',
    startMs: 20,
    durationMs: 60,
    status: paymentsHttp >= 500 ? 'ERROR' : 'UNSET',
    message: paymentsHttp >= 500 ? 'query failed' : '',
    events:
      paymentsHttp >= 500
        ? [{ timeUnixNano: BASE_TIME_NS + 80_000_000n, name: 'exception', attributes: [{ key: 'exception.message', type: 'string', value: 'deadlock detected on table ledger' }] }]
        : [],
  });
  return { b, fe, co, pay, db };
}

void describe('reconstructPath: hops', () => {
  void it('groups sidecar and app spans into one hop per pod, with the client span merged in as the call', () => {
    const { b, pay, db } = chain(200);
    const p = path(b);
    assert.equal(p.status, 'ok');
    assert.equal(p.hopCount, 3);
    assert.deepEqual(p.services, ['frontend', 'checkout', 'payments']);
    assert.equal(p.hops.length, 1);
    const [fe] = p.hops;
    assert.equal(fe!.service, 'frontend');
    assert.equal(fe!.kind, 'server');
    assert.equal(fe!.call, null);
    const co = fe!.children[0]!;
    assert.equal(co.pod, 'checkout-1');
    assert.equal(co.node, 'node-2');
    assert.equal(co.namespace, 'shop');
    assert.equal(co.call?.caller?.pod, 'frontend-1');
    assert.equal(co.call?.endpoint, '10.0.2.1:8080');
    assert.equal(co.call?.httpStatus, 200);
    assert.equal(co.peer?.identity, 'spiffe://cluster.local/ns/shop/sa/frontend');
    assert.equal(co.peer?.service, 'frontend');
    assert.equal(co.peer?.address, '10.0.1.1');
    const payHop = co.children[0]!;
    assert.equal(payHop.id, pay.spanId);
    assert.equal(payHop.spanIds.entry, pay.spanId);
    assert.equal(payHop.spanIds.client.length, 1);
    assert.ok(payHop.spanIds.app.includes(db.spanId));
    assert.equal(payHop.appSpans.length, 2);
    assert.equal(payHop.startTime, '2023-11-14T22:13:20.011000000Z');
    assert.equal(payHop.durationMs, 78);
    assert.equal(p.rootCause, null);
    assert.deepEqual(p.recoveredErrors, []);
    assert.match(p.summary, /succeeded: 3 hops across 3 services in 100 ms/);
  });
});

void describe('reconstructPath: calls', () => {
  void it("merges the app's own CLIENT span and the outbound sidecar's into one call", () => {
    const b = new TraceBuilder();
    const fe = b.server(FRONTEND, undefined, { startMs: 0, durationMs: 50, http: 200 });
    const appServer = b.span('SERVER', { service: 'frontend' }, fe, { name: 'GET / (app)', startMs: 1, durationMs: 48 });
    const appClient = b.span('CLIENT', { service: 'frontend' }, appServer, { name: 'HTTP POST', startMs: 2, durationMs: 40, http: 200 });
    const sidecar = b.client(appClient, { startMs: 3, durationMs: 38, http: 200, endpoint: '10.0.2.1:8080', to: CHECKOUT });
    b.server(CHECKOUT, sidecar, { startMs: 4, durationMs: 36, http: 200 });
    const p = path(b);
    assert.equal(p.hopCount, 2);
    const co = hopOf(p, (h) => h.service === 'checkout');
    assert.deepEqual(co.call?.clientSpanIds, [appClient.spanId, sidecar.spanId]);
    assert.equal(co.call?.endpoint, '10.0.2.1:8080');
    assert.deepEqual(p.hops[0]!.spanIds.app, [appServer.spanId]);
  });

  void it('shows a call out of the mesh (a database) as a client hop that was reached', () => {
    const b = new TraceBuilder();
    const fe = b.server(FRONTEND, undefined, { startMs: 0, durationMs: 50, http: 200 });
    b.span('CLIENT', { service: 'frontend' }, fe, { name: 'redis GET', startMs: 2, durationMs: 3 }, { [ATTR.serverAddress]: 'redis.shop.svc.cluster.local', [ATTR.serverPort]: 6379 });
    const p = path(b);
    const redis = hopOf(p, (h) => h.kind === 'client');
    assert.equal(redis.service, 'redis');
    assert.equal(redis.namespace, 'shop');
    assert.equal(redis.call?.endpoint, 'redis.shop.svc.cluster.local:6379');
    assert.equal(redis.serverObserved, false);
    assert.equal(redis.unreached, false);
    assert.equal(redis.status, 'ok');
  });
});

void describe('reconstructPath: root cause', () => {
  void it('names the deepest pod that returned 500, not the hops that relayed it', () => {
    const { b, pay } = chain(500);
    const p = path(b);
    assert.equal(p.status, 'error');
    const rc = p.rootCause;
    assert.ok(rc);
    assert.equal(rc.service, 'payments');
    assert.equal(rc.pod, 'payments-1');
    assert.equal(rc.node, 'node-3');
    assert.equal(rc.namespace, 'shop');
    assert.equal(rc.spanId, pay.spanId);
    assert.equal(rc.httpStatus, 500);
    assert.equal(rc.reason, 'HTTP_500');
    assert.equal(rc.meshErrorCode, null);
    assert.equal(rc.message, 'deadlock detected on table ledger');
    // The sidecar that saw the app's 500 first: payments-1's inbound side.
    assert.deepEqual(rc.observedBy, { service: 'payments', pod: 'payments-1', spanId: pay.spanId, direction: 'inbound' });
    assert.equal(rc.summary, 'payments-1 on node-3 (service payments) returned 500: deadlock detected on table ledger');
    assert.equal(p.summary, rc.summary);
    for (const h of flatten(p.hops)) assert.equal(h.onFailurePath, true, `${h.service} is on the failure path`);
    assert.deepEqual(p.additionalFailures, []);
    assert.deepEqual(p.recoveredErrors, []);
  });

  void it('names the unreachable target pod when a connection is refused at depth 2', () => {
    const b = new TraceBuilder();
    const fe = b.server(FRONTEND, undefined, { startMs: 0, durationMs: 20, http: 503 });
    const c1 = b.client(fe, { startMs: 1, durationMs: 18, http: 503, endpoint: '10.0.2.1:8080', to: CHECKOUT });
    const co = b.server(CHECKOUT, c1, { startMs: 2, durationMs: 16, http: 503 });
    const refused = b.client(co, {
      startMs: 3,
      durationMs: 1,
      endpoint: '10.0.3.2:8080',
      to: { service: 'payments', pod: 'payments-2', node: 'node-4' },
      meshError: MESH_ERROR.connectionRefused,
      message: 'connect ECONNREFUSED 10.0.3.2:8080',
    });
    const p = path(b);
    const rc = p.rootCause;
    assert.ok(rc);
    assert.equal(rc.service, 'payments');
    assert.equal(rc.pod, 'payments-2');
    assert.equal(rc.node, 'node-4');
    assert.equal(rc.reason, 'CONNECTION_REFUSED');
    assert.equal(rc.meshErrorCode, 'CONNECTION_REFUSED');
    assert.equal(rc.unreached, true);
    assert.equal(rc.endpoint, '10.0.3.2:8080');
    assert.equal(rc.spanId, refused.spanId);
    assert.deepEqual(rc.observedBy, { service: 'checkout', pod: 'checkout-1', spanId: refused.spanId, direction: 'outbound' });
    assert.equal(
      rc.summary,
      'payments-2 on node-4 (service payments) was not reached: CONNECTION_REFUSED: connect ECONNREFUSED 10.0.3.2:8080; observed by the outbound sidecar of checkout-1 (service checkout) calling 10.0.3.2:8080',
    );
    const target = hopOf(p, (h) => h.kind === 'client');
    assert.equal(target.id, `call:${refused.spanId}`);
    assert.equal(target.unreached, true);
    assert.equal(target.serverObserved, false);
    assert.equal(target.pod, 'payments-2');
    assert.equal(target.onFailurePath, true);
    assert.equal(target.peer?.pod, 'checkout-1');
    // The refused call is the target hop's call, not an app span of checkout.
    assert.deepEqual(hopOf(p, (h) => h.service === 'checkout').spanIds.app, []);
  });

  void it('picks the failing branch of a parallel fan-out', () => {
    const b = new TraceBuilder();
    const fe = b.server(FRONTEND, undefined, { startMs: 0, durationMs: 100, http: 500 });
    const branches = [
      { to: pod('inventory', 1, 'node-2'), http: 200, start: 5, dur: 60 },
      { to: pod('payments', 3, 'node-5'), http: 500, start: 6, dur: 30 },
      { to: pod('shipping', 2, 'node-2'), http: 200, start: 7, dur: 80 },
    ];
    for (const br of branches) {
      const c = b.client(fe, { startMs: br.start, durationMs: br.dur, http: br.http, to: br.to });
      b.server(br.to, c, { startMs: br.start + 1, durationMs: br.dur - 2, http: br.http, message: br.http === 500 ? 'insufficient funds service down' : '' });
    }
    const p = path(b);
    assert.equal(p.rootCause?.pod, 'payments-3');
    assert.equal(p.rootCause?.node, 'node-5');
    assert.equal(p.rootCause?.message, 'insufficient funds service down');
    assert.equal(hopOf(p, (h) => h.service === 'inventory').onFailurePath, false);
    assert.equal(hopOf(p, (h) => h.service === 'payments').onFailurePath, true);
    assert.equal(p.hops[0]!.onFailurePath, true);
    // The slowest branch (shipping) is what the user waited for.
    assert.deepEqual(
      p.criticalPath.hopIds.map((id) => flatten(p.hops).find((h) => h.id === id)?.service),
      ['frontend', 'shipping'],
    );
    assert.equal(sumSegments(p), 100_000_000n);
  });

  void it('hangs the answer to a retried try under that try, as the try span names it (mesh.retry.peer_span_id)', () => {
    // What a sidecar writes: every try sends the hop span's id, so both payments server spans
    // are children of the hop span; the failed try's span is a sibling of the hop span.
    const b = new TraceBuilder();
    const fe = b.server(FRONTEND, undefined, { startMs: 0, durationMs: 100, http: 200 });
    const c1 = b.client(fe, { startMs: 1, durationMs: 98, http: 200, to: CHECKOUT });
    const co = b.server(CHECKOUT, c1, { startMs: 2, durationMs: 96, http: 200 });
    const hop = b.client(co, { startMs: 3, durationMs: 60, http: 200, to: pod('payments', 2, 'node-4'), retryAttempt: 1 });
    const refused = b.server(PAYMENTS, hop, { startMs: 4, durationMs: 2, http: 502, attrs: { [ATTR.meshErrorCode]: MESH_ERROR.connectionRefused } });
    b.client(co, { startMs: 3, durationMs: 4, http: 502, to: PAYMENTS, retryAttempt: 0, attrs: { [ATTR.meshRetryRecovered]: true, [ATTR.meshRetryPeerSpanId]: refused.spanId } });
    b.server(pod('payments', 2, 'node-4'), hop, { startMs: 31, durationMs: 18, http: 200 });
    const p = path(b);
    assert.equal(p.status, 'ok');
    assert.equal(p.rootCause, null);
    assert.deepEqual(
      p.recoveredErrors.map((r) => [r.pod, r.reason]),
      [['payments-1', MESH_ERROR.connectionRefused]],
    );
    assert.deepEqual(p.completeness.unreportedPeers, [], 'each try has its peer\'s side');
    const attempts = hopOf(p, (h) => h.service === 'checkout').children;
    assert.deepEqual(
      attempts.map((h) => [h.call?.retryAttempt, h.pod, h.status]),
      [
        [0, 'payments-1', 'error'],
        [1, 'payments-2', 'ok'],
      ],
    );
  });

  void it('reports no root cause but a recovered error when a retry succeeded', () => {
    const b = new TraceBuilder();
    const fe = b.server(FRONTEND, undefined, { startMs: 0, durationMs: 100, http: 200 });
    const c1 = b.client(fe, { startMs: 1, durationMs: 98, http: 200, to: CHECKOUT });
    const co = b.server(CHECKOUT, c1, { startMs: 2, durationMs: 96, http: 200 });
    const a0 = b.client(co, { startMs: 3, durationMs: 20, http: 500, to: PAYMENTS, retryAttempt: 0 });
    b.server(PAYMENTS, a0, { startMs: 4, durationMs: 18, http: 500, message: 'ledger unavailable' });
    const a1 = b.client(co, { startMs: 30, durationMs: 20, http: 200, to: pod('payments', 2, 'node-4'), retryAttempt: 1 });
    b.server(pod('payments', 2, 'node-4'), a1, { startMs: 31, durationMs: 18, http: 200 });
    const p = path(b);
    assert.equal(p.status, 'ok');
    assert.equal(p.rootCause, null);
    assert.equal(p.recoveredErrors.length, 1);
    assert.equal(p.recoveredErrors[0]!.pod, 'payments-1');
    assert.equal(p.recoveredErrors[0]!.reason, 'HTTP_500');
    assert.match(p.summary, /1 failure was recovered \(first: payments-1 on node-3 \(service payments\) returned 500: ledger unavailable\)/);
    const attempts = hopOf(p, (h) => h.service === 'checkout').children;
    assert.deepEqual(attempts.map((h) => h.call?.retryAttempt), [0, 1]);
    assert.deepEqual(attempts.map((h) => h.status), ['error', 'ok']);
    for (const h of flatten(p.hops)) assert.equal(h.onFailurePath, false);
  });

  void it('names the slow pod when the caller timed out, even though that pod answered later', () => {
    const b = new TraceBuilder();
    const fe = b.server(FRONTEND, undefined, { startMs: 0, durationMs: 1010, http: 504 });
    const c1 = b.client(fe, { startMs: 2, durationMs: 1006, http: 504, to: CHECKOUT });
    const co = b.server(CHECKOUT, c1, { startMs: 3, durationMs: 1004, http: 504 });
    const c2 = b.client(co, { startMs: 4, durationMs: 1000, http: 504, to: PAYMENTS, meshError: MESH_ERROR.timeout });
    b.server(PAYMENTS, c2, { startMs: 5, durationMs: 3000, http: 200 });
    const p = path(b);
    assert.equal(p.rootCause?.pod, 'payments-1');
    assert.equal(p.rootCause?.reason, 'UPSTREAM_TIMEOUT');
    assert.equal(p.rootCause?.unreached, false);
    assert.equal(p.rootCause?.summary, 'payments-1 on node-3 (service payments) did not answer in time (UPSTREAM_TIMEOUT after 1000 ms); observed by the outbound sidecar of checkout-1 (service checkout); it took 3000 ms');
    // The late server span does not stretch the critical path past the root.
    assert.equal(sumSegments(p), 1_010_000_000n);
  });

  void it('names the target of a timed-out call whose server span never arrived, without calling it unreached', () => {
    const b = new TraceBuilder();
    const fe = b.server(FRONTEND, undefined, { startMs: 0, durationMs: 1010, http: 504 });
    b.client(fe, { startMs: 2, durationMs: 1000, http: 504, to: CHECKOUT, meshError: MESH_ERROR.timeout });
    const p = path(b);
    const rc = p.rootCause;
    assert.equal(rc?.pod, 'checkout-1');
    assert.equal(rc?.reason, 'UPSTREAM_TIMEOUT');
    assert.equal(rc?.unreached, false);
    assert.equal(hopOf(p, (h) => h.kind === 'client').serverObserved, false);
  });

  void it('treats a policy denial by the inbound sidecar as the failure of that hop', () => {
    const b = new TraceBuilder();
    const fe = b.server(FRONTEND, undefined, { startMs: 0, durationMs: 10, http: 500 });
    const c = b.client(fe, { startMs: 1, durationMs: 5, http: 403, to: CHECKOUT, status: 'ERROR' });
    b.server(CHECKOUT, c, { startMs: 2, durationMs: 1, http: 403, attrs: { [ATTR.meshErrorCode]: MESH_ERROR.policyDenied }, message: 'no policy allows spiffe://cluster.local/ns/shop/sa/frontend' });
    const p = path(b);
    assert.equal(p.rootCause?.pod, 'checkout-1');
    assert.equal(p.rootCause?.reason, 'POLICY_DENIED');
    assert.match(p.rootCause?.summary ?? '', /^checkout-1 on node-2 \(service checkout\) rejected the request: POLICY_DENIED: no policy allows/);
  });

  void it('names the target when the root span itself is a client call that was refused', () => {
    const b = new TraceBuilder();
    b.span('CLIENT', { service: 'loadgen' }, undefined, { startMs: 0, durationMs: 1, status: 'ERROR' }, {
      [ATTR.meshErrorCode]: MESH_ERROR.noEndpoint,
      [ATTR.meshDestinationService]: 'frontend.shop.svc.cluster.local',
    });
    const p = path(b);
    assert.equal(p.hops[0]!.kind, 'internal');
    assert.equal(p.hops[0]!.children[0]!.kind, 'client');
    assert.equal(p.rootCause?.service, 'frontend');
    assert.equal(p.rootCause?.namespace, 'shop');
    assert.equal(p.rootCause?.reason, 'NO_ENDPOINT');
    assert.equal(p.rootCause?.observedBy?.service, 'loadgen');
  });

  void it('reports both failing branches, earliest first, when two failures reached the root', () => {
    const b = new TraceBuilder();
    const fe = b.server(FRONTEND, undefined, { startMs: 0, durationMs: 100, http: 500 });
    const late = b.client(fe, { startMs: 1, durationMs: 90, http: 500, to: CHECKOUT });
    b.server(CHECKOUT, late, { startMs: 2, durationMs: 88, http: 500 });
    const early = b.client(fe, { startMs: 1, durationMs: 10, http: 500, to: PAYMENTS });
    b.server(PAYMENTS, early, { startMs: 2, durationMs: 8, http: 500 });
    const p = path(b);
    assert.equal(p.rootCause?.service, 'payments');
    assert.deepEqual(p.additionalFailures.map((f) => f.service), ['checkout']);
  });
});

void describe('reconstructPath: imperfect traces', () => {
  void it('attaches orphans to the root with a warning', () => {
    const { b, pay } = chain(500);
    // The checkout hop's spans were lost: payments now points at a span that is not there.
    const lost = new Set(b.spans.filter((s) => s.serviceName === 'checkout').map((s) => s.spanId));
    const spans = b.spans.filter((s) => !lost.has(s.spanId));
    const p = path(b, spans);
    const payHop = hopOf(p, (h) => h.id === pay.spanId);
    assert.equal(p.hops[0]!.children.includes(payHop), true);
    assert.equal(payHop.missingParentSpanId, pay.parentSpanId);
    assert.equal(payHop.call, null);
    assert.ok(p.warnings.some((w) => w.includes(pay.spanId) && w.includes('not in the trace')));
    // The failure still points at payments.
    assert.equal(p.rootCause?.pod, 'payments-1');
  });

  void it('takes the earliest orphan as root when the root span is missing', () => {
    const { b, fe } = chain(200);
    const p = path(b, b.spans.filter((s) => s.spanId !== fe.spanId));
    assert.equal(p.hops[0]!.service, 'frontend'); // the frontend's client span stands in
    assert.ok(p.warnings.some((w) => w.includes('root span is missing')));
  });

  void it('survives parent-id cycles', () => {
    const b = new TraceBuilder();
    b.server(FRONTEND, undefined, { startMs: 0, durationMs: 10, spanId: 'aaaaaaaaaaaaaaaa', parentSpanId: 'bbbbbbbbbbbbbbbb' });
    b.server(CHECKOUT, undefined, { startMs: 1, durationMs: 5, spanId: 'bbbbbbbbbbbbbbbb', parentSpanId: 'aaaaaaaaaaaaaaaa' });
    const p = path(b);
    assert.equal(p.hopCount, 2);
    assert.ok(p.warnings.some((w) => w.includes('cycle')));
  });

  void it('undoes clock skew between pods and reports it', () => {
    const b = new TraceBuilder();
    const fe = b.server(FRONTEND, undefined, { startMs: 0, durationMs: 100, http: 200 });
    const c = b.client(fe, { startMs: 10, durationMs: 80, http: 200, to: PAYMENTS });
    // payments' clock runs 50 ms behind: its span appears to start before the call.
    const pay = b.server(PAYMENTS, c, { startMs: -35, durationMs: 70, http: 200 });
    b.app(pay, { startMs: -30, durationMs: 60 });
    const p = path(b);
    const payHop = hopOf(p, (h) => h.service === 'payments');
    assert.equal(BigInt(payHop.startUnixNano), BASE_TIME_NS + 15_000_000n); // centred in the 80 ms call
    assert.equal(payHop.clockSkewAdjustmentNano, '50000000');
    assert.equal(BigInt(payHop.appSpans[0]!.startUnixNano), BASE_TIME_NS + 20_000_000n); // same pod, same shift
    assert.ok(p.warnings.some((w) => w.startsWith('clock skew') && w.includes('payments-1') && w.includes('shifted by 50 ms')));
    assert.equal(sumSegments(p), 100_000_000n);

    const raw = path(b, b.spans, { adjustClockSkew: false });
    assert.equal(hopOf(raw, (h) => h.service === 'payments').clockSkewAdjustmentNano, '0');
    assert.ok(raw.warnings.some((w) => w.includes('not adjusted')));
  });

  void it('drops exact duplicate spans and keeps conflicting ones with a warning', () => {
    const { b, pay } = chain(200);
    const dupExact = { ...pay };
    const dupConflict = { ...pay, name: 'something else', startTimeUnixNano: pay.startTimeUnixNano + 1n };
    const p = path(b, [...b.spans, dupExact, dupConflict]);
    assert.equal(p.spanCount, b.spans.length + 1);
    assert.ok(p.warnings.some((w) => w.includes('stored more than once')));
    assert.ok(p.warnings.some((w) => w.includes('used by 2 different spans')));
    assert.equal(p.status, 'ok');
  });

  void it('caps huge traces, keeping the failing spans', () => {
    const b = new TraceBuilder();
    const fe = b.server(FRONTEND, undefined, { startMs: 0, durationMs: 1000, http: 500 });
    for (let i = 0; i < 5000; i++) b.app(fe, { startMs: 1 + i / 10, durationMs: 0.05, name: `cache.get ${i}` });
    const c = b.client(fe, { startMs: 900, durationMs: 50, http: 500, to: PAYMENTS });
    b.server(PAYMENTS, c, { startMs: 901, durationMs: 48, http: 500 });
    const p = path(b, b.spans, { maxSpans: 100 });
    assert.equal(p.truncated, true);
    assert.ok(p.spanCount <= 101);
    assert.ok(p.warnings.some((w) => w.includes('only 100')));
    assert.equal(p.rootCause?.pod, 'payments-1');
  });

  void it('handles very deep traces without overflowing the stack', () => {
    const b = new TraceBuilder();
    let parent = b.server(pod('svc', 0, 'node-0'), undefined, { startMs: 0, durationMs: 10_000 });
    for (let i = 1; i < 3000; i++) {
      const c = b.client(parent, { startMs: i, durationMs: 10_000 - 2 * i, to: pod('svc', i, 'node-0') });
      parent = b.server(pod('svc', i, 'node-0'), c, { startMs: i + 0.5, durationMs: 10_000 - 2 * i - 1, http: i === 2999 ? 500 : 200 });
    }
    const p = path(b, b.spans);
    assert.equal(p.hopCount, 3000);
    assert.equal(p.rootCause, null); // the deep failure was not relayed to the root
    assert.equal(p.recoveredErrors[0]?.pod, 'svc-2999');
    assert.equal(p.criticalPath.hopIds.length, 3000);
    assert.ok(p.warnings.some((w) => w.includes('deeper than 256')));
  });
});

void describe('critical path', () => {
  void it('follows the last-finishing child and lets the parent own the gaps', () => {
    const b = new TraceBuilder();
    const root = b.server(FRONTEND, undefined, { startMs: 0, durationMs: 100 });
    const a = b.app(root, { name: 'a', startMs: 10, durationMs: 30 }); // 10–40, overlaps b
    const bb = b.app(root, { name: 'b', startMs: 30, durationMs: 60 }); // 30–90
    const c = b.app(bb, { name: 'c', startMs: 35, durationMs: 50 }); // 35–85
    const p = path(b);
    const segs = p.criticalPath.segments.map((s) => [s.spanId, Number((BigInt(s.startUnixNano) - BASE_TIME_NS) / 1_000_000n), Number((BigInt(s.endUnixNano) - BASE_TIME_NS) / 1_000_000n)]);
    assert.deepEqual(segs, [
      [root.spanId, 0, 30],
      [bb.spanId, 30, 35],
      [c.spanId, 35, 85],
      [bb.spanId, 85, 90],
      [root.spanId, 90, 100],
    ]);
    assert.ok(!p.criticalPath.spanIds.includes(a.spanId));
    assert.equal(sumSegments(p), 100_000_000n);
  });

  void it('includes back-to-back sequential calls', () => {
    const b = new TraceBuilder();
    const root = b.server(FRONTEND, undefined, { startMs: 0, durationMs: 100 });
    const a = b.app(root, { name: 'a', startMs: 10, durationMs: 30 }); // 10–40
    const bb = b.app(root, { name: 'b', startMs: 40, durationMs: 50 }); // 40–90
    const p = path(b);
    assert.deepEqual(p.criticalPath.spanIds, [root.spanId, bb.spanId, a.spanId]);
    assert.equal(sumSegments(p), 100_000_000n);
  });
});
