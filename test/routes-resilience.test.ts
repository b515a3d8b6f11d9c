// Per-route resilience through real sidecars: an HTTPRoute rule's `retry` (GEP-1731: codes,
// attempts, backoff) and `timeouts.backendRequest` (one try) enforced by the caller's sidecar,
// with the sidecar's own retry policy off (--retry-attempts 0), so every retry seen here is the
// route's. Service r has two endpoints, each an app behind its own sidecar: one answers 500 (or
// never answers on /per-try…), the other 200; round robin alternates between them.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ATTR } from '../common/semconv.ts';
import { httpRequest, startServer, startTestSidecar, waitFor, type Reply, type TestServer, type TestSidecar } from '../sidecar/testing/harness.ts';

const ROUTES = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: resilient, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: r }]
  rules:
  - name: retried
    matches: [{ path: { type: PathPrefix, value: /retry } }]
    retry: { codes: [500], attempts: 2, backoff: 10ms }
    backendRefs: [{ name: r }]
  - name: zero-attempts
    matches: [{ path: { type: PathPrefix, value: /zero } }]
    retry: { codes: [500], attempts: 0 }
    backendRefs: [{ name: r }]
  - name: per-try
    matches: [{ path: { type: PathPrefix, value: /per-try } }]
    timeouts: { request: 20s, backendRequest: 400ms }
    retry: { codes: [504], attempts: 2, backoff: 10ms }
    backendRefs: [{ name: r }]
  - name: per-try-alone
    matches: [{ path: { type: PathPrefix, value: /alone } }]
    timeouts: { backendRequest: 400ms }
    backendRefs: [{ name: r }]
  - name: plain
    backendRefs: [{ name: r }]
`;

let dir = '';
const apps: TestServer[] = [];
const sidecars: TestSidecar[] = [];
let client: TestSidecar;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tracemesh-routes-resilience-'));
  await writeFile(join(dir, 'routes.yaml'), ROUTES);
  const bad = await startServer((req, res) => {
    // Never answers: the rule's backendRequest timeout must end the try.
    if (req.url?.startsWith('/per-try') === true || req.url?.startsWith('/alone') === true) return;
    res.writeHead(500);
    res.end('broken');
  });
  const good = await startServer((_req, res) => res.end('good'));
  apps.push(bad, good);
  const sBad = await startTestSidecar({ service: 'r', pod: 'r-bad', namespace: 'mesh', appPort: bad.port, appProtocol: 'http1' });
  const sGood = await startTestSidecar({ service: 'r', pod: 'r-good', namespace: 'mesh', appPort: good.port, appProtocol: 'http1' });
  sidecars.push(sBad, sGood);
  client = await startTestSidecar(
    // Only the routes retry; no outlier ejection, so the failing endpoint keeps its turn.
    { service: 'client', namespace: 'mesh', appPort: 9, routeFiles: [dir], retryAttempts: 0, lbPolicy: 'round_robin', outlierConsecutive5xx: 0, outlierConsecutiveGatewayErrors: 0 },
    {
      r: [
        { address: `127.0.0.1:${sBad.sidecar.inboundPort}`, pod: 'r-bad' },
        { address: `127.0.0.1:${sGood.sidecar.inboundPort}`, pod: 'r-good' },
      ],
    },
  );
  sidecars.push(client);
});

after(async () => {
  for (const s of sidecars) await s.close();
  for (const a of apps) {
    a.server.closeAllConnections();
    await a.close();
  }
  await rm(dir, { recursive: true, force: true });
});

function call(path: string, method = 'GET'): Promise<Reply> {
  return httpRequest(client.sidecar.outboundPort, { path, method, headers: { host: 'r', 'x-request-id': `${method} ${path}` } });
}

async function spanOf(requestId: string): Promise<Record<string, unknown>> {
  const s = await waitFor(async () => (await client.finishedSpans()).find((x) => x.attributes[ATTR.requestId] === requestId && x.attributes[ATTR.meshRetryRecovered] !== true), `the span of ${requestId}`, 30_000);
  return s.attributes;
}

void describe('HTTPRoute retry (GEP-1731) through real sidecars', () => {
  void test('a rule retrying 500 recovers every GET; the span names the retry and the rule', async () => {
    for (let i = 0; i < 8; i++) {
      const r = await call(`/retry/${i}`);
      assert.equal(r.status, 200, `GET /retry/${i}: ${r.body}`);
      assert.equal(r.body, 'good');
    }
    const retried: Record<string, unknown>[] = [];
    for (let i = 0; i < 8; i++) {
      const a = await spanOf(`GET /retry/${i}`);
      if (a[ATTR.meshRetryReason] !== undefined) retried.push(a);
    }
    assert.ok(retried.length >= 1, 'round robin sent some first tries to the failing endpoint');
    for (const a of retried) {
      assert.equal(a[ATTR.meshRetryReason], 'retriable_status');
      assert.equal(a[ATTR.meshRouteRule], 'retried');
      assert.ok(Number(a[ATTR.meshRetryAttempt]) <= 2, 'at most `attempts` retries');
    }
  });

  void test('POST is not retried on a status (not idempotent): the 500 reaches the caller', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await call(`/retry/post-${i}`, 'POST')).status);
    assert.ok(statuses.includes(500), `statuses: ${statuses.join(',')}`);
    assert.ok(statuses.includes(200), `statuses: ${statuses.join(',')}`);
  });

  void test('attempts: 0 and a rule without retry leave the 500s alone (the sidecar policy is off)', async () => {
    for (const path of ['/zero', '/plain']) {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await call(`${path}/${i}`)).status);
      assert.ok(statuses.includes(500), `${path}: ${statuses.join(',')}`);
    }
  });
});

void describe('HTTPRoute timeouts.backendRequest through real sidecars', () => {
  void test('each try gets backendRequest; a timed-out try is retried when the rule retries 504', async () => {
    for (let i = 0; i < 4; i++) {
      const started = performance.now();
      const r = await call(`/per-try/${i}`);
      const took = performance.now() - started;
      assert.equal(r.status, 200, `GET /per-try/${i}: ${r.body}`);
      assert.ok(took < 15_000, `answered after ${Math.round(took)} ms, not after the 20 s request timeout`);
    }
    let retried = 0;
    for (let i = 0; i < 4; i++) {
      const a = await spanOf(`GET /per-try/${i}`);
      if (a[ATTR.meshRetryReason] === undefined) continue;
      retried++;
      // The peer sidecar times its app out first (the try's time travels as x-tracemesh-timeout-ms)
      // and answers 504, or this sidecar's own per-try clock fires: both are the try's timeout.
      assert.ok(['retriable_status', 'per_try_timeout'].includes(String(a[ATTR.meshRetryReason])), String(a[ATTR.meshRetryReason]));
    }
    assert.ok(retried >= 1, 'some first tries went to the endpoint that never answers');
  });

  void test('without retry, a try past backendRequest is a 504 long before --outbound-timeout', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 2; i++) {
      const started = performance.now();
      const r = await call(`/alone/${i}`);
      const took = performance.now() - started;
      statuses.push(r.status);
      if (r.status === 504) {
        assert.equal(r.headers['x-tracemesh-error'], 'UPSTREAM_TIMEOUT');
        assert.ok(took < 10_000, `504 after ${Math.round(took)} ms (the sidecar's --outbound-timeout is 15 s)`);
      }
    }
    assert.ok(statuses.includes(504), `statuses: ${statuses.join(',')}`);
  });
});
