// End to end through real sidecars and real apps on loopback:
//   app-a(test) → sidecar-a(out) → sidecar-b(in) → app-b(instrumented) → sidecar-b(out) → sidecar-c(in) → app-c
// One trace across every hop, W3C and B3 input, invalid headers, and each mesh failure as an
// error span at the hop that produced it with a synthesized response.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { extractTraceContext, formatTraceparent } from '../common/trace-context.ts';
import { ATTR, MESH_ERROR, MESH_ERROR_HEADER } from '../common/semconv.ts';
import { closedPort, httpRequest, startServer, startTestSidecar, waitFor, type TestServer, type TestSidecar } from '../sidecar/testing/harness.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

interface Mesh {
  a: TestSidecar;
  b: TestSidecar;
  c: TestSidecar;
  appB: TestServer;
  appC: TestServer;
  appSpans: InMemorySpanExporter;
  appProvider: BasicTracerProvider;
  resetServer: NetServer;
  hangServer: NetServer;
}

async function listenNet(server: NetServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

let mesh: Mesh;

/** Every span of every sidecar and of app-b. */
async function allSpans(): Promise<ReadableSpan[]> {
  const [a, b, c] = await Promise.all([mesh.a.finishedSpans(), mesh.b.finishedSpans(), mesh.c.finishedSpans()]);
  return [...a, ...b, ...c, ...mesh.appSpans.getFinishedSpans()];
}

function service(s: ReadableSpan): unknown {
  return s.resource.attributes[ATTR.serviceName];
}

/** Waits for the spans of one trace until `count` are there. */
async function traceSpans(traceId: string, count: number): Promise<ReadableSpan[]> {
  return waitFor(async () => {
    const spans = (await allSpans()).filter((s) => s.spanContext().traceId === traceId);
    return spans.length >= count ? spans : undefined;
  }, `${count} spans of trace ${traceId}`);
}

function one(spans: ReadableSpan[], pred: (s: ReadableSpan) => boolean, what: string): ReadableSpan {
  const found = spans.filter(pred);
  assert.equal(found.length, 1, `expected exactly one ${what}, got ${found.length}: ${found.map((s) => s.name).join(', ')}`);
  return found[0] as ReadableSpan;
}

const hop = (svc: string, dir: 'inbound' | 'outbound') => (s: ReadableSpan) => service(s) === svc && s.attributes[ATTR.meshDirection] === dir;

/** The span of a given request, found by its x-request-id. */
async function spanOf(t: TestSidecar, requestId: string, dir: 'inbound' | 'outbound'): Promise<ReadableSpan> {
  return waitFor(async () => {
    const spans = await t.finishedSpans();
    // The hop's own span, not the spans of tries that were retried (mesh.retry.retried).
    return spans.find((s) => s.attributes[ATTR.requestId] === requestId && s.attributes[ATTR.meshDirection] === dir && s.attributes[ATTR.meshRetryRecovered] === undefined);
  }, `${dir} span of request ${requestId}`);
}

function assertMeshErrorSpan(span: ReadableSpan, code: string, status: number): void {
  assert.equal(span.attributes[ATTR.meshErrorCode], code);
  assert.equal(span.attributes[ATTR.errorType], code);
  assert.equal(span.attributes[ATTR.httpResponseStatusCode], status);
  assert.equal(span.status.code, SpanStatusCode.ERROR);
  const ev = span.events.find((e) => e.name === 'exception');
  assert.ok(ev, 'exception event');
  assert.equal(ev.attributes?.['exception.type'], code);
}

function assertSynthesized(r: { status: number; headers: Record<string, unknown>; body: string }, status: number, code: string, hopService: string): void {
  assert.equal(r.status, status);
  assert.equal(r.headers[MESH_ERROR_HEADER], code);
  const body = JSON.parse(r.body) as { error: { code: string; message: string; hop: { service: string; pod: string } } };
  assert.equal(body.error.code, code);
  assert.ok(body.error.message.length > 0);
  assert.deepEqual(body.error.hop, { service: hopService, pod: `${hopService}-1` });
}

void describe('sidecar mesh end to end', () => {
  before(async () => {
    const appSpans = new InMemorySpanExporter();
    const appProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(appSpans)] });
    const appTracer = appProvider.getTracer('app-b');

    // app-c: uninstrumented; echoes what it received.
    const appC = await startServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ app: 'c', url: req.url, headers: req.headers }));
    });
    const c = await startTestSidecar({ service: 'c', appPort: appC.port });

    // app-b: instrumented with its own SDK; joins the trace and calls c through its sidecar.
    let bOutbound = 0;
    const appB = await startServer((req, res) => {
      const url = req.url ?? '/';
      if (url === '/reset') {
        req.socket.destroy();
        return;
      }
      if (url === '/reset-mid-body') {
        res.writeHead(200, { 'content-length': '100' });
        res.write('partial');
        setImmediate(() => req.socket.destroy());
        return;
      }
      if (url === '/hang') return; // never answers
      if (url === '/not-found') {
        res.statusCode = 404;
        res.end('nope');
        return;
      }
      if (url === '/boom') {
        res.statusCode = 500;
        res.end('app failed');
        return;
      }
      if (url === '/echo') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ app: 'b', headers: req.headers }));
        return;
      }
      // /chain: handle with an app span, call c.
      const incoming = extractTraceContext(req.headers);
      const parent =
        incoming.kind === 'found' ? trace.setSpanContext(ROOT_CONTEXT, { traceId: incoming.context.traceId, spanId: incoming.context.spanId, traceFlags: incoming.context.traceFlags, isRemote: true }) : ROOT_CONTEXT;
      const span: Span = appTracer.startSpan('app-b handler', { kind: SpanKind.SERVER }, parent);
      const sc = span.spanContext();
      const headers: Record<string, string> = { host: 'c', traceparent: formatTraceparent(sc.traceId, sc.spanId, sc.traceFlags) };
      for (const h of ['x-request-id', 'baggage', 'tracestate']) {
        const v = req.headers[h];
        if (typeof v === 'string') headers[h] = v;
      }
      httpRequest(bOutbound, { path: '/from-b', headers }).then(
        (r) => {
          span.end();
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ app: 'b', received: req.headers, fromC: JSON.parse(r.body) as unknown }));
        },
        (err: unknown) => {
          span.end();
          res.statusCode = 500;
          res.end(String(err));
        },
      );
    });
    const b = await startTestSidecar({ service: 'b', appPort: appB.port, upstreamTimeoutMs: 400 }, { c: [{ address: `127.0.0.1:${c.sidecar.inboundPort}`, pod: 'c-1', node: 'node-3' }] });
    bOutbound = b.sidecar.outboundPort;

    const resetServer = createNetServer((sock) => {
      sock.on('error', () => {});
      sock.once('data', () => sock.resetAndDestroy());
    });
    const hangServer = createNetServer((sock) => sock.on('error', () => {}));
    const resetPort = await listenNet(resetServer);
    const hangPort = await listenNet(hangServer);

    const a = await startTestSidecar(
      { service: 'a', appPort: await closedPort(), upstreamTimeoutMs: 1200 },
      {
        b: [{ address: `127.0.0.1:${b.sidecar.inboundPort}`, pod: 'b-1', node: 'node-2', namespace: 'default' }],
        down: [{ address: `127.0.0.1:${await closedPort()}`, pod: 'down-1' }],
        resetter: [{ address: `127.0.0.1:${resetPort}`, pod: 'resetter-1' }],
        hanger: [{ address: `127.0.0.1:${hangPort}`, pod: 'hanger-1' }],
        empty: [],
      },
    );
    mesh = { a, b, c, appB, appC, appSpans, appProvider, resetServer, hangServer };
  });

  after(async () => {
    await Promise.all([mesh.a.close(), mesh.b.close(), mesh.c.close()]);
    await Promise.all([mesh.appB.close(), mesh.appC.close(), mesh.appProvider.shutdown()]);
    mesh.resetServer.close();
    mesh.hangServer.close();
  });

  void it('carries one trace across every hop with correct parent/child links', async () => {
    const r = await httpRequest(mesh.a.sidecar.outboundPort, {
      path: '/chain?q=1',
      headers: { host: 'b', 'x-request-id': 'req-chain-1', baggage: 'user=alice', 'user-agent': 'e2e-test/1.0' },
    });
    assert.equal(r.status, 200, r.body);
    const body = JSON.parse(r.body) as { received: Record<string, string>; fromC: { headers: Record<string, string> } };

    const aOut = await spanOf(mesh.a, 'req-chain-1', 'outbound');
    const traceId = aOut.spanContext().traceId;
    const spans = await traceSpans(traceId, 5);
    const bIn = one(spans, hop('b', 'inbound'), 'b inbound span');
    const app = one(spans, (s) => s.name === 'app-b handler', 'app-b span');
    const bOut = one(spans, hop('b', 'outbound'), 'b outbound span');
    const cIn = one(spans, hop('c', 'inbound'), 'c inbound span');

    // A new trace starts at a (no incoming context), then each hop is the child of the one before.
    assert.equal(aOut.parentSpanContext, undefined);
    assert.equal(bIn.parentSpanContext?.spanId, aOut.spanContext().spanId);
    assert.equal(app.parentSpanContext?.spanId, bIn.spanContext().spanId);
    assert.equal(bOut.parentSpanContext?.spanId, app.spanContext().spanId);
    assert.equal(cIn.parentSpanContext?.spanId, bOut.spanContext().spanId);

    // The apps see a traceparent whose parent is their sidecar's SERVER span; a started the
    // trace with random ids, so the Level 2 random flag (02) rides along with sampled (01).
    assert.equal(body.received['traceparent'], formatTraceparent(traceId, bIn.spanContext().spanId, 3));
    assert.equal(body.fromC.headers['traceparent'], formatTraceparent(traceId, cIn.spanContext().spanId, 1));
    // x-request-id and baggage pass through; mesh-internal headers do not reach the app.
    assert.equal(body.received['x-request-id'], 'req-chain-1');
    assert.equal(body.fromC.headers['x-request-id'], 'req-chain-1');
    assert.equal(body.received['baggage'], 'user=alice');
    assert.equal(body.fromC.headers['baggage'], 'user=alice');
    assert.equal(body.received['x-tracemesh-source-workload'], undefined);

    // Span kinds, names and semantic-convention attributes.
    assert.equal(aOut.kind, SpanKind.CLIENT);
    assert.equal(bIn.kind, SpanKind.SERVER);
    assert.equal(aOut.name, 'GET');
    assert.equal(aOut.attributes[ATTR.httpRequestMethod], 'GET');
    assert.equal(aOut.attributes[ATTR.urlPath], '/chain');
    assert.equal(aOut.attributes[ATTR.httpResponseStatusCode], 200);
    assert.equal(aOut.attributes[ATTR.serverAddress], 'b');
    assert.equal(aOut.attributes[ATTR.meshDestinationService], 'b');
    assert.equal(aOut.attributes[ATTR.meshEndpoint], `127.0.0.1:${mesh.b.sidecar.inboundPort}`);
    assert.equal(aOut.attributes[ATTR.meshEndpointPod], 'b-1');
    assert.equal(aOut.attributes[ATTR.meshEndpointNode], 'node-2');
    assert.equal(aOut.attributes[ATTR.networkPeerAddress], '127.0.0.1');
    assert.equal(aOut.attributes[ATTR.networkPeerPort], mesh.b.sidecar.inboundPort);
    assert.equal(aOut.attributes[ATTR.meshRetryAttempt], 0);
    assert.equal(aOut.attributes[ATTR.userAgentOriginal], 'e2e-test/1.0');
    assert.equal(aOut.attributes[ATTR.networkProtocolVersion], '1.1');
    assert.equal(aOut.attributes[ATTR.requestId], 'req-chain-1');
    assert.equal(aOut.status.code, SpanStatusCode.UNSET);
    assert.equal(bIn.attributes[ATTR.meshDirection], 'inbound');
    assert.equal(bIn.attributes[ATTR.networkPeerAddress], '127.0.0.1');
    assert.equal(bIn.attributes[ATTR.httpResponseStatusCode], 200);
    assert.equal(bOut.attributes[ATTR.meshEndpointPod], 'c-1');

    // Resource attributes.
    assert.equal(bIn.resource.attributes[ATTR.serviceName], 'b');
    assert.equal(bIn.resource.attributes[ATTR.k8sPodName], 'b-1');
    assert.equal(bIn.resource.attributes[ATTR.k8sNamespaceName], 'default');
    assert.equal(bIn.resource.attributes[ATTR.k8sNodeName], 'node-1');
    assert.equal(typeof bIn.resource.attributes[ATTR.serviceInstanceId], 'string');
  });

  void it('continues an incoming W3C trace and passes tracestate through', async () => {
    const r = await httpRequest(mesh.a.sidecar.outboundPort, {
      path: '/chain',
      headers: { host: 'b:80', traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'vendor=abc,other=1', 'x-request-id': 'req-w3c' },
    });
    assert.equal(r.status, 200, r.body);
    const body = JSON.parse(r.body) as { received: Record<string, string>; fromC: { headers: Record<string, string> } };
    const spans = await traceSpans(TRACE, 5);
    const aOut = one(spans, (s) => hop('a', 'outbound')(s) && s.attributes[ATTR.requestId] === 'req-w3c', 'a outbound span');
    assert.equal(aOut.parentSpanContext?.spanId, SPAN);
    assert.equal(aOut.parentSpanContext?.isRemote, true);
    assert.equal(aOut.spanContext().traceState?.serialize(), 'vendor=abc,other=1');
    assert.equal(body.received['tracestate'], 'vendor=abc,other=1');
    assert.match(body.received['traceparent'] ?? '', new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
  });

  void it('converts B3 single and multi headers to W3C and removes them', async () => {
    const single = await httpRequest(mesh.a.sidecar.outboundPort, {
      path: '/echo',
      headers: { host: 'b', b3: `a3ce929d0e0e4736-${SPAN}-1`, 'x-request-id': 'req-b3-single' },
    });
    assert.equal(single.status, 200);
    const sh = (JSON.parse(single.body) as { headers: Record<string, string> }).headers;
    assert.equal(sh['b3'], undefined);
    assert.match(sh['traceparent'] ?? '', /^00-0000000000000000a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    const aOut = await spanOf(mesh.a, 'req-b3-single', 'outbound');
    assert.equal(aOut.spanContext().traceId, '0000000000000000a3ce929d0e0e4736');
    assert.equal(aOut.parentSpanContext?.spanId, SPAN);

    const multi = await httpRequest(mesh.a.sidecar.outboundPort, {
      path: '/echo',
      headers: { host: 'b', 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': '1', 'x-b3-parentspanid': 'abcdefabcdefabcd', 'x-request-id': 'req-b3-multi' },
    });
    const mh = (JSON.parse(multi.body) as { headers: Record<string, string> }).headers;
    for (const h of ['x-b3-traceid', 'x-b3-spanid', 'x-b3-sampled', 'x-b3-parentspanid']) assert.equal(mh[h], undefined, h);
    assert.match(mh['traceparent'] ?? '', new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    const bIn = await spanOf(mesh.b, 'req-b3-multi', 'inbound');
    assert.equal(bIn.spanContext().traceId, TRACE);
  });

  void it('starts a new trace on an invalid traceparent, records the bad value, and still succeeds', async () => {
    const bad = '00-not-a-valid-traceparent-01';
    const r = await httpRequest(mesh.a.sidecar.outboundPort, { path: '/echo', headers: { host: 'b', traceparent: bad, 'x-request-id': 'req-invalid' } });
    assert.equal(r.status, 200);
    const aOut = await spanOf(mesh.a, 'req-invalid', 'outbound');
    assert.equal(aOut.attributes[ATTR.meshInvalidTraceHeader], bad);
    assert.equal(aOut.parentSpanContext, undefined);
    assert.ok(aOut.events.some((e) => e.name === 'mesh.trace_context.invalid'));
    const bIn = await spanOf(mesh.b, 'req-invalid', 'inbound');
    assert.equal(bIn.spanContext().traceId, aOut.spanContext().traceId);
    assert.equal(bIn.attributes[ATTR.meshInvalidTraceHeader], undefined);

    // Invalid B3 is no different.
    const r2 = await httpRequest(mesh.a.sidecar.outboundPort, { path: '/echo', headers: { host: 'b', b3: 'zzz-yyy', 'x-request-id': 'req-invalid-b3' } });
    assert.equal(r2.status, 200);
    assert.equal((await spanOf(mesh.a, 'req-invalid-b3', 'outbound')).attributes[ATTR.meshInvalidTraceHeader], 'zzz-yyy');
  });

  void it('mints x-request-id on the outbound side when the app sends none', async () => {
    const r = await httpRequest(mesh.a.sidecar.outboundPort, { path: '/echo', headers: { host: 'b' } });
    const id = (JSON.parse(r.body) as { headers: Record<string, string> }).headers['x-request-id'];
    assert.match(id ?? '', /^[0-9a-f-]{36}$/);
    const bIn = await spanOf(mesh.b, id ?? '', 'inbound');
    assert.equal(bIn.attributes[ATTR.requestId], id);
  });

  void it('connection refused: 502 CONNECTION_REFUSED and an error CLIENT span at a', async () => {
    const r = await httpRequest(mesh.a.sidecar.outboundPort, { path: '/x', headers: { host: 'down', 'x-request-id': 'req-refused' } });
    assertSynthesized(r, 502, MESH_ERROR.connectionRefused, 'a');
    const span = await spanOf(mesh.a, 'req-refused', 'outbound');
    assertMeshErrorSpan(span, MESH_ERROR.connectionRefused, 502);
    assert.equal(span.attributes[ATTR.meshEndpointPod], 'down-1');
    assert.equal((JSON.parse(r.body) as { error: { trace_id: string } }).error.trace_id, span.spanContext().traceId);
    // Nothing was sent, so the default retry policy tried twice more (the only endpoint), and
    // each failed try is a span of its own.
    assert.equal(span.attributes[ATTR.meshRetryAttempt], 2);
    assert.equal(span.attributes[ATTR.meshRetryReason], 'connect_failure');
    assert.equal(span.attributes[ATTR.meshLbPolicy], 'peak_ewma');
    const tries = (await mesh.a.finishedSpans()).filter((s) => s.attributes[ATTR.requestId] === 'req-refused' && s.attributes[ATTR.meshRetryRecovered] === true);
    assert.deepEqual(tries.map((s) => s.attributes[ATTR.meshRetryAttempt]).sort(), [0, 1]);
    for (const t of tries) assert.equal(t.attributes[ATTR.meshErrorCode], MESH_ERROR.connectionRefused);
  });

  void it('upstream reset: 502 UPSTREAM_RESET at the hop whose upstream reset', async () => {
    const r = await httpRequest(mesh.a.sidecar.outboundPort, { path: '/x', headers: { host: 'resetter', 'x-request-id': 'req-reset-peer' } });
    assertSynthesized(r, 502, MESH_ERROR.upstreamReset, 'a');
    assertMeshErrorSpan(await spanOf(mesh.a, 'req-reset-peer', 'outbound'), MESH_ERROR.upstreamReset, 502);

    // The local app of b hangs up: b's inbound sidecar produces the failure, a only relays it.
    const r2 = await httpRequest(mesh.a.sidecar.outboundPort, { path: '/reset', headers: { host: 'b', 'x-request-id': 'req-reset-app' } });
    assertSynthesized(r2, 502, MESH_ERROR.upstreamReset, 'b');
    const bIn = await spanOf(mesh.b, 'req-reset-app', 'inbound');
    assertMeshErrorSpan(bIn, MESH_ERROR.upstreamReset, 502);
    const aOut = await spanOf(mesh.a, 'req-reset-app', 'outbound');
    assert.equal(aOut.attributes[ATTR.meshErrorCode], undefined, 'a relayed the failure; it did not produce it');
    assert.equal(aOut.status.code, SpanStatusCode.ERROR);
    assert.equal(aOut.attributes[ATTR.errorType], '502');
  });

  void it('upstream reset in the middle of a response body truncates it and records UPSTREAM_RESET', async () => {
    await assert.rejects(httpRequest(mesh.a.sidecar.outboundPort, { path: '/reset-mid-body', headers: { host: 'b', 'x-request-id': 'req-mid-body' } }));
    const bIn = await spanOf(mesh.b, 'req-mid-body', 'inbound');
    assert.equal(bIn.attributes[ATTR.meshErrorCode], MESH_ERROR.upstreamReset);
    assert.equal(bIn.attributes[ATTR.httpResponseStatusCode], 200, 'the status the app had already sent');
    assert.equal(bIn.status.code, SpanStatusCode.ERROR);
  });

  void it('timeout: 504 UPSTREAM_TIMEOUT at the hop whose upstream is silent', async () => {
    const r = await httpRequest(mesh.a.sidecar.outboundPort, { path: '/x', headers: { host: 'hanger', 'x-request-id': 'req-timeout-peer' } });
    assertSynthesized(r, 504, MESH_ERROR.timeout, 'a');
    assertMeshErrorSpan(await spanOf(mesh.a, 'req-timeout-peer', 'outbound'), MESH_ERROR.timeout, 504);

    const r2 = await httpRequest(mesh.a.sidecar.outboundPort, { path: '/hang', headers: { host: 'b', 'x-request-id': 'req-timeout-app' } });
    assertSynthesized(r2, 504, MESH_ERROR.timeout, 'b');
    assertMeshErrorSpan(await spanOf(mesh.b, 'req-timeout-app', 'inbound'), MESH_ERROR.timeout, 504);
  });

  void it('no endpoint: 503 NO_ENDPOINT for an unknown service and for one with zero endpoints', async () => {
    for (const [svc, rid] of [
      ['nowhere', 'req-unknown'],
      ['empty', 'req-empty'],
    ] as const) {
      const r = await httpRequest(mesh.a.sidecar.outboundPort, { path: '/x', headers: { host: svc, 'x-request-id': rid } });
      assertSynthesized(r, 503, MESH_ERROR.noEndpoint, 'a');
      const span = await spanOf(mesh.a, rid, 'outbound');
      assertMeshErrorSpan(span, MESH_ERROR.noEndpoint, 503);
      assert.equal(span.attributes[ATTR.meshDestinationService], svc);
    }
  });

  void it('HTTP status rules: 4xx is an error on CLIENT spans only, 5xx on both', async () => {
    const r = await httpRequest(mesh.a.sidecar.outboundPort, { path: '/not-found', headers: { host: 'b', 'x-request-id': 'req-404' } });
    assert.equal(r.status, 404);
    const aOut = await spanOf(mesh.a, 'req-404', 'outbound');
    const bIn = await spanOf(mesh.b, 'req-404', 'inbound');
    assert.equal(aOut.status.code, SpanStatusCode.ERROR);
    assert.equal(aOut.attributes[ATTR.errorType], '404');
    assert.equal(bIn.status.code, SpanStatusCode.UNSET);
    assert.equal(bIn.attributes[ATTR.errorType], undefined);

    const r2 = await httpRequest(mesh.a.sidecar.outboundPort, { path: '/boom', headers: { host: 'b', 'x-request-id': 'req-500' } });
    assert.equal(r2.status, 500);
    assert.equal(r2.headers[MESH_ERROR_HEADER], undefined, 'the app answered; the mesh did not synthesize');
    const bIn500 = await spanOf(mesh.b, 'req-500', 'inbound');
    assert.equal(bIn500.status.code, SpanStatusCode.ERROR);
    assert.equal(bIn500.attributes[ATTR.errorType], '500');
    assert.equal(bIn500.attributes[ATTR.meshErrorCode], undefined);
  });

  void it('writes an access-log line and an OTLP log record tied to the span', async () => {
    await httpRequest(mesh.a.sidecar.outboundPort, { path: '/echo?secret=1', headers: { host: 'b', 'x-request-id': 'req-log' } });
    const aOut = await spanOf(mesh.a, 'req-log', 'outbound');
    const { traceId, spanId } = aOut.spanContext();
    const line = await waitFor(() => mesh.a.accessLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['request_id'] === 'req-log'), 'access line');
    assert.equal(line['trace_id'], traceId);
    assert.equal(line['span_id'], spanId);
    assert.equal(line['direction'], 'outbound');
    assert.equal(line['method'], 'GET');
    assert.equal(line['path'], '/echo');
    assert.equal(line['status'], 200);
    assert.equal(line['upstream'], `127.0.0.1:${mesh.b.sidecar.inboundPort}`);
    assert.equal(line['upstream_pod'], 'b-1');
    assert.equal(line['mesh_error'], null);
    assert.equal(typeof line['duration_ms'], 'number');
    assert.ok((line['bytes_sent'] as number) > 0);

    const record = await waitFor(async () => {
      await mesh.a.sidecar.flush();
      return mesh.a.logs.getFinishedLogRecords().find((r) => r.attributes[ATTR.requestId] === 'req-log');
    }, 'OTLP log record');
    assert.equal(record.spanContext?.traceId, traceId);
    assert.equal(record.spanContext?.spanId, spanId);
    assert.equal(record.attributes[ATTR.httpResponseStatusCode], 200);
    assert.equal(record.resource.attributes[ATTR.serviceName], 'a');

    // A mesh failure's line and record carry the code.
    await httpRequest(mesh.a.sidecar.outboundPort, { path: '/x', headers: { host: 'down', 'x-request-id': 'req-log-err' } });
    const errLine = await waitFor(() => mesh.a.accessLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['request_id'] === 'req-log-err'), 'error line');
    assert.equal(errLine['mesh_error'], MESH_ERROR.connectionRefused);
    assert.equal(errLine['status'], 502);
    const errRecord = await waitFor(async () => {
      await mesh.a.sidecar.flush();
      return mesh.a.logs.getFinishedLogRecords().find((r) => r.attributes[ATTR.requestId] === 'req-log-err');
    }, 'OTLP error log record');
    assert.equal(errRecord.attributes[ATTR.meshErrorCode], MESH_ERROR.connectionRefused);
    assert.equal(errRecord.severityText, 'ERROR');
  });
});
