import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { clientCertificateAuthenticator } from '../authn/client-cert.ts';
import type { Authenticator } from '../authn/authenticator.ts';
import { kubernetesTokenAuthenticator } from '../authn/kubernetes-token.ts';
import { CaClient, type TrustBundleUpdate } from '../../../common/ca/client.ts';
import { CaError, isCaError } from '../../../common/ca/errors.ts';
import { x509 } from '../../../common/ca/x509.ts';
import { CertificateServiceClient } from '../../../common/ca/proto.ts';
import { issuedByOneOf, pollUntil, startTestCa, TEST_TRUST_DOMAIN, type TestCa } from '../testing.ts';
import { ERROR_CODE_METADATA_KEY } from './status.ts';

/** Asserts the CaError code, the gRPC status underneath and the trailer. */
async function failsWith(promise: Promise<unknown>, code: string, status: grpc.status): Promise<CaError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(isCaError(caught), `expected a CaError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  const cause = caught.cause as grpc.ServiceError;
  assert.equal(cause.code, status, `gRPC status ${grpc.status[cause.code]}`);
  assert.equal(cause.metadata.get(ERROR_CODE_METADATA_KEY)[0], code);
  assert.ok(cause.details.startsWith(`${code}: `), cause.details);
  return caught;
}

/** CreateCertificate with any request body, through a plain generated stub. */
function rawCreate(t: TestCa, token: string, request: { csr: string; validity_duration: string }): Promise<unknown> {
  const stub = new CertificateServiceClient(
    t.server.address,
    grpc.credentials.createSsl(Buffer.from(t.ca.trustBundle().pem), null, null, { checkServerIdentity: () => undefined }),
    { 'grpc.ssl_target_name_override': 'localhost' },
  ) as unknown as grpc.Client & {
    CreateCertificate(r: object, m: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: unknown) => void): void;
  };
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    stub.CreateCertificate(request, metadata, (err, res) => {
      stub.close();
      if (err) reject(new CaError('CA_UNAVAILABLE', err.details, { cause: err }));
      else resolve(res);
    });
  }).catch((err: CaError) => {
    const cause = err.cause as grpc.ServiceError;
    const code = cause.metadata.get(ERROR_CODE_METADATA_KEY)[0];
    throw new CaError(code as 'CA_UNAVAILABLE', cause.details, { cause });
  });
}

async function closedPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

void describe('CA gRPC server over TLS', () => {
  let t: TestCa;
  before(async () => {
    t = await startTestCa();
  });
  after(async () => {
    await t.close();
  });

  void it('issues a certificate for the token’s identity, served under the control plane identity', async () => {
    const cert = await t.client('default', 'web').requestCertificate({ ttlMs: 60_000 });
    assert.equal(cert.spiffeId, 'spiffe://cluster.local/ns/default/sa/web');
    assert.ok(issuedByOneOf(cert.certChainPem, [t.ca.trustBundle().pem]));
    assert.equal(cert.rootCertPem, t.ca.trustBundle().roots[0]!.certPem);
    assert.ok(cert.privateKeyPem.startsWith('-----BEGIN PRIVATE KEY-----'));
    assert.ok(Math.abs(cert.notAfter.getTime() - (Date.now() + 60_000)) < 2_000);
    assert.equal(t.server.serverSpiffeId, 'spiffe://cluster.local/ns/tracemesh-system/sa/tracemesh-controlplane');
  });

  void it('answers AUTH_FAILED / UNAUTHENTICATED for a bad or missing token', async () => {
    const bad = new CaClient({
      address: t.server.address,
      transport: { kind: 'tls', rootCertsPem: t.ca.trustBundle().pem, serverSpiffeId: t.server.serverSpiffeId! },
      token: 'not-a-known-token-at-all',
    });
    await failsWith(bad.requestCertificate(), 'AUTH_FAILED', grpc.status.UNAUTHENTICATED);
    await failsWith(bad.getTrustBundle(), 'AUTH_FAILED', grpc.status.UNAUTHENTICATED);
    bad.close();
    const none = new CaClient({
      address: t.server.address,
      transport: { kind: 'tls', rootCertsPem: t.ca.trustBundle().pem, serverSpiffeId: t.server.serverSpiffeId! },
    });
    await failsWith(none.requestCertificate(), 'AUTH_FAILED', grpc.status.UNAUTHENTICATED);
    none.close();
  });

  void it('answers CSR_INVALID / INVALID_ARGUMENT for garbage and RSA CSRs', async () => {
    const token = t.token('default', 'web');
    await failsWith(rawCreate(t, token, { csr: 'garbage', validity_duration: '0' }), 'CSR_INVALID', grpc.status.INVALID_ARGUMENT);
    const rsa = (await crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    )) as import('../../../common/ca/keys.ts').CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys: rsa, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } });
    const err = await failsWith(
      rawCreate(t, token, { csr: csr.toString('pem'), validity_duration: '0' }),
      'CSR_INVALID',
      grpc.status.INVALID_ARGUMENT,
    );
    assert.match(err.message, /P-256/);
  });

  void it('answers IDENTITY_MISMATCH / PERMISSION_DENIED for a CSR naming another workload', async () => {
    await failsWith(
      t.client('default', 'web').requestCertificate({ spiffeId: 'spiffe://cluster.local/ns/payments/sa/ledger' }),
      'IDENTITY_MISMATCH',
      grpc.status.PERMISSION_DENIED,
    );
    const own = await t.client('payments', 'ledger').requestCertificate({ spiffeId: 'spiffe://cluster.local/ns/payments/sa/ledger' });
    assert.equal(own.spiffeId, 'spiffe://cluster.local/ns/payments/sa/ledger');
  });

  void it('answers VALIDITY_INVALID for lifetimes beyond the maximum or negative', async () => {
    await failsWith(
      t.client('default', 'web').requestCertificate({ ttlMs: 365 * 24 * 3_600_000 }),
      'VALIDITY_INVALID',
      grpc.status.INVALID_ARGUMENT,
    );
    const { csrPem } = await import('../../../common/ca/client.ts').then((m) => m.createCsr());
    await failsWith(rawCreate(t, t.token('default', 'web'), { csr: csrPem, validity_duration: '-5' }), 'VALIDITY_INVALID', grpc.status.INVALID_ARGUMENT);
  });

  void it('serves the trust bundle and pushes rotations to watchers', async () => {
    const client = t.client('default', 'api');
    const first = await client.getTrustBundle();
    assert.equal(first.trustDomain, TEST_TRUST_DOMAIN);
    assert.deepEqual(first.rootCertsPem, t.ca.trustBundle().roots.map((r) => r.certPem));

    const seen: TrustBundleUpdate[] = [];
    const watch = client.watchTrustBundle((b) => seen.push(b));
    await pollUntil('initial bundle', () => (seen.length >= 1 ? true : undefined));
    assert.equal(seen[0]!.version, first.version);
    const newRoot = await t.ca.rotateRoot({ overlapMs: 3_600_000 });
    const pushed = await pollUntil('rotated bundle', () => seen.find((b) => b.rootCertsPem.length === 2));
    assert.equal(pushed.rootCertsPem[0], newRoot.certPem);
    assert.equal(pushed.version, first.version + 1);
    watch.close();
    watch.close();

    const renewed = await client.requestCertificate();
    assert.ok(issuedByOneOf(renewed.certChainPem, [newRoot.certPem]), 'new certificates chain to the new root');
  });

  void it('refuses to talk to a server with another identity', async () => {
    const client = new CaClient({
      address: t.server.address,
      transport: { kind: 'tls', rootCertsPem: t.ca.trustBundle().pem, serverSpiffeId: 'spiffe://cluster.local/ns/evil/sa/ca' },
      token: t.token('default', 'web'),
      timeoutMs: 2_000,
    });
    await assert.rejects(client.requestCertificate(), (err: unknown) => isCaError(err, 'CA_UNAVAILABLE'));
    client.close();
  });
});

void describe('CA gRPC server error mapping', () => {
  void it('maps AUTH_UNAVAILABLE and CA_NOT_READY to UNAVAILABLE, unexpected errors to INTERNAL', async () => {
    const kube = kubernetesTokenAuthenticator({
      trustDomain: TEST_TRUST_DOMAIN,
      apiServerUrl: `http://127.0.0.1:${await closedPort()}`,
      credentials: 'x',
    });
    const t = await startTestCa({ extraAuthenticators: [kube] });
    const stranger = new CaClient({
      address: t.server.address,
      transport: { kind: 'tls', rootCertsPem: t.ca.trustBundle().pem, serverSpiffeId: t.server.serverSpiffeId! },
      token: 'a-kubernetes-jwt-we-cannot-check',
    });
    await failsWith(stranger.requestCertificate(), 'AUTH_UNAVAILABLE', grpc.status.UNAVAILABLE);
    stranger.close();
    t.ca.close();
    await failsWith(t.client('default', 'web').requestCertificate(), 'CA_NOT_READY', grpc.status.UNAVAILABLE);
    await t.close();

    const broken: Authenticator = {
      name: 'broken',
      authenticate: () => Promise.reject(new TypeError('secret internal detail')),
    };
    const t2 = await startTestCa({ server: { authenticators: [broken] } });
    const err = await failsWith(t2.client('default', 'web').requestCertificate(), 'CA_INTERNAL', grpc.status.INTERNAL);
    assert.doesNotMatch(err.message, /secret internal detail/);
    await t2.close();
  });
});

void describe('CA gRPC server modes', () => {
  void it('serves plaintext for local development', async () => {
    const t = await startTestCa({ server: { transport: { kind: 'plaintext' } } });
    assert.equal(t.server.serverSpiffeId, undefined);
    const cert = await t.client('default', 'web', { kind: 'plaintext' }).requestCertificate();
    assert.equal(cert.spiffeId, 'spiffe://cluster.local/ns/default/sa/web');
    await t.close();
  });

  void it('renews over mTLS with the current certificate instead of a token', async () => {
    const t = await startTestCa({ extraAuthenticators: [clientCertificateAuthenticator(TEST_TRUST_DOMAIN)] });
    const first = await t.client('payments', 'ledger').requestCertificate();
    const mtls = new CaClient({
      address: t.server.address,
      transport: {
        kind: 'tls',
        rootCertsPem: t.ca.trustBundle().pem,
        serverSpiffeId: t.server.serverSpiffeId!,
        clientCertificate: { certChainPem: first.certChainPem, privateKeyPem: first.privateKeyPem },
      },
    });
    const renewed = await mtls.requestCertificate();
    assert.equal(renewed.spiffeId, first.spiffeId);
    assert.notEqual(renewed.serialNumber, first.serialNumber);
    await failsWith(
      mtls.requestCertificate({ spiffeId: 'spiffe://cluster.local/ns/default/sa/web' }),
      'IDENTITY_MISMATCH',
      grpc.status.PERMISSION_DENIED,
    );
    mtls.close();
    await t.close();
  });

  void it('moves its own serving certificate to the new root when the old one is retired', async () => {
    const t = await startTestCa();
    const oldRoot = t.ca.trustBundle().roots[0]!;
    const newRoot = await t.ca.rotateRoot({ overlapMs: 3_600_000 });
    await t.ca.retireRoot(oldRoot.fingerprint);
    const onlyNew = new CaClient({
      address: t.server.address,
      transport: { kind: 'tls', rootCertsPem: newRoot.certPem, serverSpiffeId: t.server.serverSpiffeId! },
      token: t.token('default', 'web'),
      timeoutMs: 1_000,
    });
    const cert = await pollUntil('a handshake with a client that trusts only the new root', async () => {
      try {
        return await onlyNew.requestCertificate();
      } catch {
        return undefined;
      }
    });
    assert.ok(issuedByOneOf(cert.certChainPem, [newRoot.certPem]));
    onlyNew.close();
    await t.close();
  });

  void it('closes promptly with an open watch stream, and twice', async () => {
    const t = await startTestCa();
    const seen: TrustBundleUpdate[] = [];
    const watch = t.client('default', 'web').watchTrustBundle((b) => seen.push(b));
    await pollUntil('bundle', () => (seen.length > 0 ? true : undefined));
    const started = Date.now();
    await Promise.all([t.server.close(), t.server.close()]);
    assert.ok(Date.now() - started < 4_000, 'no wait for the shutdown grace period');
    watch.close();
    await t.close();
  });

  void it('serves a certificate whose SANs fit the loopback address', async () => {
    const t = await startTestCa();
    const serving = await new Promise<X509Certificate>((resolve, reject) => {
      const tls = import('node:tls');
      void tls.then(({ connect }) => {
        const [host, port] = t.server.address.split(':') as [string, string];
        const s = connect({ host, port: Number(port), ca: t.ca.trustBundle().pem, ALPNProtocols: ['h2'] }, () => {
          const cert = s.getPeerX509Certificate();
          s.destroy();
          if (cert) resolve(cert);
          else reject(new Error('no peer certificate'));
        });
        s.on('error', reject);
      });
    });
    assert.ok(serving.checkIP('127.0.0.1'));
    assert.ok(serving.checkHost('localhost'));
    assert.match(serving.subjectAltName ?? '', /URI:spiffe:\/\/cluster\.local\/ns\/tracemesh-system\/sa\/tracemesh-controlplane/);
    await t.close();
  });
});
