// End-to-end tests of the mesh CA over real gRPC on loopback: what crosses the wire, root
// rotation as two workloads see it, and an operator's intermediate CA.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import {
  CaClient,
  createIntermediateCertificate,
  createRootCertificate,
  type TrustBundleUpdate,
  type WorkloadCertificate,
} from '../controlplane/ca/index.ts';
import { certToPem } from '../common/ca/certs.ts';
import { exportPrivateKeyPem } from '../common/ca/keys.ts';
import { CertificateServiceClient, TrustBundleServiceClient } from '../common/ca/proto.ts';
import { issuedByOneOf, mtlsHandshake, pollUntil, startTestCa } from '../controlplane/ca/testing.ts';

/** Every byte pattern by which the workload's private key could be recognised. */
function keyFingerprints(cert: WorkloadCertificate): { name: string; bytes: Buffer }[] {
  const key = createPrivateKey(cert.privateKeyPem);
  const pkcs8 = key.export({ format: 'der', type: 'pkcs8' });
  const d = Buffer.from(key.export({ format: 'jwk' }).d!, 'base64url');
  const pemBody = cert.privateKeyPem.split('\n').filter((l) => l && !l.startsWith('-----'));
  return [
    { name: 'PKCS#8 PEM', bytes: Buffer.from(cert.privateKeyPem) },
    { name: 'PKCS#8 PEM first line', bytes: Buffer.from(pemBody[0]!) },
    { name: 'PKCS#8 DER', bytes: pkcs8 },
    { name: 'raw d', bytes: d },
    { name: 'd base64url', bytes: Buffer.from(d.toString('base64url')) },
    { name: 'd base64', bytes: Buffer.from(d.toString('base64')) },
    { name: 'd hex', bytes: Buffer.from(d.toString('hex')) },
  ];
}

/** The protobuf encoder of a method's request, to see a received message as wire bytes. */
function serializerFor(path: string): (message: object) => Buffer {
  const def = [...Object.values(CertificateServiceClient.service), ...Object.values(TrustBundleServiceClient.service)].find(
    (d) => d.path === path,
  );
  assert.ok(def, `unknown method ${path}`);
  return def.requestSerialize as (message: object) => Buffer;
}

/**
 * The capture plus the decoded body of every PEM block in it: a CSR travels as base64 text,
 * so raw key bytes could only be found after decoding.
 */
function withDecodedPem(captured: Buffer): Buffer {
  const text = captured.toString('latin1');
  const decoded: Buffer[] = [captured];
  for (const m of text.matchAll(/-----BEGIN [A-Z ]+-----((?:[A-Za-z0-9+/=\s]|\\n)+)-----END/g)) {
    decoded.push(Buffer.from(m[1]!.replace(/\\n|\s/g, ''), 'base64'));
  }
  return Buffer.concat(decoded);
}

function assertKeyAbsent(raw: Buffer, cert: WorkloadCertificate, where: string): void {
  const captured = withDecodedPem(raw);
  for (const { name, bytes } of keyFingerprints(cert)) {
    assert.equal(captured.indexOf(bytes), -1, `${name} of the workload key appears in ${where}`);
  }
  // The capture is real: the public key, which the CSR must carry, is in it.
  const spki = createPrivateKey(cert.privateKeyPem).export({ format: 'jwk' });
  const x = Buffer.from(spki.x!, 'base64url');
  assert.notEqual(captured.indexOf(x), -1, `the public key is visible in ${where}, so the capture saw the CSR`);
}

/** A TCP relay on loopback that records everything the client sends. */
async function startRecordingProxy(target: string): Promise<{ address: string; sent: () => Buffer; close: () => Promise<void> }> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    const outbound = connect(port, host);
    sockets.add(inbound).add(outbound);
    inbound.on('data', (c: Buffer) => {
      chunks.push(c);
      outbound.write(c);
    });
    outbound.on('data', (c: Buffer) => inbound.write(c));
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
    inbound.on('error', () => {});
    outbound.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    sent: () => Buffer.concat(chunks),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

void describe('the private key never reaches the control plane', () => {
  void it('is absent from every message and metadata the CA server receives (TLS)', async () => {
    const received: Buffer[] = [];
    const capture: grpc.ServerInterceptor = (method, call) =>
      new grpc.ServerInterceptingCall(call, {
        start: (next) =>
          next({
            onReceiveMetadata: (metadata, nextMetadata) => {
              received.push(Buffer.from(JSON.stringify(metadata.toJSON())));
              nextMetadata(metadata);
            },
            onReceiveMessage: (message: object, nextMessage) => {
              // The request as it was on the wire, and as the handler sees it.
              received.push(serializerFor(method.path)(message), Buffer.from(JSON.stringify(message)));
              nextMessage(message);
            },
          }),
      });
    const t = await startTestCa({ server: { interceptors: [capture] } });
    try {
      const cert = await t.client('default', 'web').requestCertificate({ spiffeId: 'spiffe://cluster.local/ns/default/sa/web' });
      assert.ok(received.length >= 2, 'the interceptor saw the call');
      assertKeyAbsent(Buffer.concat(received), cert, 'the requests the CA server received');
    } finally {
      await t.close();
    }
  });

  void it('is absent from every byte the sidecar sends to the control plane (plaintext, TCP capture)', async () => {
    const t = await startTestCa({ server: { transport: { kind: 'plaintext' } } });
    const proxy = await startRecordingProxy(t.server.address);
    const client = new CaClient({ address: proxy.address, transport: { kind: 'plaintext' }, token: t.token('default', 'web') });
    try {
      const cert = await client.requestCertificate();
      assertKeyAbsent(proxy.sent(), cert, 'the bytes sent to the CA');
    } finally {
      client.close();
      await proxy.close();
      await t.close();
    }
  });
});

void describe('root rotation as workloads see it', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  void it('old and new certificates interoperate during the overlap; after retirement only new ones do', async () => {
    const t = await startTestCa();
    cleanup.push(() => t.close());
    const webClient = t.client('default', 'web');
    const apiClient = t.client('default', 'api');
    let bundle: TrustBundleUpdate | undefined;
    const watch = apiClient.watchTrustBundle((b) => (bundle = b));
    cleanup.push(() => watch.close());
    await pollUntil('the first bundle', () => bundle);
    const trust = (): string => bundle!.rootCertsPem.join('');

    const webOld = await webClient.requestCertificate();
    const oldRoot = t.ca.trustBundle().roots[0]!;
    const newRoot = await t.ca.rotateRoot({ overlapMs: 3_600_000 });
    await pollUntil('the rotated bundle', () => (bundle!.rootCertsPem.length === 2 ? true : undefined));
    const apiNew = await apiClient.requestCertificate();
    assert.ok(issuedByOneOf(apiNew.certChainPem, [newRoot.certPem]));
    assert.ok(issuedByOneOf(webOld.certChainPem, bundle!.rootCertsPem));
    assert.equal(await mtlsHandshake(webOld, apiNew, trust()), undefined, 'old ↔ new during the overlap');

    await t.ca.retireRoot(oldRoot.fingerprint);
    await pollUntil('the bundle without the old root', () => (bundle!.rootCertsPem.length === 1 ? true : undefined));
    assert.equal(bundle!.rootCertsPem[0], newRoot.certPem);
    assert.ok(!issuedByOneOf(webOld.certChainPem, bundle!.rootCertsPem));
    assert.notEqual(await mtlsHandshake(apiNew, webOld, trust()), undefined, 'an old-root certificate is refused');

    const webNew = await webClient.requestCertificate();
    assert.equal(await mtlsHandshake(apiNew, webNew, trust()), undefined, 'renewed workloads talk again');
  });
});

void describe('operator-provided intermediate CA over gRPC', () => {
  void it('returns leaf, intermediate and root; peers verify the chain against the root alone', async () => {
    const root = await createRootCertificate({ trustDomain: 'corp.example' });
    const intermediate = await createIntermediateCertificate({
      issuer: root,
      name: 'O=corp.example, CN=mesh intermediate',
      lifetimeMs: 7 * 24 * 3_600_000,
    });
    const t = await startTestCa({
      caOptions: {
        source: {
          kind: 'provided',
          material: {
            caCertPem: certToPem(intermediate.cert),
            caKeyPem: await exportPrivateKeyPem(intermediate.privateKey),
            rootCertPem: certToPem(root.cert),
          },
        },
      },
    });
    try {
      const web = await t.client('default', 'web').requestCertificate();
      const api = await t.client('default', 'api').requestCertificate();
      assert.equal(web.rootCertPem, certToPem(root.cert));
      assert.equal((web.certChainPem.match(/BEGIN CERTIFICATE/g) ?? []).length, 2, 'leaf and intermediate');
      assert.equal(await mtlsHandshake(web, api, certToPem(root.cert)), undefined);
    } finally {
      await t.close();
    }
  });
});
