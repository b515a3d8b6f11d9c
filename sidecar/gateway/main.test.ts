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
