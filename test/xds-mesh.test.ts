// An end-to-end mesh on the control plane: real sidecars get certificates from the control
// plane's CA, register themselves over mTLS xDS and take each other's endpoints from EDS.
// Then the control plane is killed and restarted (same port, same CA directory) under load:
// no request fails, and the sidecars resync. Then a peer shuts down and leaves the mesh.

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
import { startSidecar, type Sidecar } from '../sidecar/sidecar.ts';
import { httpRequest } from '../sidecar/testing/harness.ts';

const TD = 'cluster.local';
const TOKENS = new Map([
  ['token-frontend-0123456789abcdef', { namespace: 'shop', serviceAccount: 'frontend' }],
  ['token-backend-0123456789abcdef0', { namespace: 'shop', serviceAccount: 'backend' }],
]);

let dir: string;
let ca: CertificateAuthority;
let cp: ControlPlane;
let cpPort = 0;
const apps: Server[] = [];
const sidecars: Sidecar[] = [];

async function startCp(): Promise<void> {
  ca = await createCertificateAuthority({ trustDomain: TD, source: { kind: 'self-signed', dir: join(dir, 'ca') } });
  cp = await startControlPlane({
    ca,
    authenticators: [clientCertificateAuthenticator(TD), bootstrapTokenAuthenticator(TD, TOKENS)],
    port: cpPort,
    debounceMs: 20,
    // After a restart, sidecars reconnect within their backoff (a few seconds, more on a loaded machine); the default warm-up, 5 s; answer after that.
    registration: { graceMs: 5_000, warmupMs: cpPort === 0 ? 0 : 5_000 },
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
  await writeFile(join(dir, 'root.pem'), ca.trustBundle().pem);
  const s = await startSidecar(
    {
      service,
      pod,
      namespace: 'shop',
      node: 'node-1',
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
      register: true,
    },
    { logger: silentLogger },
  );
  sidecars.push(s);
  return s;
}

function backendsSeen(frontend: Sidecar, n: number): Promise<Set<string>> {
  return (async () => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await httpRequest(frontend.outboundPort, { path: '/', headers: { host: 'backend' } });
      if (r.status === 200) seen.add(r.body);
    }
    return seen;
  })();
}

/** Sends requests back to back on `concurrency` lanes until stop(); counts outcomes. */
function load(frontend: Sidecar, concurrency = 4): { stop(): Promise<{ ok: number; failed: string[] }> } {
  let running = true;
  let ok = 0;
  const failed: string[] = [];
  const lanes = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        const r = await httpRequest(frontend.outboundPort, { path: '/', headers: { host: 'backend' } });
        if (r.status === 200) ok++;
        else failed.push(`${r.status} ${r.body.slice(0, 200)}`);
      } catch (err) {
        failed.push(String(err));
      }
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(lanes);
      return { ok, failed };
    },
  };
}

void describe('a mesh on the control plane (self-registration, xDS over mTLS)', () => {
  let frontend: Sidecar;
  let b1: Sidecar;
  let b2: Sidecar;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tm-xds-mesh-'));
    await startCp();
    b1 = await sidecar('backend', 'backend-1', 'token-backend-0123456789abcdef0');
    b2 = await sidecar('backend', 'backend-2', 'token-backend-0123456789abcdef0');
    frontend = await sidecar('frontend', 'frontend-1', 'token-frontend-0123456789abcdef');
  });

  after(async () => {
    for (const s of sidecars) await s.close();
    await cp.close();
    ca.close();
    for (const a of apps) a.close();
    await rm(dir, { recursive: true, force: true });
  });

  void it('routes to every registered endpoint, and each sidecar shows what it holds', async () => {
    await pollUntil('both backends answering', async () => ((await backendsSeen(frontend, 8)).size === 2 ? true : undefined));
    const res = await fetch(`http://127.0.0.1:${frontend.adminPort}/debug/xds`);
    const body = (await res.json()) as { connected: boolean; clusters: Array<{ name: string; mtlsMode: string }>; types: Record<string, { resources: Record<string, string> }> };
    assert.equal(body.connected, true);
    assert.deepEqual(body.clusters.map((c) => c.name).sort(), ['backend.shop.svc.cluster.local', 'frontend.shop.svc.cluster.local']);
    assert.ok(body.clusters.every((c) => c.mtlsMode === 'STRICT'));
    assert.ok(body.types['type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment']?.resources['backend.shop.svc.cluster.local']);
    const status = cp.xds.status();
    assert.equal(status.length, 3);
    for (const c of status) for (const t of c.types) assert.equal(t.state, 'SYNCED', `${c.nodeId} ${t.typeUrl}`);
    assert.ok(status.every((c) => c.spiffeId?.startsWith('spiffe://cluster.local/ns/shop/sa/')));
  });

  void it('keeps every request flowing while the control plane is killed and restarted, then resyncs', async () => {
    const traffic = load(frontend);
    await new Promise((r) => setTimeout(r, 300));
    await cp.close();
    ca.close();
    await new Promise((r) => setTimeout(r, 700));
    await startCp();
    await pollUntil('all three sidecars reconnected and synced', () => {
      const st = cp.xds.status();
      return st.length === 3 && st.every((c) => c.types.length === 3 && c.types.every((t) => t.state === 'SYNCED')) ? true : undefined;
    }, 30_000);
    await pollUntil('both backends registered again', () => (cp.registry.services().get('shop/backend')?.endpoints.length === 2 ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    const { ok, failed } = await traffic.stop();
    assert.deepEqual(failed, []);
    assert.ok(ok > 50, `only ${ok} requests went through`);
    // The default balancer (peak EWMA) need not alternate; both must still be reachable.
    await pollUntil('both backends answering after the restart', async () => ((await backendsSeen(frontend, 8)).size === 2 ? true : undefined), 30_000);
  });

  void it('drops an endpoint that shuts down, and the caller stops routing to it', async () => {
    await b2.close();
    await pollUntil('backend-2 deregistered', () => (cp.registry.services().get('shop/backend')?.endpoints.length === 1 ? true : undefined));
    await pollUntil('frontend routes to backend-1 only', async () => {
      const seen = await backendsSeen(frontend, 6);
      return seen.size === 1 && seen.has('backend-1') ? true : undefined;
    });
    const after = await backendsSeen(frontend, 20);
    assert.deepEqual([...after], ['backend-1']);
    void b1;
  });
});
