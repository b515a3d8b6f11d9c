// Endpoint churn on Kubernetes, end to end with real sidecars: the control plane's Kubernetes
// discovery (real @kubernetes/client-node informers against the API fixture, which speaks the
// list/watch protocol) feeds xDS over mTLS to real sidecars; the backends' pods point at their
// sidecars' inbound ports. Under steady load through the frontend's sidecar, a pod is added, made
// not ready and removed in the fixture: the frontend starts routing to it, stops once its
// configuration drops it and never reaches it afterwards (its sidecar is shut down after the
// removal, so a stale route would fail), and no request fails for the ready endpoints. Midway
// the control plane is killed and restarted (same port, same CA directory, informers listing
// again) under that load: no request fails and every sidecar resyncs. PeerAuthentication CRDs
// reach the sidecars the same way; a malformed one is reported by name and skipped.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../common/logger.ts';
import { bootstrapTokenAuthenticator } from '../controlplane/ca/authn/bootstrap-token.ts';
import { clientCertificateAuthenticator } from '../controlplane/ca/authn/client-cert.ts';
import { createCertificateAuthority, type CertificateAuthority } from '../controlplane/ca/pki/authority.ts';
import { pollUntil } from '../controlplane/ca/testing.ts';
import { startControlPlane, type ControlPlane } from '../controlplane/controlplane.ts';
import { KubernetesDiscovery } from '../controlplane/discovery/kubernetes/source.ts';
import { ServiceRegistry } from '../controlplane/discovery/model.ts';
import { KubernetesPolicies } from '../controlplane/discovery/kubernetes/policies.ts';
import { KubeApiFixture, KUBE_POLICY_TYPES as P, KUBE_TYPES as T } from '../controlplane/testing/kube-api.ts';
import { endpointSliceObject, namespaceObject, podObject, serviceObject, type SliceEndpointSpec } from '../controlplane/testing/kube-objects.ts';
import { startSidecar, type Sidecar } from '../sidecar/sidecar.ts';
import { httpRequest } from '../sidecar/testing/harness.ts';

const TD = 'cluster.local';
const TOKENS = new Map([
  ['token-frontend-0123456789abcdef', { namespace: 'shop', serviceAccount: 'frontend' }],
  ['token-backend-0123456789abcdef0', { namespace: 'shop', serviceAccount: 'backend' }],
]);

interface Outcome {
  readonly startedAt: number;
  readonly ok: boolean;
  readonly body: string;
}

void describe('Kubernetes endpoint churn through real sidecars (informers → xDS → sidecar pools)', () => {
  let dir: string;
  let fixture: KubeApiFixture;
  let kube: KubernetesDiscovery;
  let policies: KubernetesPolicies;
  let ca: CertificateAuthority;
  let cp: ControlPlane;
  const apps: Server[] = [];
  const sidecars = new Map<string, Sidecar>();
  let frontend: Sidecar;
  const outcomes: Outcome[] = [];
  let running = true;
  let lanes: Promise<void>[] = [];

  let cpPort = 0;
  /** The control plane as a restart brings it up: its CA from the same directory, its informers listing afresh. */
  async function startCp(): Promise<void> {
    const registry = new ServiceRegistry();
    kube = new KubernetesDiscovery({ kubeConfig: fixture.kubeConfig(), registry, logger: silentLogger });
    kube.start();
    policies = new KubernetesPolicies({ kubeConfig: fixture.kubeConfig(), logger: silentLogger });
    policies.start();
    await Promise.all([kube.synced(), policies.synced()]);
    ca = await createCertificateAuthority({ trustDomain: TD, source: { kind: 'self-signed', dir: join(dir, 'ca') } });
    cp = await startControlPlane({
      ca,
      authenticators: [clientCertificateAuthenticator(TD), bootstrapTokenAuthenticator(TD, TOKENS)],
      port: cpPort,
      debounceMs: 20,
      registration: false,
      registry,
      policies,
      logger: silentLogger,
    });
    cpPort = cp.port;
  }

  async function app(name: string): Promise<number> {
    const s = createServer((_req, res) => res.end(name));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    apps.push(s);
    return (s.address() as AddressInfo).port;
  }

  async function sidecar(service: string, pod: string, token: string): Promise<Sidecar> {
    const s = await startSidecar(
      {
        service,
        pod,
        namespace: 'shop',
        node: 'node-a',
        appPort: await app(pod),
        outboundPort: 0,
        inboundPort: 0,
        adminPort: 0,
        bindAddress: '127.0.0.1',
        collectorEndpoint: '',
        accessLog: 'off',
        drainTimeoutMs: 2000,
        caAddress: cp.address,
        caRootCertFile: join(dir, 'root.pem'),
        caToken: token,
        controlPlane: cp.address,
        register: false,
      },
      { logger: silentLogger },
    );
    sidecars.set(pod, s);
    return s;
  }

  const pod = (name: string): Record<string, unknown> =>
    podObject('shop', name, { serviceAccount: 'backend', node: 'node-a', labels: { app: 'backend' }, ip: '127.0.0.1', inboundPort: sidecars.get(name)!.inboundPort });
  const ep = (name: string, extra: Partial<SliceEndpointSpec> = {}): SliceEndpointSpec => ({ ip: '127.0.0.1', pod: name, node: 'node-a', ...extra });
  const slice = (eps: readonly SliceEndpointSpec[]): void => void fixture.apply(T.endpointSlices, endpointSliceObject('shop', 'backend-abcde', 'backend', eps));

  /** The inbound ports of the endpoints the frontend sidecar holds for `backend`. */
  async function frontendPorts(): Promise<number[]> {
    const body = (await (await fetch(`http://127.0.0.1:${frontend.adminPort}/debug/endpoints`)).json()) as { services: Record<string, { port: number }[]> };
    return (body.services['backend'] ?? []).map((e) => e.port).sort((a, b) => a - b);
  }
  const portsOf = (...pods: string[]): number[] => pods.map((p) => sidecars.get(p)!.inboundPort).sort((a, b) => a - b);
  const answeredSince = (t: number): Set<string> => new Set(outcomes.filter((o) => o.ok && o.startedAt >= t).map((o) => o.body));

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tm-xds-kube-mesh-'));
    fixture = await KubeApiFixture.start();
    fixture.apply(T.namespaces, namespaceObject('shop'));
    fixture.apply(T.services, serviceObject('shop', 'backend', 8080));
    fixture.apply(T.services, serviceObject('shop', 'frontend', 8080));
    await startCp();
    await writeFile(join(dir, 'root.pem'), ca.trustBundle().pem);
    for (const name of ['backend-1', 'backend-2', 'backend-3']) await sidecar('backend', name, 'token-backend-0123456789abcdef0');
    fixture.apply(T.pods, pod('backend-1'));
    fixture.apply(T.pods, pod('backend-2'));
    slice([ep('backend-1'), ep('backend-2')]);
    frontend = await sidecar('frontend', 'frontend-1', 'token-frontend-0123456789abcdef');
    await pollUntil('the frontend to hold backend-1 and backend-2', async () => (JSON.stringify(await frontendPorts()) === JSON.stringify(portsOf('backend-1', 'backend-2')) ? true : undefined), 30_000);
    lanes = Array.from({ length: 4 }, async () => {
      while (running) {
        const startedAt = Date.now();
        try {
          const r = await httpRequest(frontend.outboundPort, { path: '/', headers: { host: 'backend' } });
          outcomes.push({ startedAt, ok: r.status === 200, body: r.status === 200 ? r.body : `${r.status} ${r.body.slice(0, 300)}` });
        } catch (err) {
          outcomes.push({ startedAt, ok: false, body: String(err) });
        }
      }
    });
  });

  after(async () => {
    running = false;
    await Promise.all(lanes);
    for (const s of sidecars.values()) await s.close();
    await cp?.close();
    ca?.close();
    await kube?.close();
    await policies?.close();
    await fixture?.close();
    for (const a of apps) a.close();
    await rm(dir, { recursive: true, force: true });
  });

  void it('routes to a pod once it is added and ready', async () => {
    const t = Date.now();
    fixture.apply(T.pods, pod('backend-3'));
    slice([ep('backend-1'), ep('backend-2'), ep('backend-3')]);
    await pollUntil('backend-3 to answer', () => (answeredSince(t).has('backend-3') ? true : undefined), 30_000);
    assert.deepEqual(await frontendPorts(), portsOf('backend-1', 'backend-2', 'backend-3'));
  });

  void it('stops routing to it once it is not ready, and the others keep answering', async () => {
    slice([ep('backend-1'), ep('backend-2'), ep('backend-3', { ready: false, serving: false })]);
    await pollUntil('the frontend to drop backend-3', async () => (JSON.stringify(await frontendPorts()) === JSON.stringify(portsOf('backend-1', 'backend-2')) ? true : undefined), 30_000);
    const dropped = Date.now();
    const before = outcomes.length;
    await pollUntil('60 more requests', () => (outcomes.length >= before + 60 ? true : undefined), 30_000);
    const seen = answeredSince(dropped);
    assert.ok(!seen.has('backend-3'), `routed to backend-3 after it turned not ready: ${[...seen].join(', ')}`);
    assert.ok(seen.has('backend-1') || seen.has('backend-2'));
  });

  /** The backend cluster's mTLS mode as the frontend sidecar holds it. */
  async function backendMode(): Promise<string | undefined> {
    const body = (await (await fetch(`http://127.0.0.1:${frontend.adminPort}/debug/xds`)).json()) as { clusters: { name: string; mtlsMode: string }[] };
    return body.clusters.find((c) => c.name === 'backend.shop.svc.cluster.local')?.mtlsMode;
  }

  void it('takes PeerAuthentication CRDs to the sidecars over xDS; a malformed one is reported by name and skipped', async () => {
    assert.equal(await backendMode(), 'STRICT');
    fixture.apply(P.peerAuthentications, { metadata: { name: 'broken', namespace: 'shop' }, spec: { mtls: { mode: 'SOMETIMES' } } });
    fixture.apply(P.peerAuthentications, { metadata: { name: 'backend-permissive', namespace: 'shop', creationTimestamp: '2026-12-01T10:00:00Z' }, spec: { selector: { matchLabels: { app: 'backend' } }, mtls: { mode: 'PERMISSIVE' } } });
    await pollUntil('the frontend to hold backend in PERMISSIVE', async () => ((await backendMode()) === 'PERMISSIVE' ? true : undefined), 30_000);
    assert.deepEqual(policies.rejected().map((r) => r.object), ['PeerAuthentication shop/broken']);
    assert.match(policies.rejected()[0]!.reason, /spec\.mtls\.mode/);
    assert.deepEqual(policies.current().peerAuthentications.map((p) => p.metadata.name), ['backend-permissive']);
  });

  void it('keeps every request flowing while the control plane is killed and restarted, and the sidecars resync', async () => {
    const before = outcomes.length;
    await cp.close();
    ca.close();
    await kube.close();
    await policies.close();
    await new Promise((r) => setTimeout(r, 500));
    await startCp();
    await pollUntil('all four sidecars reconnected and synced', () => {
      const st = cp.xds.status();
      return st.length === 4 && st.every((c) => c.types.length >= 2 && c.types.every((t) => t.state === 'SYNCED')) ? true : undefined;
    }, 30_000);
    await pollUntil('60 more requests', () => (outcomes.length >= before + 60 ? true : undefined), 30_000);
    // The restarted control plane listed the same cluster: backend-3 still not ready, the policy still there.
    assert.deepEqual(await frontendPorts(), portsOf('backend-1', 'backend-2'));
    assert.equal(await backendMode(), 'PERMISSIVE');
    assert.deepEqual(outcomes.slice(before).filter((o) => !o.ok).map((o) => o.body), []);
  });

  void it('never routes to it again once it is removed and gone, and no request failed', async () => {
    slice([ep('backend-1'), ep('backend-2')]);
    fixture.delete(T.pods, 'shop', 'backend-3');
    await pollUntil('backend-3 gone from the registry', () => (cp.registry.services().get('shop/backend')?.endpoints.length === 2 ? true : undefined), 30_000);
    // The pod is gone: its sidecar and app stop, so a route to it would fail.
    const gone = Date.now();
    await sidecars.get('backend-3')!.close();
    sidecars.delete('backend-3');
    const before = outcomes.length;
    await pollUntil('60 more requests', () => (outcomes.length >= before + 60 ? true : undefined), 30_000);
    running = false;
    await Promise.all(lanes);
    assert.ok(!answeredSince(gone).has('backend-3'));
    const failed = outcomes.filter((o) => !o.ok);
    assert.deepEqual(failed.map((o) => o.body), [], `${failed.length} of ${outcomes.length} requests failed`);
    assert.ok(outcomes.length > 150, `only ${outcomes.length} requests`);
    assert.deepEqual(fixture.unexpected, []);
  });
});
