// Certificate rotation under steady load: two sidecars get 4-second certificates from a real CA
// (startTestCa: key made locally, only the CSR sent), so each renews about every 2 s, and the
// CA's root is rotated and the old one retired in the middle of the run. Concurrent requests
// flow outbound → inbound the whole time, plus one long streaming response that spans several
// renewals. Not one request may fail; the inbound side must have seen at least five distinct
// client certificates.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { startTestCa, type TestCa } from '../controlplane/ca/testing.ts';
import { CaIdentitySource } from '../sidecar/identity/ca-source.ts';
import { httpRequest, startServer, startTestSidecar, waitFor, type TestServer, type TestSidecar } from '../sidecar/testing/harness.ts';

const TTL_MS = 4000;
const RUN_MS = 14_000;
const WORKERS = 12;

let ca: TestCa;
let app: TestServer;
let idA: CaIdentitySource;
let idB: CaIdentitySource;
let a: TestSidecar;
let b: TestSidecar;

before(async () => {
  ca = await startTestCa({ caOptions: { rootOverlapMs: 60_000 } });
  app = await startServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/slow-stream') {
      // 6 s of a chunk every 100 ms: open across several renewals on both sides.
      res.writeHead(200, { 'content-type': 'text/plain' });
      let n = 0;
      const tick = setInterval(() => {
        res.write(`chunk ${n}\n`);
        if (++n === 60) {
          clearInterval(tick);
          res.end();
        }
      }, 100);
      return;
    }
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      // A little think time keeps requests in flight while contexts are swapped.
      setTimeout(() => res.end(JSON.stringify({ url, bytes })), Math.floor(Math.random() * 15));
    });
  });
  idB = new CaIdentitySource({ client: ca.client('default', 'api'), ttlMs: TTL_MS });
  idA = new CaIdentitySource({ client: ca.client('default', 'web'), ttlMs: TTL_MS });
  b = await startTestSidecar({ service: 'b', appPort: app.port }, {}, undefined, { identity: idB });
  a = await startTestSidecar(
    { service: 'a', appPort: 9 },
    { b: [{ address: `127.0.0.1:${b.sidecar.inboundPort}`, pod: 'b-1', identity: 'spiffe://cluster.local/ns/default/sa/api' }] },
    undefined,
    { identity: idA },
  );
});

after(async () => {
  await a.close();
  await b.close();
  idA.close();
  idB.close();
  await app.close();
  await ca.close();
});

function streamOnce(): Promise<{ status: number; chunks: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: a.sidecar.outboundPort, path: '/slow-stream', headers: { host: 'b' }, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, chunks: text.split('\n').filter((l) => l !== '').length }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

void describe('certificate rotation under load', () => {
  void it('renews many times and rotates the root without failing a single request', async (t) => {
    const clientSerials = new Set<string>();
    const clientRoots = new Set<string>();
    b.sidecar.inboundTlsServer?.on('secureConnection', (socket: TLSSocket) => {
      const cert = socket.getPeerX509Certificate();
      if (cert !== undefined) clientSerials.add(cert.serialNumber);
      const chain = socket.getPeerCertificate(true);
      if (chain.issuerCertificate !== undefined) clientRoots.add(chain.issuerCertificate.fingerprint256);
    });
    const serverSerials = new Set<string>();
    const tlsB = b.sidecar.tls;
    assert.ok(tlsB);
    serverSerials.add(tlsB.identity.serialNumber);
    tlsB.onChange(() => serverSerials.add(tlsB.identity.serialNumber));

    let ok = 0;
    const failures: string[] = [];
    const deadline = Date.now() + RUN_MS;
    const worker = async (w: number): Promise<void> => {
      for (let i = 0; Date.now() < deadline; i++) {
        const post = i % 3 === 0;
        try {
          const r = await httpRequest(a.sidecar.outboundPort, {
            method: post ? 'POST' : 'GET',
            path: `/w${w}/${i}`,
            headers: { host: 'b' },
            ...(post ? { body: Buffer.alloc(16 * 1024, 'p') } : {}),
          });
          if (r.status === 200) ok++;
          else failures.push(`${r.status} ${r.body.slice(0, 300)}`);
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const stream = streamOnce();
    const load = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));

    // Root rotation in the middle: new certificates chain to the new root; the old root stays
    // trusted until every certificate it signed has been replaced, then it is retired.
    await new Promise((r) => setTimeout(r, 3000));
    const oldRoot = ca.ca.trustBundle().roots.find((r) => r.signing);
    assert.ok(oldRoot);
    const newRoot = await ca.ca.rotateRoot();
    const onNewRoot = (id: CaIdentitySource): boolean => {
      const pem = id.certificate?.rootCertPem;
      return pem !== undefined && new X509Certificate(pem).fingerprint256 === new X509Certificate(newRoot.certPem).fingerprint256;
    };
    await waitFor(() => (onNewRoot(idA) && onNewRoot(idB) ? true : undefined), 'both sidecars on the new root', 8000);
    // Connections made with old-root certificates drain within one more renewal.
    await new Promise((r) => setTimeout(r, TTL_MS / 2 + 500));
    await ca.ca.retireRoot(oldRoot.fingerprint);

    await load;
    const streamed = await stream;

    t.diagnostic(
      `${ok} requests ok, ${failures.length} failed; renewals a=${idA.renewals} b=${idB.renewals}; client serials seen by b: ${clientSerials.size}; b's serving serials: ${serverSerials.size}; a opened ${a.sidecar.outboundPool?.opened} connections`,
    );
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${ok + failures.length} requests failed`);
    assert.ok(ok > 500, `only ${ok} requests completed`);
    assert.equal(streamed.status, 200);
    assert.equal(streamed.chunks, 60, 'the long response survived every renewal');
    assert.ok(idA.renewals >= 6, `client sidecar renewed ${idA.renewals} times`);
    assert.ok(idB.renewals >= 6, `server sidecar renewed ${idB.renewals} times`);
    assert.ok(clientSerials.size >= 5, `the inbound side saw ${clientSerials.size} distinct client certificates`);
    assert.ok(serverSerials.size >= 5, `the inbound side served with ${serverSerials.size} distinct certificates`);
    assert.equal(clientRoots.size, 2, 'client certificates of both roots were seen');
    assert.equal(tlsB.identity.trustBundlePem.length, 1, 'the retired root left the bundle');
  });
});
