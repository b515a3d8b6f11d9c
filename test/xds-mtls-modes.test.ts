// Per-peer mTLS modes over xDS, end to end: real sidecars with mTLS on (certificates from the
// control plane's CA), one of them in a namespace whose PeerAuthentication says DISABLE. The
// mode travels with that peer's cluster, and the calling sidecar dials it in plaintext (HTTP/1.1
// and HTTP/2) while it keeps mTLS to a STRICT peer; the DISABLE peer's own inbound refuses TLS,
// so a caller that ignored the mode would fail. When the PeerAuthentication turns to STRICT the
// same caller moves to mTLS to that peer.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect as connectH2, createServer as createH2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../common/logger.ts';
import { parsePolicyYaml, type PolicySet } from '../common/policy/load.ts';
import { bootstrapTokenAuthenticator } from '../controlplane/ca/authn/bootstrap-token.ts';
import { clientCertificateAuthenticator } from '../controlplane/ca/authn/client-cert.ts';
import { createCertificateAuthority, type CertificateAuthority } from '../controlplane/ca/pki/authority.ts';
import { pollUntil } from '../controlplane/ca/testing.ts';
import { startControlPlane, type ControlPlane, type PolicyFeed } from '../controlplane/controlplane.ts';
import { startSidecar, type Sidecar } from '../sidecar/sidecar.ts';
import { httpRequest } from '../sidecar/testing/harness.ts';

const TD = 'cluster.local';
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const TOKENS = new Map([
  ['token-frontend-0123456789abcdef', { namespace: 'shop', serviceAccount: 'frontend' }],
  ['token-backend-0123456789abcdef0', { namespace: 'shop', serviceAccount: 'backend' }],
  ['token-legacy-0123456789abcdef00', { namespace: 'legacy', serviceAccount: 'legacy' }],
]);

const peerAuthentication = (mode: string): string => `apiVersion: security.tracemesh.io/v1
kind: PeerAuthentication
metadata: { name: legacy-plaintext, namespace: legacy }
spec:
  mtls: { mode: ${mode} }
`;

/** What the app saw: its name and whether the sidecar in front of it forwarded a client certificate (an mTLS hop). */
interface Seen {
  app: string;
  xfcc: string | null;
}

void describe('per-peer mTLS mode over xDS: a peer in DISABLE is called in plaintext', () => {
  let dir: string;
  let ca: CertificateAuthority;
  let cp: ControlPlane;
  let policies: PolicySet;
  const listeners = new Set<(set: PolicySet) => void>();
  const feed: PolicyFeed = {
    current: () => policies,
    subscribe: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
  const apps: Server[] = [];
  const sidecars: Sidecar[] = [];
  let frontend: Sidecar;
  let legacy: Sidecar;

  /** An app that speaks HTTP/1.1 and h2c (prior knowledge) on one port, as the sidecar may use either toward it. */
  async function app(name: string): Promise<number> {
    const handler = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void => {
      const xfcc = req.headers['x-forwarded-client-cert'];
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ app: name, xfcc: typeof xfcc === 'string' ? xfcc : null } satisfies Seen));
    };
    const h1 = createServer(handler);
    const h2 = createH2Server(handler);
    const s = createNetServer((socket) => {
      socket.once('readable', () => {
        const head = socket.read(PREFACE.length) as Buffer | null;
        if (head !== null) socket.unshift(head);
        (head !== null && head.equals(PREFACE) ? h2 : h1).emit('connection', socket);
      });
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    apps.push(s);
    return (s.address() as AddressInfo).port;
  }

  async function sidecar(service: string, namespace: string, token: string): Promise<Sidecar> {
    const s = await startSidecar(
      {
        service,
        pod: `${service}-1`,
        namespace,
        node: 'node-1',
        appPort: await app(service),
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

  async function viaH1(host: string): Promise<Seen> {
    const r = await httpRequest(frontend.outboundPort, { path: '/', headers: { host } });
    assert.equal(r.status, 200, `${host}: ${r.status} ${r.body.slice(0, 300)}`);
    return JSON.parse(r.body) as Seen;
  }

  async function viaH2(host: string): Promise<Seen> {
    const session = connectH2(`http://127.0.0.1:${frontend.outboundPort}`);
    try {
      return await new Promise<Seen>((resolve, reject) => {
        session.once('error', reject);
        const req = session.request({ ':method': 'GET', ':path': '/', ':authority': host });
        let status = 0;
        let body = '';
        req.on('response', (h) => (status = Number(h[':status'])));
        req.setEncoding('utf8').on('data', (d: string) => (body += d));
        req.on('end', () => (status === 200 ? resolve(JSON.parse(body) as Seen) : reject(new Error(`${host} over h2: ${status} ${body.slice(0, 300)}`))));
        req.on('error', reject);
        req.end();
      });
    } finally {
      session.close();
    }
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tm-xds-mtls-'));
    policies = parsePolicyYaml(peerAuthentication('DISABLE'), 'legacy.yaml');
    ca = await createCertificateAuthority({ trustDomain: TD });
    cp = await startControlPlane({
      ca,
      authenticators: [clientCertificateAuthenticator(TD), bootstrapTokenAuthenticator(TD, TOKENS)],
      port: 0,
      debounceMs: 20,
      registration: { graceMs: 5_000, warmupMs: 0 },
      policies: feed,
      logger: silentLogger,
    });
    await writeFile(join(dir, 'root.pem'), ca.trustBundle().pem);
    legacy = await sidecar('legacy', 'legacy', 'token-legacy-0123456789abcdef00');
    await sidecar('backend', 'shop', 'token-backend-0123456789abcdef0');
    frontend = await sidecar('frontend', 'shop', 'token-frontend-0123456789abcdef');
  });

  after(async () => {
    for (const s of sidecars) await s.close();
    await cp.close();
    ca.close();
    for (const a of apps) a.close();
    await rm(dir, { recursive: true, force: true });
  });

  void it('carries DISABLE with the peer’s cluster, and the caller holds it', async () => {
    const clusters = await pollUntil(
      'the frontend to hold all three clusters',
      async () => {
        const body = (await (await fetch(`http://127.0.0.1:${frontend.adminPort}/debug/xds`)).json()) as { clusters: { name: string; mtlsMode: string }[] };
        return body.clusters.length === 3 ? body.clusters : undefined;
      },
      20_000,
    );
    assert.deepEqual(Object.fromEntries(clusters.map((c) => [c.name, c.mtlsMode])), {
      'backend.shop.svc.cluster.local': 'STRICT',
      'frontend.shop.svc.cluster.local': 'STRICT',
      'legacy.legacy.svc.cluster.local': 'DISABLE',
    });
  });

  void it('calls the DISABLE peer in plaintext and the STRICT peer over mTLS, HTTP/1.1 and HTTP/2, from one sidecar', async () => {
    await pollUntil('both peers reachable', async () => {
      try {
        await viaH1('legacy.legacy');
        await viaH1('backend');
        return true;
      } catch {
        return undefined;
      }
    }, 20_000);
    for (let i = 0; i < 5; i++) {
      const l1 = await viaH1('legacy.legacy');
      assert.deepEqual(l1, { app: 'legacy', xfcc: null }, 'no client certificate on a plaintext hop');
      const b1 = await viaH1('backend');
      assert.equal(b1.app, 'backend');
      assert.match(b1.xfcc ?? '', /URI=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend/);
      const l2 = await viaH2('legacy.legacy');
      assert.deepEqual(l2, { app: 'legacy', xfcc: null });
      const b2 = await viaH2('backend');
      assert.match(b2.xfcc ?? '', /URI=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend/);
    }
    // The DISABLE peer itself still has its certificate; only its inbound mode refuses TLS.
    const id = (await (await fetch(`http://127.0.0.1:${legacy.adminPort}/debug/identity`)).json()) as { mtls: boolean; inboundMtlsMode: string };
    assert.equal(id.mtls, true);
    assert.equal(id.inboundMtlsMode, 'DISABLE');
  });

  void it('moves to mTLS when the peer’s PeerAuthentication turns STRICT', async () => {
    policies = parsePolicyYaml(peerAuthentication('STRICT'), 'legacy.yaml');
    for (const l of listeners) l(policies);
    const seen = await pollUntil('the frontend to call legacy over mTLS', async () => {
      try {
        const s = await viaH1('legacy.legacy');
        return s.xfcc !== null ? s : undefined;
      } catch {
        return undefined;
      }
    }, 20_000);
    assert.match(seen.xfcc ?? '', /URI=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend/);
    const h2 = await viaH2('legacy.legacy');
    assert.match(h2.xfcc ?? '', /URI=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend/);
  });
});
