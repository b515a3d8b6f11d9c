import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseRouteYaml } from '../../common/routes/load.ts';
import { compileGateway, listenerFor, parseGatewayRef, selectGateway } from './listeners.ts';

const gateway = (listeners: string): string => `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: web }
spec:
  gatewayClassName: tracemesh
  listeners:
${listeners}`;

const HTTPS = (name: string, hostname: string | undefined, cert = 'c'): string =>
  `  - { name: ${name}, protocol: HTTPS, port: 443${hostname === undefined ? '' : `, hostname: "${hostname}"`}, tls: { certificateRefs: [{ name: ${cert} }] } }\n`;

const where = (kind: string, ns: string, name: string): string => `f.yaml (${kind} ${ns}/${name})`;

void describe('gateway listeners', () => {
  void it('orders a port\'s listeners exact, then wildcard (longest first), then catch-all, and picks by host', () => {
    const files = parseRouteYaml(gateway(HTTPS('any', undefined) + HTTPS('wild', '*.example.test') + HTTPS('deep', '*.a.example.test') + HTTPS('exact', 'a.example.test')), 'f.yaml');
    const [port] = compileGateway(selectGateway(files, undefined), files, new Set(['c']), where);
    assert.ok(port);
    assert.deepEqual(port.listeners.map((l) => l.name), ['exact', 'deep', 'wild', 'any']);
    assert.equal(listenerFor(port, 'a.example.test')?.name, 'exact');
    assert.equal(listenerFor(port, 'x.a.example.test')?.name, 'deep');
    assert.equal(listenerFor(port, 'b.example.test')?.name, 'wild');
    assert.equal(listenerFor(port, 'example.test')?.name, 'any', 'a wildcard never takes the apex');
    assert.equal(listenerFor(port, '')?.name, 'any', 'no SNI: the catch-all');
  });

  void it('refuses what the schema cannot see, naming file, resource and reason', () => {
    const refuse = (yaml: string, certs: string[], re: RegExp): void => {
      const files = parseRouteYaml(yaml, 'f.yaml');
      assert.throws(() => compileGateway(selectGateway(files, undefined), files, new Set(certs), where), re);
    };
    refuse(gateway(HTTPS('a', 'x.test') + HTTPS('a', 'y.test')), ['c'], /f\.yaml \(Gateway web\/edge\): Gateway web\/edge: spec\.listeners\[1\]: listener name "a" is used twice/);
    refuse(gateway(HTTPS('a', 'x.test') + '  - { name: b, protocol: HTTP, port: 443 }\n'), ['c'], /port 443 is HTTPS for another listener/);
    refuse(gateway(HTTPS('a', 'x.test') + HTTPS('b', 'x.test')), ['c'], /already has a listener for hostname x\.test/);
    refuse(gateway(HTTPS('a', 'x.test', 'missing')), ['c'], /certificateRef "missing" has no certificate: give it with --certificates missing=<cert\.pem>:<key\.pem>/);
    const route = `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: web }
spec:
  parentRefs: [{ name: edge, sectionName: nope }]
  rules: [{ backendRefs: [{ name: b, port: 80 }] }]
`;
    refuse(gateway(HTTPS('a', 'x.test')) + route, ['c'], /f\.yaml \(HTTPRoute web\/r\): HTTPRoute web\/r: spec\.parentRefs\[0\]\.sectionName: Gateway web\/edge has no listener "nope" \(it has a\)/);
  });

  void it('selects the Gateway by --gateway, or the only one', () => {
    const files = parseRouteYaml(gateway(HTTPS('a', undefined)), 'f.yaml');
    assert.equal(selectGateway(files, parseGatewayRef('web/edge', 'default')).metadata.name, 'edge');
    assert.equal(selectGateway(files, parseGatewayRef('edge', 'web')).metadata.name, 'edge');
    assert.throws(() => selectGateway(files, parseGatewayRef('web/other', 'default')), /Gateway web\/other \(--gateway\) is not in the route files; they define web\/edge/);
    assert.throws(() => selectGateway(parseRouteYaml('', 'f.yaml'), undefined), /define no Gateway/);
  });
});
