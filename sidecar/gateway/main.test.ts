import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gatewayOptionsFromFlags, runGateway } from './main.ts';

void describe('tracemesh gateway flags', () => {
  void it('reads certificates, listener ports and the edge trace mode; the embedded sidecar gets the rest', () => {
    const o = gatewayOptionsFromFlags(['--route-files', 'routes/', '--gateway', 'web/edge', '--certificates', 'shop=/tls/shop.crt:/tls/shop.key,api=a.crt:a.key', '--listener-ports', '443=8443,80=0', '--edge-trace-context', 'trust', '--namespace', 'web'], {});
    assert.equal(o.gateway, 'web/edge');
    assert.deepEqual(o.certificates, Object.assign(Object.create(null) as object, { shop: { certFile: '/tls/shop.crt', keyFile: '/tls/shop.key' }, api: { certFile: 'a.crt', keyFile: 'a.key' } }));
    assert.deepEqual(o.listenerPorts, { 443: 8443, 80: 0 });
    assert.equal(o.edgeTraceContext, 'trust');
    assert.equal(o.sidecar.service, 'ingress-gateway');
    assert.equal(o.sidecar.namespace, 'web');
    assert.deepEqual(o.sidecar.routeFiles, ['routes/']);
    assert.equal(o.sidecar.inboundPort, 0);
  });

  void it('names the flag of a bad value', () => {
    assert.throws(() => gatewayOptionsFromFlags(['--certificates', 'shop=/only-one-file'], {}), /--certificates entry "shop=\/only-one-file" must be <certificateRef name>=<cert\.pem>:<key\.pem>/);
    assert.throws(() => gatewayOptionsFromFlags(['--listener-ports', '443:8443'], {}), /--listener-ports entry "443:8443"/);
    assert.throws(() => gatewayOptionsFromFlags(['--edge-trace-context', 'maybe'], {}), /--edge-trace-context must be one of restart, trust, got "maybe"/);
  });

  void it('exits 2 with the reason when there are no route files, and prints its flags with --help', async () => {
    const err: string[] = [];
    assert.equal(await runGateway(['--collector-endpoint', 'none', '--admin-port', '0', '--outbound-port', '0'], { env: {}, err: (t) => err.push(t), logger: (await import('../../common/logger.ts')).silentLogger }), 2);
    assert.match(err.join(''), /a gateway needs --route-files/);
    const out: string[] = [];
    assert.equal(await runGateway(['--help'], { out: (t) => out.push(t) }), 0);
    assert.match(out.join(''), /--edge-trace-context/);
    assert.doesNotMatch(out.join(''), /--app-port/);
  });
});

void describe('tracemesh gateway command', () => {
  void it('serves from flags alone until its signal aborts, and exits 0', async () => {
    const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { silentLogger } = await import('../../common/logger.ts');
    const { closedPort, httpRequest, startServer, waitFor } = await import('../testing/harness.ts');
    const app = await startServer((req, res) => res.end(`app saw ${req.headers.host} ${req.url}`));
    const dir = await mkdtemp(join(tmpdir(), 'tracemesh-gw-cli-'));
    try {
      const port = await closedPort();
      await writeFile(join(dir, 'endpoints.json'), JSON.stringify({ services: { web: [{ address: `127.0.0.1:${app.port}`, pod: 'web-1' }] } }));
      await writeFile(
        join(dir, 'routes.yaml'),
        `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: default }
spec: { gatewayClassName: tracemesh, listeners: [{ name: http, protocol: HTTP, port: 80 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: default }
spec: { parentRefs: [{ name: edge }], rules: [{ backendRefs: [{ name: web, port: 80 }] }] }
`,
      );
      const stop = new AbortController();
      const args = ['--route-files', join(dir, 'routes.yaml'), '--endpoints-file', join(dir, 'endpoints.json'), '--listener-ports', `80=${port}`, '--bind-address', '127.0.0.1', '--outbound-port', '0', '--admin-port', '0', '--collector-endpoint', 'none', '--access-log', 'off'];
      const exit = runGateway(args, { env: {}, logger: silentLogger, signal: stop.signal });
      // The mesh is plaintext here (no identity flags): the endpoint is the app itself.
      const r = await waitFor(() => httpRequest(port, { path: '/x', headers: { host: 'www.example.test' } }).catch(() => undefined), 'the gateway to serve', 20_000);
      assert.equal(r.status, 200);
      assert.equal(r.body, 'app saw web:80 /x');
      assert.match(String(r.headers['traceresponse']), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]$/);
      stop.abort();
      assert.equal(await exit, 0);
    } finally {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
