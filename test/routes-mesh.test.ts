// HTTPRoutes through real sidecars, modelled on the Gateway API's mesh conformance cases:
// MeshHTTPRouteMatching, MeshSplit / MeshHTTPRouteWeight, MeshConsumerRoute,
// MeshHTTPRouteRequestHeaderModifier (and response), MeshHTTPRouteRewritePath, plus timeouts,
// fault injection, no-match / no-backend answers and a live route edit. A client sidecar
// routes to echo-v1 and echo-v2, each an app behind its own sidecar; both codecs (HTTP/1.1 and
// HTTP/2) are exercised.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ATTR } from '../common/semconv.ts';
import { httpRequest, startServer, startTestSidecar, waitFor, type Reply, type TestServer, type TestSidecar } from '../sidecar/testing/harness.ts';

const ROUTES = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: mesh-matching, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo }]
  rules:
  - matches: [{ path: { type: PathPrefix, value: / } }]
    backendRefs: [{ name: echo-v1, port: 80 }]
  - matches:
    - path: { type: PathPrefix, value: /v2 }
    - headers: [{ name: version, value: two }]
    backendRefs: [{ name: echo-v2, port: 80 }]
  - matches: [{ path: { type: PathPrefix, value: /split } }]
    backendRefs: [{ name: echo-v1, weight: 50 }, { name: echo-v2, weight: 50 }, { name: echo-v3, weight: 0 }]
  - matches: [{ path: { type: PathPrefix, value: /headers } }]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{ name: X-Header-Set, value: set-overwrites-values }]
        add: [{ name: X-Header-Add, value: header-val-1 }, { name: X-Header-Add-Append, value: header-val-2 }]
        remove: [X-Header-Remove]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{ name: X-Response-Set, value: from-route }]
        remove: [X-App-Secret]
    backendRefs: [{ name: echo-v1 }]
  - matches: [{ path: { type: PathPrefix, value: /prefix/one } }]
    filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /one } } }]
    backendRefs: [{ name: echo-v1 }]
  - matches: [{ path: { type: PathPrefix, value: /strip-prefix } }]
    filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: / } } }]
    backendRefs: [{ name: echo-v1 }]
  - matches: [{ path: { type: PathPrefix, value: /full/one } }]
    filters: [{ type: URLRewrite, urlRewrite: { hostname: rewritten.example, path: { type: ReplaceFullPath, replaceFullPath: /one } } }]
    backendRefs: [{ name: echo-v1 }]
  - matches: [{ path: { type: PathPrefix, value: /slow } }]
    timeouts: { request: 300ms }
    backendRefs: [{ name: echo-v1 }]
  - matches: [{ path: { type: PathPrefix, value: /abort } }]
    filters: [{ type: ExtensionRef, extensionRef: { group: tracemesh.io, kind: FaultInjection, name: abort-all } }]
    backendRefs: [{ name: echo-v1 }]
  - matches: [{ path: { type: PathPrefix, value: /delay } }]
    filters: [{ type: ExtensionRef, extensionRef: { group: tracemesh.io, kind: FaultInjection, name: delay-all } }]
    backendRefs: [{ name: echo-v1 }]
  - matches: [{ path: { type: PathPrefix, value: /nowhere } }]
    backendRefs: [{ name: echo-v1, weight: 0 }]
---
apiVersion: tracemesh.io/v1alpha1
kind: FaultInjection
metadata: { name: abort-all, namespace: mesh }
spec: { abort: { httpStatus: 503, percentage: 100 } }
---
apiVersion: tracemesh.io/v1alpha1
kind: FaultInjection
metadata: { name: delay-all, namespace: mesh }
spec: { delay: { fixedDelay: 300ms, percentage: 100 } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: only-exact, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: strict }]
  rules:
  - matches: [{ path: { type: Exact, value: /only } }]
    backendRefs: [{ name: echo-v1 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: loop-a, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: loop-a }]
  rules: [{ backendRefs: [{ name: loop-b }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: loop-b, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: loop-b }]
  rules: [{ backendRefs: [{ name: loop-a }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: self, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: self }]
  rules: [{ backendRefs: [{ name: self }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: consumer, namespace: consumer-ns }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, namespace: mesh }]
  rules:
  - filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: X-Header-Set, value: set }] } }]
    backendRefs: [{ name: echo-v1, namespace: mesh }]
`;

interface Seen {
  backend: string;
  path: string;
  headers: Record<string, string>;
}

let dir = '';
const apps: TestServer[] = [];
const sidecars: TestSidecar[] = [];
let client: TestSidecar;
let consumer: TestSidecar;

async function app(name: string): Promise<TestServer> {
  const s = await startServer((req, res) => {
    // /slow… never answers: the route's request timeout must.
    if (req.url?.startsWith('/slow') === true) return;
    res.setHeader('content-type', 'application/json');
    res.setHeader('x-app-secret', 'leak');
    res.end(JSON.stringify({ backend: name, path: req.url, headers: req.headers }));
  });
  apps.push(s);
  return s;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tracemesh-routes-mesh-'));
  await writeFile(join(dir, 'routes.yaml'), ROUTES);
  const v1 = await app('echo-v1');
  const v2 = await app('echo-v2');
  const s1 = await startTestSidecar({ service: 'echo-v1', namespace: 'mesh', appPort: v1.port, appProtocol: 'http1' });
  const s2 = await startTestSidecar({ service: 'echo-v2', namespace: 'mesh', appPort: v2.port, appProtocol: 'http1' });
  sidecars.push(s1, s2);
  const services = {
    echo: [{ address: `127.0.0.1:${s1.sidecar.inboundPort}`, pod: 'echo-v1-1' }],
    'echo-v1': [{ address: `127.0.0.1:${s1.sidecar.inboundPort}`, pod: 'echo-v1-1' }],
    'echo-v2': [{ address: `127.0.0.1:${s2.sidecar.inboundPort}`, pod: 'echo-v2-1' }],
    'echo-v3': [{ address: `127.0.0.1:${s2.sidecar.inboundPort}`, pod: 'echo-v3-1' }],
    // Routes loop-a → loop-b → loop-a, and self → self: one route decision per hop, no loop.
    'loop-a': [{ address: `127.0.0.1:${s1.sidecar.inboundPort}`, pod: 'echo-v1-1' }],
    'loop-b': [{ address: `127.0.0.1:${s2.sidecar.inboundPort}`, pod: 'echo-v2-1' }],
    self: [{ address: `127.0.0.1:${s1.sidecar.inboundPort}`, pod: 'echo-v1-1' }],
  };
  client = await startTestSidecar({ service: 'client', namespace: 'mesh', appPort: 9, routeFiles: [dir] }, services);
  consumer = await startTestSidecar({ service: 'consumer', namespace: 'consumer-ns', appPort: 9, routeFiles: [dir] }, services);
  sidecars.push(client, consumer);
});

after(async () => {
  for (const s of sidecars) await s.close();
  for (const a of apps) await a.close();
  await rm(dir, { recursive: true, force: true });
});

function call(path: string, headers: Record<string, string> = {}, via: TestSidecar = client, host = 'echo'): Promise<Reply> {
  return httpRequest(via.sidecar.outboundPort, { path, headers: { host, ...headers } });
}

async function seen(path: string, headers: Record<string, string> = {}, via?: TestSidecar): Promise<Seen> {
  const r = await call(path, headers, via);
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body) as Seen;
}

/** One request over HTTP/2 (prior knowledge) to the outbound port. */
function h2call(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${client.sidecar.outboundPort}`);
    session.on('error', reject);
    const stream = session.request({ ':path': path, ':authority': 'echo', ...headers });
    let body = '';
    let head: Record<string, unknown> = {};
    stream.on('response', (h) => (head = h));
    stream.on('data', (c: Buffer) => (body += c.toString()));
    stream.on('end', () => {
      session.close();
      resolve({ status: Number(head[':status']), headers: head, body });
    });
    stream.on('error', reject);
    stream.end();
  });
}

void describe('MeshHTTPRouteMatching', () => {
  const cases: [string, Record<string, string>, string][] = [
    ['/', {}, 'echo-v1'],
    ['/example', {}, 'echo-v1'],
    ['/', { Version: 'one' }, 'echo-v1'],
    ['/v2', {}, 'echo-v2'],
    ['/v2/example', {}, 'echo-v2'],
    ['/', { Version: 'two' }, 'echo-v2'],
    ['/v2/', {}, 'echo-v2'],
    ['/v2example', {}, 'echo-v1'],
    ['/foo/v2/example', {}, 'echo-v1'],
  ];
  for (const [path, headers, backend] of cases) {
    void test(`${path} ${JSON.stringify(headers)} → ${backend}`, async () => {
      assert.equal((await seen(path, headers)).backend, backend);
    });
  }

  void test('the client span names the route and rule', async () => {
    await seen('/v2/span-check');
    const spans = await waitFor(async () => {
      const all = await client.finishedSpans();
      const s = all.find((x) => x.attributes[ATTR.urlPath] === '/v2/span-check');
      return s;
    }, 'the client span');
    assert.equal(spans.attributes[ATTR.meshRoute], 'HTTPRoute mesh/mesh-matching');
    assert.equal(spans.attributes[ATTR.meshRouteRule], 'rule 1');
    assert.equal(spans.attributes[ATTR.meshDestinationService], 'echo-v2');
  });

  void test('a Service without routes still goes where the Host names', async () => {
    const r = await call('/direct', {}, client, 'echo-v2');
    assert.equal((JSON.parse(r.body) as Seen).backend, 'echo-v2');
  });
});

void test('MeshHTTPRouteWeight: a 50/50 split reaches both backends, a weight-0 backend none', async () => {
  const counts = new Map<string, number>();
  for (let i = 0; i < 60; i++) {
    const b = (await seen('/split')).backend;
    counts.set(b, (counts.get(b) ?? 0) + 1);
  }
  // echo-v3's endpoint is echo-v2's sidecar, so a request to it would show as echo-v2; its
  // weight is 0, so only the two halves count. 60 fair coin flips land 15..45 with p > 0.9999.
  const v1 = counts.get('echo-v1') ?? 0;
  const v2 = counts.get('echo-v2') ?? 0;
  assert.equal(v1 + v2, 60);
  assert.ok(v1 >= 15 && v2 >= 15, JSON.stringify(Object.fromEntries(counts)));
});

void test('MeshConsumerRoute: a route in the consumer namespace changes only that consumer’s requests', async () => {
  const fromConsumer = await call('/', {}, consumer, 'echo.mesh');
  assert.equal(fromConsumer.status, 200);
  assert.equal(fromConsumer.headers['x-header-set'], 'set');
  const fromProducer = await call('/', {}, client, 'echo.mesh');
  assert.equal(fromProducer.status, 200);
  assert.equal(fromProducer.headers['x-header-set'], undefined);
});

void test('MeshHTTPRouteRequestHeaderModifier and response header modifiers, on HTTP/1.1 and HTTP/2', async () => {
  const sent = { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1', 'X-Header-Set': 'set-val' };
  const r = await call('/headers', sent);
  const body = JSON.parse(r.body) as Seen;
  assert.equal(body.headers['x-header-add'], 'header-val-1');
  assert.equal(body.headers['x-header-add-append'], 'append-val-1, header-val-2');
  assert.equal(body.headers['x-header-set'], 'set-overwrites-values');
  assert.equal(body.headers['x-header-remove'], undefined);
  assert.equal(r.headers['x-response-set'], 'from-route');
  assert.equal(r.headers['x-app-secret'], undefined);

  const h2 = await h2call('/headers', { 'x-header-remove': 'remove-val', 'x-header-add-append': 'append-val-1', 'x-header-set': 'set-val' });
  assert.equal(h2.status, 200, h2.body);
  const h2body = JSON.parse(h2.body) as Seen;
  assert.equal(h2body.headers['x-header-add'], 'header-val-1');
  assert.match(h2body.headers['x-header-add-append'] ?? '', /^append-val-1, ?header-val-2$/);
  assert.equal(h2body.headers['x-header-set'], 'set-overwrites-values');
  assert.equal(h2body.headers['x-header-remove'], undefined);
  assert.equal(h2.headers['x-response-set'], 'from-route');
  assert.equal(h2.headers['x-app-secret'], undefined);
});

void test('MeshHTTPRouteRewritePath (and a hostname rewrite)', async () => {
  assert.equal((await seen('/prefix/one/two')).path, '/one/two');
  assert.equal((await seen('/strip-prefix/three')).path, '/three');
  assert.equal((await seen('/strip-prefix')).path, '/');
  const full = await seen('/full/one/two?q=1');
  assert.equal(full.path, '/one?q=1');
  assert.equal(full.headers['host'], 'rewritten.example');
  const h2 = JSON.parse((await h2call('/prefix/one/two')).body) as Seen;
  assert.equal(h2.path, '/one/two');
});

void test('timeouts.request: a backend that does not answer in time gets a 504 from the caller’s sidecar', async () => {
  const started = performance.now();
  const r = await call('/slow');
  const took = performance.now() - started;
  assert.equal(r.status, 504);
  assert.equal(r.headers['x-tracemesh-error'], 'UPSTREAM_TIMEOUT');
  assert.match(r.body, /timeouts\.request of HTTPRoute mesh\/mesh-matching/);
  assert.ok(took >= 290, `answered after ${took} ms`);
});

void test('FaultInjection: abort answers the fault’s status without forwarding; delay holds the request', async () => {
  const aborted = await call('/abort');
  assert.equal(aborted.status, 503);
  assert.equal(aborted.headers['x-tracemesh-error'], 'FAULT_INJECTED');
  assert.match(aborted.body, /FaultInjection mesh\/abort-all/);
  const started = performance.now();
  const delayed = await seen('/delay');
  assert.equal(delayed.backend, 'echo-v1');
  assert.ok(performance.now() - started >= 290, 'delayed by the fault');
  const span = await waitFor(async () => (await client.finishedSpans()).find((s) => s.attributes[ATTR.urlPath] === '/abort'), 'the aborted span');
  assert.equal(span.attributes[ATTR.meshFault], 'FaultInjection mesh/abort-all');
  assert.equal(span.attributes[ATTR.meshErrorCode], 'FAULT_INJECTED');
});

void test('routes that point at each other (loop-a → loop-b → loop-a) or at their own Service do not loop: one route decision per hop', async () => {
  const a = await call('/loop', {}, client, 'loop-a');
  assert.equal(a.status, 200, a.body);
  assert.equal((JSON.parse(a.body) as Seen).backend, 'echo-v2', "loop-a's backend loop-b, whose endpoints answer; loop-b's own route is not applied again");
  const b = await call('/loop', {}, client, 'loop-b');
  assert.equal((JSON.parse(b.body) as Seen).backend, 'echo-v1');
  const self = await call('/loop', {}, client, 'self');
  assert.equal(self.status, 200, self.body);
  assert.equal((JSON.parse(self.body) as Seen).backend, 'echo-v1', "a route to its own Service sends to that Service's endpoints");
});

void test('no rule matches: 404 ROUTE_NOT_FOUND; weight 0 everywhere: 500 NO_BACKEND', async () => {
  const miss = await call('/other', {}, client, 'strict');
  assert.equal(miss.status, 404);
  assert.equal(miss.headers['x-tracemesh-error'], 'ROUTE_NOT_FOUND');
  assert.equal((await call('/only', {}, client, 'strict')).status, 200);
  const none = await call('/nowhere');
  assert.equal(none.status, 500);
  assert.equal(none.headers['x-tracemesh-error'], 'NO_BACKEND');
});

void test('a route edit applies at once; a broken edit keeps the last good routes', async () => {
  const edited = ROUTES.replace('backendRefs: [{ name: echo-v1, port: 80 }]', 'backendRefs: [{ name: echo-v2, port: 80 }]');
  try {
    await writeFile(join(dir, 'routes.yaml'), edited);
    await waitFor(async () => ((await seen('/edit-check')).backend === 'echo-v2' ? true : undefined), 'the edit to apply');
    await writeFile(join(dir, 'routes.yaml'), edited.replace('weight: 50 }, { name: echo-v2', 'weight: -1 }, { name: echo-v2'));
    // Give the watcher time to see (and refuse) the broken edit: a good probe keeps answering echo-v2.
    await waitFor(async () => ((await seen('/edit-check')).backend === 'echo-v2' ? true : undefined), 'the last good routes');
  } finally {
    await writeFile(join(dir, 'routes.yaml'), ROUTES);
    await waitFor(async () => ((await seen('/edit-check')).backend === 'echo-v1' ? true : undefined), 'the original routes');
  }
});
