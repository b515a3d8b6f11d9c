// Sidecar to sidecar over mTLS, through real sidecars on loopback with certificates from
// test/certs/make-certs.sh: HTTP/2 multiplexing (many requests, one TLS connection), streaming
// both ways, each TLS failure at the hop where it happens (the client sidecar's CLIENT span,
// and the refusing sidecar's own span, correlated by the connection's ports), plaintext and
// policy refusals in the caller's trace, and PeerAuthentication modes switched at run time.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { ATTR, MESH_ERROR, MESH_ERROR_HEADER } from '../common/semconv.ts';
import type { EndpointSpec } from '../sidecar/endpoints/endpoints.ts';
import { httpRequest, startServer, startTestSidecar, waitFor, type Reply, type TestServer, type TestSidecar } from '../sidecar/testing/harness.ts';
import { NETWORK_LOCAL_PORT } from '../sidecar/telemetry/spans.ts';
import { TLS_FAILURE_KIND, TLS_HANDSHAKE_SPAN } from '../sidecar/telemetry/tls-failures.ts';

const MAKE_CERTS = fileURLToPath(new URL('./certs/make-certs.sh', import.meta.url));
const API = 'spiffe://cluster.local/ns/default/sa/api';
const WEB = 'spiffe://cluster.local/ns/default/sa/web';

let dir: string;
const f = (name: string): string => join(dir, name);
const spans = new InMemorySpanExporter();
const accessLines: string[] = [];
const started: TestSidecar[] = [];
let app: TestServer;
/** Requests the /hold handler keeps until `release()`. */
let held: Array<() => void> = [];

/** A sidecar whose identity is the make-certs.sh pair `cert` (or none: plaintext). */
async function sidecar(service: string, cert: string | undefined, services: Record<string, EndpointSpec[]> = {}, extra: Record<string, unknown> = {}): Promise<TestSidecar> {
  const tlsOptions = cert === undefined ? {} : { tlsCertFile: f(`${cert}.crt`), tlsKeyFile: f(`${cert}.key`), trustBundleFile: f('root-a.crt') };
  const t = await startTestSidecar({ service, appPort: app.port, ...tlsOptions, ...extra }, services, { spans, accessLines });
  started.push(t);
  return t;
}

function endpoint(t: TestSidecar, pod: string, identity?: string): EndpointSpec {
  return { address: `127.0.0.1:${t.sidecar.inboundPort}`, pod, ...(identity === undefined ? {} : { identity }) };
}

async function spanWhere(pred: (s: ReadableSpan) => boolean, what: string): Promise<ReadableSpan> {
  return waitFor(async () => {
    await Promise.all(started.map((s) => s.sidecar.flush()));
    return spans.getFinishedSpans().find(pred);
  }, what);
}

const byRequest = (rid: string, dir: 'inbound' | 'outbound') => (s: ReadableSpan) => s.attributes[ATTR.requestId] === rid && s.attributes[ATTR.meshDirection] === dir;
const service = (s: ReadableSpan): unknown => s.resource.attributes[ATTR.serviceName];

function call(port: number, rid: string, path = '/x', host = 'b'): Promise<Reply> {
  return httpRequest(port, { path, headers: { host, 'x-request-id': rid } });
}

function assertTlsFailure(r: Reply, span: ReadableSpan, reason: RegExp, hopService: string): void {
  assert.equal(r.status, 502);
  assert.equal(r.headers[MESH_ERROR_HEADER], MESH_ERROR.tlsHandshake);
  const body = JSON.parse(r.body) as { error: { code: string; message: string; hop: { service: string } } };
  assert.equal(body.error.code, MESH_ERROR.tlsHandshake);
  assert.match(body.error.message, reason);
  assert.equal(body.error.hop.service, hopService);
  assert.equal(span.kind, SpanKind.CLIENT);
  assert.equal(span.attributes[ATTR.meshErrorCode], MESH_ERROR.tlsHandshake);
  assert.equal(span.status.code, SpanStatusCode.ERROR);
  assert.match(span.status.message ?? '', reason);
  assert.equal(typeof span.attributes[ATTR.meshEndpoint], 'string');
  assert.equal(typeof span.attributes[ATTR.meshEndpointPod], 'string');
}

let b: TestSidecar;
let a: TestSidecar;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tracemesh-mesh-'));
  execFileSync('bash', [MAKE_CERTS, dir], { stdio: 'ignore' });
  await writeFile(
    f('policy.yaml'),
    'apiVersion: security.tracemesh.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-ledger, namespace: default}\nspec:\n  action: DENY\n  rules:\n  - from:\n    - source: {principals: ["cluster.local/ns/payments/sa/ledger"]}\n',
  );
  app = await startServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/hold') {
      held.push(() => res.end('held'));
      return;
    }
    if (url === '/reset-mid-body') {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      setImmediate(() => req.socket.destroy());
      return;
    }
    if (url === '/echo') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.pipe(res);
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ url, headers: req.headers }));
  });
  b = await sidecar('b', 'server', {}, { policyFiles: [f('policy.yaml')] });
  const expiredServer = await sidecar('expired-srv', 'client-expired');
  const otherCaServer = await sidecar('other-ca-srv', 'client-other-ca');
  a = await sidecar('a', 'client', {
    b: [endpoint(b, 'b-1', API)],
    'b-wrong': [endpoint(b, 'b-1', 'spiffe://cluster.local/ns/default/sa/other')],
    'b-any': [endpoint(b, 'b-1')],
    expired: [endpoint(expiredServer, 'expired-1')],
    'other-ca': [endpoint(otherCaServer, 'other-ca-1')],
  });
});

after(async () => {
  for (const h of held) h();
  await Promise.all(started.map((s) => s.close()));
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

void describe('sidecar to sidecar over mTLS', () => {
  void it('carries HTTP/1.1 requests on pooled keep-alive mTLS connections, reused across requests', async () => {
    const one = await sidecar('mux', 'client', { b: [endpoint(b, 'b-1', API)] });
    const server = b.sidecar.inboundTlsServer;
    assert.ok(server);
    let connections = 0;
    const count = (): void => void connections++;
    server.on('secureConnection', count);
    try {
      held = [];
      const n = 64;
      const replies = Array.from({ length: n }, (_, i) => call(one.sidecar.outboundPort, `mux-${i}`, '/hold'));
      // All n requests are open at the app at once, so they were in flight together.
      await waitFor(() => (held.length === n ? true : undefined), `${n} requests held by the app`);
      for (const release of held.splice(0)) release();
      for (const r of await Promise.all(replies)) assert.equal(r.status, 200);
      // HTTP/1.1 carries one request at a time per connection (as Istio does between sidecars).
      assert.equal(connections, n, 'one TLS connection per concurrent request');
      assert.equal(one.sidecar.outboundH1Pool.size, n, 'all of them kept for reuse');
      // A second round at the same concurrency reuses them: no new handshake.
      const again = Array.from({ length: n }, (_, i) => call(one.sidecar.outboundPort, `mux-again-${i}`, '/hold'));
      await waitFor(() => (held.length === n ? true : undefined), `${n} more requests held by the app`);
      for (const release of held.splice(0)) release();
      for (const r of await Promise.all(again)) assert.equal(r.status, 200);
      assert.equal(connections, n, 'the pooled connections were reused');
      const span = await spanWhere(byRequest('mux-7', 'outbound'), 'client span');
      assert.equal(span.attributes[ATTR.meshPeerIdentity], API);
      assert.equal(span.attributes[ATTR.meshTlsMode], 'mtls');
      const server7 = await spanWhere(byRequest('mux-7', 'inbound'), 'server span');
      const seen = JSON.parse((await httpRequest(one.sidecar.outboundPort, { path: '/xfcc', headers: { host: 'b', 'x-forwarded-client-cert': 'By=forged;URI=forged' } })).body) as { headers: Record<string, string> };
      assert.equal(seen.headers['x-forwarded-client-cert'], `By=${API};URI=${WEB}`, 'the app learns the verified caller; a forged header is dropped');
      assert.equal(server7.attributes[ATTR.meshPeerIdentity], WEB);
      assert.equal(server7.parentSpanContext?.spanId, span.spanContext().spanId, 'one trace across the mTLS hop');
      assert.equal(server7.status.code, SpanStatusCode.UNSET, 'a completed response is not mistaken for an abort');
      assert.equal(server7.attributes[ATTR.errorType], undefined);
    } finally {
      server.removeListener('secureConnection', count);
    }
  });

  void it('streams large bodies both ways over HTTP/2 and keeps headers right', async () => {
    const body = Buffer.alloc(6 * 1024 * 1024, 'z');
    const r = await httpRequest(a.sidecar.outboundPort, { method: 'POST', path: '/echo', body, headers: { host: 'b', 'x-request-id': 'stream-1' } });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, body.length);
    // A slow reader: the response is paused mid-way and resumed (flow control, not buffering).
    const got = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: a.sidecar.outboundPort, method: 'POST', path: '/echo', headers: { host: 'b', 'transfer-encoding': 'chunked' } }, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          res.pause();
          setTimeout(() => res.resume(), 1);
        });
        res.on('end', () => resolve(n));
        res.on('error', reject);
      });
      req.on('error', reject);
      for (let i = 0; i < 32; i++) req.write(Buffer.alloc(64 * 1024, 'q'));
      req.end();
    });
    assert.equal(got, 32 * 64 * 1024);
    const echoed = JSON.parse((await httpRequest(a.sidecar.outboundPort, { path: '/h', headers: { host: 'b:8080', connection: 'keep-alive, x-hop', 'x-hop': '1', 'x-keep': 'yes' } })).body) as { headers: Record<string, string> };
    assert.equal(echoed.headers['host'], 'b:8080', ':authority becomes Host again for the app');
    assert.equal(echoed.headers['x-keep'], 'yes');
    assert.equal(echoed.headers['x-hop'], undefined, 'Connection-listed headers stay on their hop');
  });

  void it('a client that goes away cancels its stream; the peer records DOWNSTREAM_ABORTED and cuts the app request', async () => {
    held = [];
    const req = request({ host: '127.0.0.1', port: a.sidecar.outboundPort, path: '/hold', headers: { host: 'b', 'x-request-id': 'abort-h2' } });
    req.on('error', () => {});
    req.end();
    await waitFor(() => (held.length === 1 ? true : undefined), 'the app to hold the request');
    req.destroy();
    const server = await spanWhere(byRequest('abort-h2', 'inbound'), 'server span');
    assert.equal(server.attributes[ATTR.errorType], 'DOWNSTREAM_ABORTED');
    const client = await spanWhere(byRequest('abort-h2', 'outbound'), 'client span');
    assert.equal(client.attributes[ATTR.errorType], 'DOWNSTREAM_ABORTED');
    held = [];
  });

  void it('an app reset in the middle of a body truncates the response across the HTTP/2 hop', async () => {
    await assert.rejects(call(a.sidecar.outboundPort, 'mid-body', '/reset-mid-body'));
    const server = await spanWhere(byRequest('mid-body', 'inbound'), 'server span');
    assert.equal(server.attributes[ATTR.meshErrorCode], MESH_ERROR.upstreamReset);
    const client = await spanWhere(byRequest('mid-body', 'outbound'), 'client span');
    assert.equal(client.status.code, SpanStatusCode.ERROR);
    assert.equal(client.attributes[ATTR.httpResponseStatusCode], 200, 'the status already relayed');
    const next = await call(a.sidecar.outboundPort, 'after-mid-body');
    assert.equal(next.status, 200, 'the shared connection survives one reset stream');
  });

  void it('a peer shutting down lets in-flight streams finish (GOAWAY); later requests fail cleanly', async () => {
    // Its own span exporter: closing a sidecar shuts its exporter down, and the others share one.
    const leaving = await startTestSidecar({ service: 'leaving', appPort: app.port, tlsCertFile: f('server.crt'), tlsKeyFile: f('server.key'), trustBundleFile: f('root-a.crt'), drainTimeoutMs: 5000 });
    const caller = await sidecar('to-leaving', 'client', { b: [endpoint(leaving, 'leaving-1')] });
    held = [];
    const inflight = Array.from({ length: 5 }, (_, i) => call(caller.sidecar.outboundPort, `leaving-${i}`, '/hold'));
    await waitFor(() => (held.length === 5 ? true : undefined), 'requests held by the app');
    const closing = leaving.close();
    await waitFor(() => (caller.sidecar.outboundPool?.snapshot().length === 0 ? true : undefined), 'the GOAWAY to take the connection out of the pool');
    for (const release of held.splice(0)) release();
    for (const r of await Promise.all(inflight)) assert.equal(r.status, 200, r.body);
    await closing;
    const after = await call(caller.sidecar.outboundPort, 'leaving-after');
    assert.equal(after.status, 502);
    assert.equal(after.headers[MESH_ERROR_HEADER], MESH_ERROR.connectionRefused);
  });

  void it('server certificate expired: TLS_HANDSHAKE_FAILED on the CLIENT span, 502', async () => {
    const r = await call(a.sidecar.outboundPort, 'tls-expired', '/x', 'expired');
    assertTlsFailure(r, await spanWhere(byRequest('tls-expired', 'outbound'), 'client span'), /certificate has expired/, 'a');
  });

  void it('server certificate from an unknown CA: TLS_HANDSHAKE_FAILED "unable to verify"', async () => {
    const r = await call(a.sidecar.outboundPort, 'tls-other-ca', '/x', 'other-ca');
    assertTlsFailure(r, await spanWhere(byRequest('tls-other-ca', 'outbound'), 'client span'), /unable to verify/, 'a');
  });

  void it('wrong identity: the endpoint declares another service account', async () => {
    const r = await call(a.sidecar.outboundPort, 'tls-wrong', '/x', 'b-wrong');
    const span = await spanWhere(byRequest('tls-wrong', 'outbound'), 'client span');
    assertTlsFailure(r, span, new RegExp(`wrong identity: peer identity ${API}, expected spiffe://cluster.local/ns/default/sa/other`), 'a');
    const ok = await call(a.sidecar.outboundPort, 'tls-any', '/x', 'b-any');
    assert.equal(ok.status, 200, 'without a declared identity any identity of the trust domain passes');
  });

  void it('a peer that does not speak TLS (a sidecar with mTLS off): TLS_HANDSHAKE_FAILED saying so', async () => {
    const plainPeer = await sidecar('plain-peer', undefined);
    const caller = await sidecar('to-plain', 'client', { b: [endpoint(plainPeer, 'plain-peer-1')] });
    const r = await call(caller.sidecar.outboundPort, 'tls-plain-peer');
    assertTlsFailure(r, await spanWhere(byRequest('tls-plain-peer', 'outbound'), 'client span'), /the peer does not speak TLS/, 'to-plain');
  });

  void it('the server refuses the client\'s expired certificate: both hops record it, correlated by port', async () => {
    const stale = await sidecar('stale', 'client-expired', { b: [endpoint(b, 'b-1', API)] });
    const r = await call(stale.sidecar.outboundPort, 'tls-refused');
    const client = await spanWhere(byRequest('tls-refused', 'outbound'), 'client span');
    assertTlsFailure(r, client, /refused this sidecar's mTLS connection: client certificate rejected: certificate has expired/, 'stale');
    const localPort = client.attributes[NETWORK_LOCAL_PORT];
    assert.equal(typeof localPort, 'number');
    const server = await spanWhere((s) => s.name === TLS_HANDSHAKE_SPAN && s.attributes[ATTR.networkPeerPort] === localPort, 'the refusing side\'s span');
    assert.equal(service(server), 'b');
    assert.equal(server.attributes[TLS_FAILURE_KIND], 'expired');
    assert.equal(server.attributes[ATTR.meshPeerIdentity], WEB);
    assert.equal(server.parentSpanContext, undefined);
    const metric = await stale.sidecar.registry.getSingleMetricAsString('tracemesh_tls_handshake_failures_total');
    assert.match(metric, /direction="outbound",reason="rejected_by_peer"} 1/);
  });

  void it('a sidecar without mTLS is refused by a STRICT peer, in the caller\'s trace', async () => {
    const plain = await sidecar('plain', undefined, { b: [endpoint(b, 'b-1')] });
    const r = await call(plain.sidecar.outboundPort, 'plain-1');
    assert.equal(r.status, 403);
    assert.equal(r.headers[MESH_ERROR_HEADER], MESH_ERROR.plaintextRefused);
    const client = await spanWhere(byRequest('plain-1', 'outbound'), 'client span');
    const server = await spanWhere(byRequest('plain-1', 'inbound'), 'server span');
    assert.equal(server.spanContext().traceId, client.spanContext().traceId);
    assert.equal(server.parentSpanContext?.spanId, client.spanContext().spanId);
    assert.equal(server.attributes[ATTR.meshErrorCode], MESH_ERROR.plaintextRefused);
    assert.equal(client.attributes[ATTR.meshErrorCode], undefined, 'the client relayed it; the refusal happened at b');
    assert.equal(client.attributes[ATTR.meshTlsMode], 'none');
  });

  void it('a policy denial is a POLICY_DENIED span at the refusing hop, in the caller\'s trace', async () => {
    const ledger = await sidecar('ledger', 'client-ledger', { b: [endpoint(b, 'b-1', API)] });
    const r = await call(ledger.sidecar.outboundPort, 'deny-1');
    assert.equal(r.status, 403);
    assert.equal((JSON.parse(r.body) as { error: { policy: string } }).error.policy, 'default/deny-ledger');
    const client = await spanWhere(byRequest('deny-1', 'outbound'), 'client span');
    const server = await spanWhere(byRequest('deny-1', 'inbound'), 'server span');
    assert.equal(server.parentSpanContext?.spanId, client.spanContext().spanId);
    assert.equal(server.attributes[ATTR.meshErrorCode], MESH_ERROR.policyDenied);
    assert.equal(server.attributes[ATTR.meshPolicyName], 'default/deny-ledger');
    assert.equal(client.attributes[ATTR.meshPeerIdentity], API);
  });

  void it('follows PeerAuthentication edits: STRICT → PERMISSIVE → DISABLE', async () => {
    const policyDir = join(dir, 'modes');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(policyDir);
    const peerAuth = (mode: string): string =>
      `apiVersion: security.tracemesh.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: default}\nspec:\n  mtls: {mode: ${mode}}\n`;
    await writeFile(join(policyDir, 'peer-auth.yaml'), peerAuth('STRICT'));
    const m = await sidecar('m', 'server', {}, { policyFiles: [policyDir] });
    const mtlsClient = await sidecar('m-client', 'client', { m: [endpoint(m, 'm-1')] });
    const plainClient = await sidecar('m-plain', undefined, { m: [endpoint(m, 'm-1')] });
    assert.equal(m.sidecar.policy.mode, 'STRICT');
    assert.equal((await call(plainClient.sidecar.outboundPort, 'mode-strict-plain', '/x', 'm')).status, 403);

    await writeFile(join(policyDir, 'peer-auth.yaml'), peerAuth('PERMISSIVE'));
    await waitFor(() => (m.sidecar.policy.mode === 'PERMISSIVE' ? true : undefined), 'PERMISSIVE applied');
    assert.equal((await call(plainClient.sidecar.outboundPort, 'mode-permissive-plain', '/x', 'm')).status, 200);
    assert.equal((await call(mtlsClient.sidecar.outboundPort, 'mode-permissive-mtls', '/x', 'm')).status, 200);
    const plainSpan = await spanWhere(byRequest('mode-permissive-plain', 'inbound'), 'server span');
    assert.equal(plainSpan.attributes[ATTR.meshTlsMode], 'plaintext');
    assert.equal(plainSpan.attributes[ATTR.meshPeerIdentity], undefined);
    const mtlsSpan = await spanWhere(byRequest('mode-permissive-mtls', 'inbound'), 'server span');
    assert.equal(mtlsSpan.attributes[ATTR.meshTlsMode], 'mtls');

    await writeFile(join(policyDir, 'peer-auth.yaml'), peerAuth('DISABLE'));
    await waitFor(() => (m.sidecar.policy.mode === 'DISABLE' ? true : undefined), 'DISABLE applied');
    assert.equal((await call(plainClient.sidecar.outboundPort, 'mode-disable-plain', '/x', 'm')).status, 200);
    // The client's pooled connection predates the switch; a new one is refused.
    mtlsClient.sidecar.outboundPool?.retireAll();
    mtlsClient.sidecar.outboundH1Pool.retireAll();
    const refused = await call(mtlsClient.sidecar.outboundPort, 'mode-disable-mtls', '/x', 'm');
    assert.equal(refused.status, 502);
    assert.equal(refused.headers[MESH_ERROR_HEADER], MESH_ERROR.tlsHandshake);
    await spanWhere((s) => s.name === TLS_HANDSHAKE_SPAN && s.attributes[TLS_FAILURE_KIND] === 'tls_disabled' && service(s) === 'm', 'tls_disabled span');
  });
});
