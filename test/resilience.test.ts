// Resilience through real sidecars (plaintext mesh, real sockets): an endpoint killed under
// steady load, the retry budget in a full outage, outlier ejection, a circuit breaker, the
// app's health on the admin port, one timeout reported once, and active health checks of peer
// endpoints over mTLS (one goes unhealthy, takes no traffic, recovers).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { ATTR, MESH_ERROR } from '../common/semconv.ts';
import { DEFAULT_RETRY_ON } from '../sidecar/resilience/retry-policy.ts';
import { StaticIdentitySource } from '../sidecar/identity/identity.ts';
import { makeIdentity, makeRoot } from '../sidecar/testing/certs.ts';
import { closedPort, httpRequest, startServer, startTestSidecar, waitFor, type TestServer, type TestSidecar } from '../sidecar/testing/harness.ts';

function get(port: number, agent: Agent, host: string, path = '/'): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(-1));
    });
    req.on('error', () => resolve(-1));
    req.end();
  });
}

async function metric(t: TestSidecar, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${t.sidecar.adminPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

void describe('resilience through real sidecars', () => {
  const apps: TestServer[] = [];
  const backs: TestSidecar[] = [];
  let a: TestSidecar;

  before(async () => {
    for (let i = 1; i <= 3; i++) {
      const app = await startServer((req, res) => {
        if (req.url === '/slow') {
          setTimeout(() => res.end('late'), 4000);
          return;
        }
        if (req.url === '/flaky' && i === 3) {
          res.writeHead(500);
          res.end('broken');
          return;
        }
        res.end(`b-${i}`);
      });
      apps.push(app);
      backs.push(await startTestSidecar({ service: 'b', pod: `b-${i}`, appPort: app.port, drainTimeoutMs: 200 }));
    }
    const dead = [await closedPort(), await closedPort()];
    a = await startTestSidecar(
      // Retries on, for gateway errors too (a killed pod's sidecar answers 502 for the calls its app dropped).
      { service: 'a', appPort: 1, outboundTimeoutMs: 1000, retryBudgetMinPerSecond: 1, retryOn: [...DEFAULT_RETRY_ON, 'gateway-error'], outlierConsecutive5xx: 3, outlierConsecutiveGatewayErrors: 3, outlierIntervalMs: 60_000 },
      {
        b: backs.map((s, i) => ({ address: `127.0.0.1:${s.sidecar.inboundPort}`, pod: `b-${i + 1}` })),
        dead: dead.map((p, i) => ({ address: `127.0.0.1:${p}`, pod: `dead-${i + 1}` })),
        flaky: backs.map((s, i) => ({ address: `127.0.0.1:${s.sidecar.inboundPort}`, pod: `b-${i + 1}` })),
      },
    );
  });
  after(async () => {
    await a.close();
    for (const s of backs) await s.close();
    for (const app of apps) app.server.close();
  });

  void it('a slow app is reported once, by its own sidecar (no double blame)', async (t) => {
    // A caller with a 3 s timeout: b's sidecar times its app out 300 ms earlier (10%), a margin
    // that holds on a loaded machine (100 ms, the floor, did not under load).
    const caller = await startTestSidecar({ service: 'a-slow', appPort: 1, outboundTimeoutMs: 3000 }, { b: backs.map((s, i) => ({ address: `127.0.0.1:${s.sidecar.inboundPort}`, pod: `b-${i + 1}` })) });
    t.after(() => caller.close());
    const a = caller;
    const r = await httpRequest(a.sidecar.outboundPort, { path: '/slow', headers: { host: 'b', 'x-request-id': 'slow-1' } });
    assert.equal(r.status, 504);
    const body = JSON.parse(r.body) as { error: { code: string; hop: { service: string }; message: string } };
    assert.equal(body.error.code, MESH_ERROR.timeout);
    assert.equal(body.error.hop.service, 'b', 'the sidecar beside the slow app answered');
    assert.match(body.error.message, /local app/);
    const aSpan = await waitFor(async () => (await a.finishedSpans()).find((s) => s.attributes[ATTR.requestId] === 'slow-1' && s.attributes[ATTR.meshRetryRecovered] === undefined), 'a span');
    assert.equal(aSpan.attributes[ATTR.meshErrorCode], undefined, 'the caller relayed the failure instead of timing out itself');
  });

  void it('fails over to healthy endpoints and ejects one that keeps failing', async () => {
    // Round robin keeps sending to the failing endpoint (peak EWMA would already avoid it), so
    // outlier detection is what takes it out.
    const rr = await startTestSidecar(
      { service: 'rr', appPort: 1, lbPolicy: 'round_robin', outlierConsecutive5xx: 3, outlierConsecutiveGatewayErrors: 3, outlierIntervalMs: 60_000 },
      { flaky: backs.map((s, i) => ({ address: `127.0.0.1:${s.sidecar.inboundPort}`, pod: `b-${i + 1}` })) },
    );
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const codes: number[] = [];
    for (let i = 0; i < 30; i++) codes.push(await get(rr.sidecar.outboundPort, agent, 'flaky', '/flaky'));
    agent.destroy();
    const a = rr;
    // b-3 answers 500 (not retried by default: POST-safe statuses are 503 only); after 3 in a row it is ejected.
    assert.ok(codes.filter((c) => c === 500).length <= 3, `500s: ${codes.filter((c) => c === 500).length}`);
    const clusters = (await (await fetch(`http://127.0.0.1:${a.sidecar.adminPort}/debug/clusters`)).json()) as { clusters: Record<string, { endpoints: Array<{ pod: string; ejected: boolean }> }> };
    assert.deepEqual(clusters.clusters['flaky']!.endpoints.filter((e) => e.ejected).map((e) => e.pod), ['b-3']);
    assert.equal(await metric(a, 'tracemesh_outlier_ejections_total', { destination_service: 'flaky' }), 1);
    const ejecting = (await a.finishedSpans()).find((s) => s.attributes[ATTR.meshEndpointEjected] === true);
    assert.ok(ejecting, 'the try that ejected the endpoint says so');
    assert.equal(ejecting.attributes[ATTR.meshEndpointPod], 'b-3');
    await rr.close();
  });

  void it('a retry that succeeds after a peer answered CONNECTION_REFUSED is not retried again', async () => {
    // r-1's app is down (its sidecar answers 502 CONNECTION_REFUSED, a connect failure the
    // caller retries); r-2 is healthy. Round robin sends every other first try to r-1.
    const refusing = await startTestSidecar({ service: 'r', pod: 'r-1', appPort: await closedPort(), drainTimeoutMs: 200 });
    const rr = await startTestSidecar(
      { service: 'rr2', appPort: 1, lbPolicy: 'round_robin', retryBudgetMinPerSecond: 100, outlierConsecutiveGatewayErrors: 0, outlierConsecutive5xx: 0 },
      {
        r: [
          { address: `127.0.0.1:${refusing.sidecar.inboundPort}`, pod: 'r-1' },
          { address: `127.0.0.1:${backs[0]!.sidecar.inboundPort}`, pod: 'r-2' },
        ],
      },
    );
    try {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const codes: number[] = [];
      for (let i = 0; i < 10; i++) codes.push(await get(rr.sidecar.outboundPort, agent, 'r'));
      agent.destroy();
      assert.deepEqual(codes, Array.from({ length: 10 }, () => 200), 'every request ends with the healthy endpoint\'s answer');
      const spans = await waitFor(async () => {
        const all = (await rr.finishedSpans()).filter((s) => s.attributes[ATTR.meshRetryRecovered] === true);
        return all.length >= 5 ? all : undefined;
      }, 'the spans of the failed tries');
      const refused = new Set((await refusing.finishedSpans()).map((s) => s.spanContext().spanId));
      for (const s of spans) {
        assert.equal(s.attributes[ATTR.meshEndpointPod], 'r-1', 'only tries at the refusing endpoint failed');
        // The try names the span that answered it (from the peer's traceresponse), so the path
        // analysis can hang r-1's CONNECTION_REFUSED under this try.
        const peer = s.attributes[ATTR.meshRetryPeerSpanId];
        assert.ok(typeof peer === 'string' && refused.has(peer), `peer span ${String(peer)} is one of r-1's`);
      }
    } finally {
      await rr.close();
      await refusing.close();
    }
  });

  void it('keeps the retry budget in a full outage: no retry storm', async (t) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 10 });
    const n = 200;
    const codes = await Promise.all(Array.from({ length: n }, () => get(a.sidecar.outboundPort, agent, 'dead')));
    agent.destroy();
    assert.ok(codes.every((c) => c === 502), 'every request fails: the service is down');
    const retries = await metric(a, 'tracemesh_retries_total', { destination_service: 'dead' });
    // Refused by the budget, or first by the max_retries breaker (3 retries in flight).
    const refused = await metric(a, 'tracemesh_circuit_open_total', { destination_service: 'dead' });
    // Budget: 20% of the requests of the last 10 s plus a floor of 1/s × 10 s (set by the test).
    assert.ok(retries > 0, 'retries were tried');
    assert.ok(retries <= 0.2 * n + 10, `retries ${retries} stay within the budget (≤ ${0.2 * n + 10}); without it there would be ${2 * n}`);
    assert.ok(refused > 0, 'retries past the budget were refused and counted');
    const spans = await a.finishedSpans();
    assert.ok(spans.some((s) => s.attributes[ATTR.meshCircuitOpen] === 'retry_budget' || s.attributes[ATTR.meshCircuitOpen] === 'max_retries'));
    t.diagnostic(`full outage: ${n} requests, ${retries} retries, ${refused} refused by the budget or max_retries`);
  });

  void it('loses at most 0.1% of idempotent requests when an endpoint is killed under steady load', async (t) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    let ok = 0;
    let failed = 0;
    const codes = new Map<number, number>();
    let stop = false;
    const loop = async (): Promise<void> => {
      while (!stop) {
        const c = await get(a.sidecar.outboundPort, agent, 'b');
        if (c === 200) ok++;
        else {
          failed++;
          codes.set(c, (codes.get(c) ?? 0) + 1);
        }
      }
    };
    const loops = Array.from({ length: 8 }, loop);
    await waitFor(() => (ok > 300 ? true : undefined), 'steady load', 10_000);
    // Kill b-2: its app's connections are cut and its sidecar goes away.
    apps[1]!.server.closeAllConnections();
    apps[1]!.server.close();
    const killed = backs[1]!.close();
    const atKill = ok;
    await waitFor(() => (ok > atKill + 1500 ? true : undefined), 'load after the kill', 20_000);
    stop = true;
    await Promise.all(loops);
    await killed;
    agent.destroy();
    const total = ok + failed;
    const retried = await metric(a, 'tracemesh_retries_total', { destination_service: 'b' });
    t.diagnostic(`killed endpoint: ${failed} of ${total} requests failed (${JSON.stringify([...codes])}), ${retried} retries`);
    assert.ok(failed / total <= 0.001, `${failed} of ${total} requests failed`);
  });
});

void describe('circuit breaker and app health', () => {
  let app: TestServer;
  let healthy = true;
  let b: TestSidecar;
  let a: TestSidecar;
  let c: TestSidecar;
  const hanging: Array<() => void> = [];

  before(async () => {
    app = await startServer((req, res) => {
      if (req.url === '/healthz') {
        res.writeHead(healthy ? 200 : 500);
        res.end();
        return;
      }
      if (req.url === '/hang') {
        hanging.push(() => res.end('done'));
        return;
      }
      res.end('ok');
    });
    b = await startTestSidecar({ service: 'b', appPort: app.port, appProtocol: 'http1', appHealthCheck: 'http:/healthz', appHealthIntervalMs: 30, appHealthUnhealthyThreshold: 2 });
    a = await startTestSidecar({ service: 'a', appPort: 1, maxRequests: 2 }, { b: [{ address: `127.0.0.1:${b.sidecar.inboundPort}`, pod: 'b-1' }] });
    c = await startTestSidecar({ service: 'c', appPort: 1, maxConnections: 2, maxRequests: 100 }, { b: [{ address: `127.0.0.1:${b.sidecar.inboundPort}`, pod: 'b-1' }] });
  });
  after(async () => {
    for (const h of hanging) h();
    await a.close();
    await c.close();
    await b.close();
    app.server.close();
  });

  void it('refuses requests past max_requests with 503 CIRCUIT_OPEN at once', async () => {
    const first = [httpRequest(a.sidecar.outboundPort, { path: '/hang', headers: { host: 'b' } }), httpRequest(a.sidecar.outboundPort, { path: '/hang', headers: { host: 'b' } })];
    await waitFor(() => (hanging.length === 2 ? true : undefined), 'two requests in flight');
    const r = await httpRequest(a.sidecar.outboundPort, { path: '/', headers: { host: 'b', 'x-request-id': 'over' } });
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-tracemesh-error'], MESH_ERROR.circuitOpen);
    const span = await waitFor(async () => (await a.finishedSpans()).find((s) => s.attributes[ATTR.requestId] === 'over'), 'span');
    assert.equal(span.attributes[ATTR.meshCircuitOpen], 'max_requests');
    for (const h of hanging.splice(0)) h();
    await Promise.all(first);
    assert.equal((await httpRequest(a.sidecar.outboundPort, { headers: { host: 'b' } })).status, 200, 'closes again when load drops');
  });

  void it('refuses HTTP/1.1 requests past max_connections; HTTP/2 requests share a connection and still pass', async () => {
    const first = [httpRequest(c.sidecar.outboundPort, { path: '/hang', headers: { host: 'b' } }), httpRequest(c.sidecar.outboundPort, { path: '/hang', headers: { host: 'b' } })];
    await waitFor(() => (hanging.length === 2 ? true : undefined), 'two HTTP/1.1 requests in flight', 30_000);
    const r = await httpRequest(c.sidecar.outboundPort, { path: '/', headers: { host: 'b', 'x-request-id': 'over-connections' } });
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-tracemesh-error'], MESH_ERROR.circuitOpen);
    assert.match(r.body, /--max-connections 2/);
    const span = await waitFor(async () => (await c.finishedSpans()).find((s) => s.attributes[ATTR.requestId] === 'over-connections'), 'span', 30_000);
    assert.equal(span.attributes[ATTR.meshCircuitOpen], 'max_connections');
    assert.ok((await metric(c, 'tracemesh_circuit_open_total', { destination_service: 'b', breaker: 'max_connections' })) >= 1);
    const h2 = await new Promise<number>((resolve, reject) => {
      const session = h2connect(`http://127.0.0.1:${c.sidecar.outboundPort}`);
      session.on('error', reject);
      const stream = session.request({ ':path': '/', ':authority': 'b' });
      stream.on('response', (h) => {
        stream.resume();
        stream.on('end', () => {
          session.close();
          resolve(Number(h[':status']));
        });
      });
      stream.on('error', reject);
      stream.end();
    });
    assert.equal(h2, 200, 'an HTTP/2 request is not held to the HTTP/1.1 connection count');
    for (const h of hanging.splice(0)) h();
    await Promise.all(first);
    assert.equal((await httpRequest(c.sidecar.outboundPort, { headers: { host: 'b' } })).status, 200, 'closes again when connections free');
  });

  void it('serves the app health it checks on the admin port and folds it into /ready', async () => {
    const health = async (): Promise<{ status: number; body: { status: string } }> => {
      const r = await fetch(`http://127.0.0.1:${b.sidecar.adminPort}/health/app`);
      return { status: r.status, body: (await r.json()) as { status: string } };
    };
    await waitFor(async () => ((await health()).body.status === 'healthy' ? true : undefined), 'healthy');
    assert.equal((await fetch(`http://127.0.0.1:${b.sidecar.adminPort}/ready`)).status, 200);
    healthy = false;
    const down = await waitFor(async () => {
      const h = await health();
      return h.body.status === 'unhealthy' ? h : undefined;
    }, 'unhealthy');
    assert.equal(down.status, 503);
    assert.equal((await fetch(`http://127.0.0.1:${b.sidecar.adminPort}/ready`)).status, 503);
    assert.equal(await metric(b, 'tracemesh_app_healthy', {}), 0);
    healthy = true;
    await waitFor(async () => ((await health()).status === 200 ? true : undefined), 'healthy again');
  });
});

void describe('active health checks of peer endpoints (mTLS)', () => {
  const apps: TestServer[] = [];
  const backs: TestSidecar[] = [];
  const identities: StaticIdentitySource[] = [];
  const served = [0, 0, 0];
  const checked = [0, 0, 0];
  let sick = false;
  let a: TestSidecar;

  before(async () => {
    const root = await makeRoot();
    const identity = async (sa: string): Promise<{ identity: StaticIdentitySource }> => {
      const source = new StaticIdentitySource(await makeIdentity(root, `spiffe://cluster.local/ns/default/sa/${sa}`));
      identities.push(source);
      return { identity: source };
    };
    for (let i = 0; i < 3; i++) {
      const app = await startServer((req, res) => {
        if (req.url === '/healthz') {
          checked[i] = (checked[i] as number) + 1;
          res.writeHead(sick && i === 0 ? 503 : 200);
          res.end();
          return;
        }
        served[i] = (served[i] as number) + 1;
        res.end(`h-${i + 1}`);
      });
      apps.push(app);
      backs.push(await startTestSidecar({ service: 'h', pod: `h-${i + 1}`, appPort: app.port, appProtocol: 'http1' }, {}, undefined, await identity('h')));
    }
    a = await startTestSidecar(
      // Outlier detection off: only the health checks take h-1 out.
      { service: 'a', appPort: 1, lbPolicy: 'round_robin', healthCheck: 'http:/healthz', healthCheckIntervalMs: 100, healthCheckTimeoutMs: 2000, healthCheckUnhealthyThreshold: 2, healthCheckHealthyThreshold: 2, outlierConsecutive5xx: 0, outlierConsecutiveGatewayErrors: 0 },
      { h: backs.map((s, i) => ({ address: `127.0.0.1:${s.sidecar.inboundPort}`, pod: `h-${i + 1}`, identity: 'spiffe://cluster.local/ns/default/sa/h' })) },
      undefined,
      await identity('a'),
    );
  });
  after(async () => {
    await a.close();
    for (const s of backs) await s.close();
    for (const app of apps) app.server.close();
    for (const s of identities) s.close();
  });

  const healthOf = async (pod: string): Promise<string | null> => {
    const r = (await (await fetch(`http://127.0.0.1:${a.sidecar.adminPort}/debug/clusters`)).json()) as { clusters: Record<string, { endpoints: Array<{ pod: string; health: string | null }> }> };
    return r.clusters.h?.endpoints.find((e) => e.pod === pod)?.health ?? null;
  };

  void it('checks every endpoint over mTLS; an unhealthy one takes no traffic and gets it back when it recovers', async () => {
    await waitFor(async () => ((await healthOf('h-1')) === 'healthy' && (await healthOf('h-3')) === 'healthy' ? true : undefined), 'every endpoint healthy', 30_000);
    assert.ok(checked.every((n) => n > 0), `every app was checked through its sidecar: ${checked.join(',')}`);
    sick = true;
    await waitFor(async () => ((await healthOf('h-1')) === 'unhealthy' ? true : undefined), 'h-1 unhealthy', 30_000);
    assert.equal(await metric(a, 'tracemesh_endpoints_unhealthy', { destination_service: 'h' }), 1);
    assert.ok((await metric(a, 'tracemesh_health_checks_total', { result: 'failed' })) >= 2);
    const before = served[0];
    for (let i = 0; i < 12; i++) assert.equal((await httpRequest(a.sidecar.outboundPort, { headers: { host: 'h' } })).status, 200);
    assert.equal(served[0], before, 'no request went to the unhealthy endpoint');
    assert.ok((served[1] as number) > 0 && (served[2] as number) > 0, 'the healthy ones took the traffic');
    sick = false;
    await waitFor(async () => ((await healthOf('h-1')) === 'healthy' ? true : undefined), 'h-1 healthy again', 30_000);
    await waitFor(async () => {
      await httpRequest(a.sidecar.outboundPort, { headers: { host: 'h' } });
      return (served[0] as number) > (before as number) ? true : undefined;
    }, 'h-1 takes traffic again', 30_000);
    // The checks leave no traces at the peers: their traceparent is not sampled.
    const spans = (await backs[0]!.finishedSpans()).filter((s) => s.attributes[ATTR.urlPath] === '/healthz');
    assert.equal(spans.length, 0);
  });
});
