// HTTPRoute RequestRedirect through real sidecars, modelled on the Gateway API's mesh redirect
// conformance cases (MeshHTTPRouteSchemeRedirect, MeshHTTPRouteRedirectPort,
// MeshHTTPRouteRedirectPath, MeshHTTPRouteRedirectHostAndStatus and its additional 307/308,
// MeshHTTPRoute303Redirect…): the caller's sidecar answers the redirect itself, over HTTP/1.1
// and HTTP/2, and the app behind Service `echo` never sees the request. The redirect is a
// normal answer on the span (status, Location), not a mesh error.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { connect, type ClientHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REDIRECT_CONFORMANCE } from '../common/routes/testing.ts';
import { ATTR } from '../common/semconv.ts';
import { httpRequest, startServer, startTestSidecar, waitFor, type TestServer, type TestSidecar } from '../sidecar/testing/harness.ts';

const EXTRA = `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: extra, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
  - matches: [{ path: { type: PathPrefix, value: /held } }]
    filters:
    - { type: RequestRedirect, requestRedirect: { hostname: example.org } }
    - { type: ExtensionRef, extensionRef: { group: tracemesh.io, kind: FaultInjection, name: hold } }
  - matches: [{ path: { type: PathPrefix, value: /edited } }]
    filters:
    - { type: RequestRedirect, requestRedirect: { scheme: https, statusCode: 301 } }
    - { type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: Cache-Control, value: no-store }] } }
  - matches: [{ path: { type: PathPrefix, value: /app } }]
    backendRefs: [{ name: echo }]
---
apiVersion: tracemesh.io/v1alpha1
kind: FaultInjection
metadata: { name: hold, namespace: mesh }
spec: { delay: { fixedDelay: 300ms, percentage: 100 } }
`;

let dir = '';
let app: TestServer;
let appSidecar: TestSidecar;
let client: TestSidecar;
const reached: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tracemesh-routes-redirect-'));
  await writeFile(join(dir, 'routes.yaml'), REDIRECT_CONFORMANCE.yaml + EXTRA);
  app = await startServer((req, res) => {
    reached.push(req.url ?? '');
    res.end('from the app');
  });
  appSidecar = await startTestSidecar({ service: 'echo', namespace: 'mesh', appPort: app.port, appProtocol: 'http1' });
  client = await startTestSidecar({ service: 'client', namespace: 'mesh', appPort: 9, routeFiles: [dir] }, { echo: [{ address: `127.0.0.1:${appSidecar.sidecar.inboundPort}`, pod: 'echo-1' }] });
});

after(async () => {
  await client.close();
  await appSidecar.close();
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

function h2get(session: ClientHttp2Session, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ':authority': 'echo' });
    let body = '';
    let head: Record<string, unknown> = {};
    stream.on('response', (h) => (head = h));
    stream.on('data', (c: Buffer) => (body += c.toString()));
    stream.on('end', () => resolve({ status: Number(head[':status']), headers: head, body }));
    stream.on('error', reject);
    stream.end();
  });
}

void describe('the mesh redirect conformance cases, answered by the caller’s sidecar', () => {
  for (const c of REDIRECT_CONFORMANCE.cases) {
    void test(`HTTP/1.1 ${c.path} → ${c.status} ${c.location}`, async () => {
      const r = await httpRequest(client.sidecar.outboundPort, { path: c.path, headers: { host: 'echo' } });
      assert.equal(r.status, c.status, r.body);
      assert.equal(r.headers.location, c.location);
      assert.equal(r.headers['content-length'], '0');
      assert.equal(r.headers['x-tracemesh-error'], undefined);
      assert.equal(r.body, '');
    });
  }

  void test('HTTP/2 (prior knowledge): every case on one session', async () => {
    const session = connect(`http://127.0.0.1:${client.sidecar.outboundPort}`);
    try {
      for (const c of REDIRECT_CONFORMANCE.cases) {
        const r = await h2get(session, c.path);
        assert.equal(r.status, c.status, c.path);
        assert.equal(r.headers['location'], c.location, c.path);
      }
    } finally {
      session.close();
    }
  });

  void test('the app never saw a redirected request, and a rule that forwards still reaches it', async () => {
    const r = await httpRequest(client.sidecar.outboundPort, { path: '/app', headers: { host: 'echo' } });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(reached, ['/app']);
  });
});

void test('the query survives the redirect; the rule’s response header edits apply to it', async () => {
  const r = await httpRequest(client.sidecar.outboundPort, { path: '/edited/x?a=1&b=two', headers: { host: 'echo' } });
  assert.equal(r.status, 301);
  assert.equal(r.headers.location, 'https://echo/edited/x?a=1&b=two');
  assert.equal(r.headers['cache-control'], 'no-store');
});

void test('a keep-alive connection goes on after a redirect, also after a POST with a body', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const once = (method: string, path: string, body?: string) =>
      new Promise<{ status: number; reused: boolean; location: string | undefined }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: client.sidecar.outboundPort, method, path, agent, headers: { host: 'echo' } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, location: res.headers.location }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const first = await once('POST', '/scheme', 'a body the redirect does not need');
    assert.equal(first.status, 302);
    const second = await once('GET', '/port');
    assert.equal(second.status, 302);
    assert.equal(second.location, 'http://echo:8083/port');
    assert.ok(second.reused, 'the second request went on the same connection');
    const third = await once('GET', '/app');
    assert.equal(third.status, 200);
    assert.ok(third.reused);
  } finally {
    agent.destroy();
  }
});

void test('an injected delay holds the redirect, then it is answered', async () => {
  const started = performance.now();
  const r = await httpRequest(client.sidecar.outboundPort, { path: '/held', headers: { host: 'echo' } });
  assert.equal(r.status, 302);
  assert.equal(r.headers.location, 'http://example.org/held');
  assert.ok(performance.now() - started >= 290, 'held by the fault');
});

void test('the span records the redirect as an answer, not an error', async () => {
  await httpRequest(client.sidecar.outboundPort, { path: '/original-prefix/span', headers: { host: 'echo' } });
  const span = await waitFor(async () => (await client.finishedSpans()).find((s) => s.attributes[ATTR.urlPath] === '/original-prefix/span'), 'the redirect span');
  assert.equal(span.attributes[ATTR.httpResponseStatusCode], 302);
  assert.equal(span.attributes[ATTR.meshRoute], 'HTTPRoute mesh/mesh-redirect-path');
  assert.equal(span.attributes[ATTR.meshRouteRule], 'rule 0');
  assert.deepEqual(span.attributes['http.response.header.location'], ['http://echo/replacement-prefix/span']);
  assert.equal(span.attributes[ATTR.meshErrorCode], undefined);
  assert.notEqual(span.status.code, 2, 'not an error span');
  const line = await waitFor(() => client.accessLines.find((l) => l.includes('/original-prefix/span')), 'the access-log line');
  assert.match(line, /302/);
});
