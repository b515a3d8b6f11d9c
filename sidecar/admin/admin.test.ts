import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { httpRequest, startServer, startTestSidecar, type TestServer, type TestSidecar } from '../testing/harness.ts';

let appB: TestServer;
let a: TestSidecar;
let b: TestSidecar;

before(async () => {
  appB = await startServer((req, res) => {
    res.statusCode = req.url === '/missing' ? 404 : 200;
    res.end('ok');
  });
  b = await startTestSidecar({ service: 'b', appPort: appB.port });
  a = await startTestSidecar({ service: 'a', appPort: 9 }, { b: [{ address: `127.0.0.1:${b.sidecar.inboundPort}`, pod: 'b-1' }] });
});

after(async () => {
  await a.close();
  await b.close();
  await appB.close();
});

void describe('admin listener', () => {
  void it('answers readiness and liveness probes', async () => {
    assert.equal((await httpRequest(a.sidecar.adminPort, { path: '/ready' })).status, 200);
    assert.equal((await httpRequest(a.sidecar.adminPort, { path: '/live' })).status, 200);
    assert.equal((await httpRequest(a.sidecar.adminPort, { path: '/nope' })).status, 404);
    assert.equal((await httpRequest(a.sidecar.adminPort, { path: '/ready', method: 'POST' })).status, 405);
  });

  void it('exposes request metrics with Istio-style labels on both sides of a call', async () => {
    await httpRequest(a.sidecar.outboundPort, { path: '/x', headers: { host: 'b' } });
    await httpRequest(a.sidecar.outboundPort, { path: '/missing', headers: { host: 'b' } });
    await httpRequest(a.sidecar.outboundPort, { path: '/x', headers: { host: 'ghost' } });

    const out = await httpRequest(a.sidecar.adminPort, { path: '/metrics' });
    assert.equal(out.status, 200);
    assert.match(out.headers['content-type'] ?? '', /text\/plain/);
    assert.match(out.body, /tracemesh_requests_total\{direction="outbound",source_workload="a",destination_service="b",response_code="200",mesh_error=""\} 1/);
    assert.match(out.body, /tracemesh_requests_total\{direction="outbound",source_workload="a",destination_service="b",response_code="404",mesh_error=""\} 1/);
    assert.match(out.body, /tracemesh_requests_total\{direction="outbound",source_workload="a",destination_service="ghost",response_code="503",mesh_error="NO_ENDPOINT"\} 1/);
    assert.match(out.body, /tracemesh_request_duration_seconds_bucket\{le="[0-9.]+",direction="outbound"/);

    const inb = await httpRequest(b.sidecar.adminPort, { path: '/metrics' });
    assert.match(inb.body, /tracemesh_requests_total\{direction="inbound",source_workload="a",destination_service="b",response_code="200",mesh_error=""\} 1/);
  });

  void it('labels requests from outside the mesh with source_workload="unknown"', async () => {
    await httpRequest(b.sidecar.inboundPort, { path: '/direct', headers: { 'x-tracemesh-source-workload': 'NOT A NAME!' } });
    const inb = await httpRequest(b.sidecar.adminPort, { path: '/metrics' });
    assert.match(inb.body, /tracemesh_requests_total\{direction="inbound",source_workload="unknown",destination_service="b",response_code="200",mesh_error=""\} 1/);
  });

  void it('shows the endpoints in use', async () => {
    const r = await httpRequest(a.sidecar.adminPort, { path: '/debug/endpoints' });
    const body = JSON.parse(r.body) as { services: Record<string, Array<{ address: string; pod: string }>> };
    assert.equal(body.services['b']?.[0]?.address, `127.0.0.1:${b.sidecar.inboundPort}`);
    assert.equal(body.services['b']?.[0]?.pod, 'b-1');
  });
});
