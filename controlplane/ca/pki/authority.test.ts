import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCsr } from '../../../common/ca/client.ts';
import { isCaError } from '../../../common/ca/errors.ts';
import { issuedByOneOf, mtlsHandshake, pollUntil } from '../testing.ts';
import { createCertificateAuthority, type CertificateAuthority, type IssuedCertificate } from './authority.ts';
import { certToPem, createIntermediateCertificate, createRootCertificate, type Signer } from '../../../common/ca/certs.ts';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../../common/ca/keys.ts';
import { PROVIDED_CA_FILES, type ProvidedCaMaterial } from './provided.ts';
import type { SpiffeId } from '../../../common/spiffe.ts';
import { ROOT_FILES } from './store.ts';
import { x509 } from '../../../common/ca/x509.ts';

const TD = 'cluster.local';
const WEB: SpiffeId = { trustDomain: TD, namespace: 'default', serviceAccount: 'web' };
const API: SpiffeId = { trustDomain: TD, namespace: 'default', serviceAccount: 'api' };
const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tracemesh-ca-'));
  dirs.push(dir);
  return dir;
}
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function issue(ca: CertificateAuthority, identity: SpiffeId, ttlMs?: number): Promise<IssuedCertificate & { keyPem: string }> {
  const { csrPem, keys } = await createCsr();
  const issued = await ca.signCsr({ csrPem, identity, ...(ttlMs !== undefined ? { ttlMs } : {}) });
  return { ...issued, keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isCaError(err), `expected a CaError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

async function providedMaterial(opts: { intermediateLifetimeMs?: number } = {}): Promise<{
  root: Signer;
  intermediate: Signer;
  material: ProvidedCaMaterial;
}> {
  const root = await createRootCertificate({ trustDomain: 'example.org' });
  const intermediate = await createIntermediateCertificate({
    issuer: root,
    name: 'O=example.org, CN=tracemesh intermediate',
    lifetimeMs: opts.intermediateLifetimeMs ?? 30 * 24 * 3_600_000,
    pathLength: 0,
  });
  return {
    root,
    intermediate,
    material: {
      caCertPem: certToPem(intermediate.cert),
      caKeyPem: await exportPrivateKeyPem(intermediate.privateKey),
      // Istio's cert-chain.pem: the signing certificate, then up to the root.
      certChainPem: certToPem(intermediate.cert) + certToPem(root.cert),
      rootCertPem: certToPem(root.cert),
    },
  };
}

void describe('workload certificates', () => {
  void it('verify against the root and carry the mesh profile', async () => {
    const ca = await createCertificateAuthority({ trustDomain: TD });
    const before = Date.now();
    const issued = await issue(ca, WEB);
    assert.equal(issued.certChainPem.length, 2, 'leaf and root');
    const leaf = new X509Certificate(issued.certChainPem[0]!);
    const root = new X509Certificate(issued.certChainPem[1]!);
    assert.equal(root.toString(), new X509Certificate(ca.trustBundle().pem).toString());

    assert.ok(leaf.checkIssued(root), 'issuer name and key id match the root');
    assert.ok(leaf.verify(root.publicKey), 'signature verifies with the root key');
    assert.equal(leaf.subjectAltName, 'URI:spiffe://cluster.local/ns/default/sa/web');
    assert.equal(leaf.subject, undefined, 'subject is empty');
    assert.equal(leaf.ca, false);
    assert.deepEqual([...(leaf.keyUsage ?? [])].sort(), [EKU_SERVER_AUTH, EKU_CLIENT_AUTH].sort());

    const lifetime = leaf.validToDate.getTime() - Date.now();
    assert.ok(Math.abs(lifetime - 24 * 3_600_000) < 10_000, `24h default lifetime, got ${lifetime}ms`);
    const backdate = before - leaf.validFromDate.getTime();
    assert.ok(backdate >= 55_000 && backdate <= 65_000, `notBefore backdated ~1 minute, got ${backdate}ms`);

    const px = new x509.X509Certificate(issued.certChainPem[0]!);
    const ku = px.getExtension(x509.KeyUsagesExtension);
    assert.ok(ku?.critical);
    assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    const bc = px.getExtension(x509.BasicConstraintsExtension);
    assert.ok(bc?.critical && bc.ca === false);
    assert.ok(px.getExtension(x509.SubjectAlternativeNameExtension)?.critical, 'SAN critical with an empty subject');
    const rootSki = new x509.X509Certificate(issued.certChainPem[1]!).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    assert.equal(px.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, rootSki);
    assert.ok(px.getExtension(x509.SubjectKeyIdentifierExtension));
    assert.equal(issued.serialNumber.length, 32, '128-bit serial');
    ca.close();
  });

  void it('are accepted by real TLS peers on both sides', async () => {
    const ca = await createCertificateAuthority({ trustDomain: TD });
    const web = await issue(ca, WEB);
    const api = await issue(ca, API);
    const err = await mtlsHandshake(
      { certChainPem: web.certChainPem[0]!, privateKeyPem: web.keyPem },
      { certChainPem: api.certChainPem[0]!, privateKeyPem: api.keyPem },
      ca.trustBundle().pem,
    );
    assert.equal(err, undefined);
    ca.close();
  });

  void it('honour short and requested lifetimes, and refuse invalid ones', async () => {
    const ca = await createCertificateAuthority({ trustDomain: TD, workloadCertTtlMs: 600_000, maxWorkloadCertTtlMs: 3_600_000 });
    const short = await issue(ca, WEB, 3_000);
    const notAfter = new X509Certificate(short.certChainPem[0]!).validToDate.getTime();
    assert.ok(Math.abs(notAfter - (Date.now() + 3_000)) < 2_000, 'a 3-second certificate');
    const { csrPem } = await createCsr();
    await rejectsWith(ca.signCsr({ csrPem, identity: WEB, ttlMs: 3_600_001 }), 'VALIDITY_INVALID');
    await rejectsWith(ca.signCsr({ csrPem, identity: WEB, ttlMs: -1 }), 'VALIDITY_INVALID');
    ca.close();
  });

  void it('never outlive the signing chain', async () => {
    const { material } = await providedMaterial({ intermediateLifetimeMs: 3_600_000 });
    const ca = await createCertificateAuthority({ trustDomain: TD, source: { kind: 'provided', material } });
    const issued = await issue(ca, WEB, 2 * 3_600_000);
    const leaf = new X509Certificate(issued.certChainPem[0]!);
    const intermediate = new X509Certificate(issued.certChainPem[1]!);
    assert.ok(leaf.validToDate <= intermediate.validToDate);
    ca.close();
  });
});

void describe('CSR handling', () => {
  void it('grants the credential’s identity and ignores the CSR subject', async () => {
    const ca = await createCertificateAuthority({ trustDomain: TD });
    const keys = await generateP256KeyPair();
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=admin, O=system:masters',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: 'spiffe://cluster.local/ns/default/sa/web' },
          { type: 'dns', value: 'evil.example.com' },
        ]),
      ],
    });
    const issued = await ca.signCsr({ csrPem: csr.toString('pem'), identity: WEB });
    const leaf = new X509Certificate(issued.certChainPem[0]!);
    assert.equal(leaf.subject, undefined);
    assert.equal(leaf.subjectAltName, 'URI:spiffe://cluster.local/ns/default/sa/web', 'DNS SAN from the CSR is dropped');
    ca.close();
  });

  void it('refuses a CSR that asks for another workload’s identity', async () => {
    const ca = await createCertificateAuthority({ trustDomain: TD });
    const { csrPem } = await createCsr('spiffe://cluster.local/ns/payments/sa/ledger');
    await rejectsWith(ca.signCsr({ csrPem, identity: WEB }), 'IDENTITY_MISMATCH');
    await rejectsWith(
      ca.signCsr({ csrPem: (await createCsr()).csrPem, identity: { ...WEB, trustDomain: 'other.domain' } }),
      'IDENTITY_MISMATCH',
    );
    ca.close();
  });

  void it('refuses garbage, tampered and non-P-256 CSRs with CSR_INVALID', async () => {
    const ca = await createCertificateAuthority({ trustDomain: TD });
    await rejectsWith(ca.signCsr({ csrPem: 'hello', identity: WEB }), 'CSR_INVALID');
    await rejectsWith(ca.signCsr({ csrPem: '', identity: WEB }), 'CSR_INVALID');
    await rejectsWith(
      ca.signCsr({ csrPem: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', identity: WEB }),
      'CSR_INVALID',
    );
    await rejectsWith(ca.signCsr({ csrPem: ca.trustBundle().pem, identity: WEB }), 'CSR_INVALID');
    await rejectsWith(ca.signCsr({ csrPem: 'x'.repeat(20_000), identity: WEB }), 'CSR_INVALID');

    const rsa = (await crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    )) as import('../../../common/ca/keys.ts').CryptoKeyPair;
    const rsaCsr = await x509.Pkcs10CertificateRequestGenerator.create({
      keys: rsa,
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    });
    await rejectsWith(ca.signCsr({ csrPem: rsaCsr.toString('pem'), identity: WEB }), 'CSR_INVALID');

    const p384 = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as import('../../../common/ca/keys.ts').CryptoKeyPair;
    const p384Csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys: p384, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' } });
    await rejectsWith(ca.signCsr({ csrPem: p384Csr.toString('pem'), identity: WEB }), 'CSR_INVALID');

    // Same request, last signature byte flipped.
    const { csrPem } = await createCsr();
    const der = Buffer.from(x509.PemConverter.decodeFirst(csrPem));
    der[der.length - 1] = der[der.length - 1]! ^ 0x01;
    await rejectsWith(ca.signCsr({ csrPem: x509.PemConverter.encode(der, 'CERTIFICATE REQUEST'), identity: WEB }), 'CSR_INVALID');
    ca.close();
  });
});

void describe('intermediate (provided) CA', () => {
  void it('signs with the intermediate; the chain verifies up to the root', async () => {
    const { material, root } = await providedMaterial();
    const ca = await createCertificateAuthority({ trustDomain: TD, source: { kind: 'provided', material } });
    const issued = await issue(ca, WEB);
    assert.equal(issued.certChainPem.length, 3, 'leaf, intermediate, root');
    const [leaf, intermediate, rootCert] = issued.certChainPem.map((p) => new X509Certificate(p)) as [X509Certificate, X509Certificate, X509Certificate];
    assert.ok(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey));
    assert.ok(intermediate.checkIssued(rootCert) && intermediate.verify(rootCert.publicKey));
    assert.equal(rootCert.fingerprint256, new X509Certificate(certToPem(root.cert)).fingerprint256);
    assert.deepEqual(ca.trustBundle().roots.map((r) => r.certPem), [certToPem(root.cert)], 'the bundle holds only the root');

    // OpenSSL's own path building through a TLS handshake: leaf + intermediate against the root.
    const peer = await issue(ca, API);
    const err = await mtlsHandshake(
      { certChainPem: issued.certChainPem.slice(0, 2).join(''), privateKeyPem: issued.keyPem },
      { certChainPem: peer.certChainPem.slice(0, 2).join(''), privateKeyPem: peer.keyPem },
      ca.trustBundle().pem,
    );
    assert.equal(err, undefined);
    await rejectsWith(ca.rotateRoot(), 'CA_CONFIG_INVALID');
    ca.close();
  });

  void it('answers CA_NOT_READY once the signing certificate has expired', async () => {
    const { material } = await providedMaterial({ intermediateLifetimeMs: 2_000 });
    const ca = await createCertificateAuthority({ trustDomain: TD, source: { kind: 'provided', material } });
    const err = await pollUntil(
      'the intermediate to expire',
      async () => {
        try {
          await issue(ca, WEB);
          return undefined;
        } catch (e) {
          return e;
        }
      },
      10_000,
    );
    assert.ok(isCaError(err, 'CA_NOT_READY'), String(err));
    ca.close();
  });

  void it('loads Istio’s cacerts directory layout', async () => {
    const { material } = await providedMaterial();
    const dir = await tempDir();
    await writeFile(join(dir, PROVIDED_CA_FILES.caCert), material.caCertPem);
    await writeFile(join(dir, PROVIDED_CA_FILES.caKey), material.caKeyPem, { mode: 0o600 });
    await writeFile(join(dir, PROVIDED_CA_FILES.certChain), material.certChainPem!);
    await writeFile(join(dir, PROVIDED_CA_FILES.root), material.rootCertPem);
    const ca = await createCertificateAuthority({ trustDomain: TD, source: { kind: 'provided-dir', dir } });
    const issued = await issue(ca, WEB);
    assert.ok(issuedByOneOf(issued.certChainPem[0]!, [issued.certChainPem[1]!]));
    ca.close();
  });

  void it('refuses material that does not fit together', async () => {
    const a = await providedMaterial();
    const b = await providedMaterial();
    const provided = (material: ProvidedCaMaterial) =>
      createCertificateAuthority({ trustDomain: TD, source: { kind: 'provided', material } });
    await rejectsWith(provided({ ...a.material, caKeyPem: b.material.caKeyPem }), 'CA_CONFIG_INVALID');
    await rejectsWith(provided({ ...a.material, rootCertPem: b.material.rootCertPem, certChainPem: a.material.caCertPem }), 'CA_CONFIG_INVALID');
    await rejectsWith(provided({ ...a.material, rootCertPem: a.material.caCertPem }), 'CA_CONFIG_INVALID');
    await rejectsWith(provided({ ...a.material, caKeyPem: 'not a key' }), 'CA_CONFIG_INVALID');
    await rejectsWith(provided({ ...a.material, caCertPem: 'not a cert' }), 'CA_CONFIG_INVALID');
    // A workload certificate is not a CA.
    const ca = await createCertificateAuthority({ trustDomain: TD });
    const leaf = await issue(ca, WEB);
    await rejectsWith(
      provided({ caCertPem: leaf.certChainPem[0]!, caKeyPem: leaf.keyPem, rootCertPem: leaf.certChainPem[1]! }),
      'CA_CONFIG_INVALID',
    );
    ca.close();
  });
});

void describe('self-signed root persistence', () => {
  void it('creates the root once, with a 0600 key, and reloads it', async () => {
    const dir = await tempDir();
    const first = await createCertificateAuthority({ trustDomain: TD, source: { kind: 'self-signed', dir } });
    const root = first.trustBundle().roots[0]!;
    assert.equal((await stat(join(dir, ROOT_FILES.key))).mode & 0o777, 0o600);
    assert.equal(await readFile(join(dir, ROOT_FILES.cert), 'utf8'), root.certPem);
    const rootCert = new X509Certificate(root.certPem);
    assert.ok(rootCert.ca);
    const years = (rootCert.validToDate.getTime() - Date.now()) / (365 * 24 * 3_600_000);
    assert.ok(years > 9.9 && years < 10.1, `10-year root, got ${years}`);
    first.close();

    const second = await createCertificateAuthority({ trustDomain: TD, source: { kind: 'self-signed', dir } });
    assert.equal(second.trustBundle().roots[0]!.fingerprint, root.fingerprint);
    const issued = await issue(second, WEB);
    assert.ok(issuedByOneOf(issued.certChainPem[0]!, [root.certPem]));
    second.close();
  });

  void it('honours a configured root lifetime', async () => {
    const ca = await createCertificateAuthority({ trustDomain: TD, source: { kind: 'self-signed', rootLifetimeMs: 3_600_000 } });
    const notAfter = ca.trustBundle().roots[0]!.notAfter.getTime();
    assert.ok(Math.abs(notAfter - (Date.now() + 3_600_000)) < 5_000);
    ca.close();
  });

  void it('refuses a half-present or mismatched root', async () => {
    const dir = await tempDir();
    const ca = await createCertificateAuthority({ trustDomain: TD, source: { kind: 'self-signed', dir } });
    ca.close();
    const other = await createRootCertificate({ trustDomain: TD });
    await writeFile(join(dir, ROOT_FILES.key), await exportPrivateKeyPem(other.privateKey));
    await rejectsWith(createCertificateAuthority({ trustDomain: TD, source: { kind: 'self-signed', dir } }), 'CA_CONFIG_INVALID');
    await rm(join(dir, ROOT_FILES.key));
    await rejectsWith(createCertificateAuthority({ trustDomain: TD, source: { kind: 'self-signed', dir } }), 'CA_CONFIG_INVALID');
  });

  void it('refuses an invalid trust domain or lifetimes', async () => {
    await rejectsWith(createCertificateAuthority({ trustDomain: 'Not Valid' }), 'CA_CONFIG_INVALID');
    await rejectsWith(
      createCertificateAuthority({ trustDomain: TD, workloadCertTtlMs: 10, maxWorkloadCertTtlMs: 5 }),
      'CA_CONFIG_INVALID',
    );
  });
});

void describe('root rotation', () => {
  void it('signs with the new root while the old one stays trusted, until it is retired', async () => {
    const dir = await tempDir();
    const ca = await createCertificateAuthority({ trustDomain: TD, source: { kind: 'self-signed', dir } });
    const versions: number[] = [];
    ca.onTrustBundleChange((b) => versions.push(b.version));
    const oldRoot = ca.trustBundle().roots[0]!;
    const oldCert = await issue(ca, WEB);

    const newRoot = await ca.rotateRoot({ overlapMs: 3_600_000 });
    assert.notEqual(newRoot.fingerprint, oldRoot.fingerprint);
    const bundle = ca.trustBundle();
    assert.deepEqual(bundle.roots.map((r) => r.fingerprint), [newRoot.fingerprint, oldRoot.fingerprint]);
    assert.deepEqual(bundle.roots.map((r) => r.signing), [true, false]);
    assert.ok(bundle.roots[1]!.retireAt);
    assert.equal(bundle.pem, newRoot.certPem + oldRoot.certPem);

    const newCert = await issue(ca, WEB);
    const rootsPem = bundle.roots.map((r) => r.certPem);
    assert.ok(issuedByOneOf(newCert.certChainPem[0]!, [newRoot.certPem]), 'new certificates chain to the new root');
    assert.ok(!issuedByOneOf(newCert.certChainPem[0]!, [oldRoot.certPem]));
    assert.ok(issuedByOneOf(oldCert.certChainPem[0]!, rootsPem), 'old certificates still verify during the overlap');
    // Old and new workloads still talk during the overlap.
    assert.equal(
      await mtlsHandshake(
        { certChainPem: oldCert.certChainPem[0]!, privateKeyPem: oldCert.keyPem },
        { certChainPem: newCert.certChainPem[0]!, privateKeyPem: newCert.keyPem },
        bundle.pem,
      ),
      undefined,
    );

    // A restart during the overlap keeps both roots.
    const reloaded = await createCertificateAuthority({ trustDomain: TD, source: { kind: 'self-signed', dir } });
    assert.deepEqual(reloaded.trustBundle().roots.map((r) => r.fingerprint), [newRoot.fingerprint, oldRoot.fingerprint]);
    reloaded.close();

    await rejectsWith(ca.retireRoot(newRoot.fingerprint), 'ROOT_IN_USE');
    await rejectsWith(ca.retireRoot('00'.repeat(32)), 'ROOT_NOT_FOUND');
    await ca.retireRoot(oldRoot.fingerprint);
    const afterRetire = ca.trustBundle();
    assert.deepEqual(afterRetire.roots.map((r) => r.fingerprint), [newRoot.fingerprint]);
    assert.ok(!issuedByOneOf(oldCert.certChainPem[0]!, afterRetire.roots.map((r) => r.certPem)), 'old certificates no longer verify');
    assert.match(
      (await mtlsHandshake(
        { certChainPem: newCert.certChainPem[0]!, privateKeyPem: newCert.keyPem },
        { certChainPem: oldCert.certChainPem[0]!, privateKeyPem: oldCert.keyPem },
        afterRetire.pem,
      )) ?? '',
      /.+/,
      'a peer with an old-root certificate is refused',
    );
    await pollUntil('two bundle notifications', () => (versions.length >= 2 ? true : undefined));
    assert.deepEqual(versions, [2, 3]);

    const again = await createCertificateAuthority({ trustDomain: TD, source: { kind: 'self-signed', dir } });
    assert.deepEqual(again.trustBundle().roots.map((r) => r.fingerprint), [newRoot.fingerprint], 'retirement is persisted');
    again.close();
    ca.close();
  });

  void it('retires the old root on its own after the overlap', async () => {
    const ca = await createCertificateAuthority({ trustDomain: TD });
    const oldRoot = ca.trustBundle().roots[0]!;
    await ca.rotateRoot({ overlapMs: 300 });
    assert.equal(ca.trustBundle().roots.length, 2);
    await pollUntil('old root retired', () => (ca.trustBundle().roots.length === 1 ? true : undefined), 5_000);
    assert.ok(!ca.trustBundle().roots.some((r) => r.fingerprint === oldRoot.fingerprint));
    ca.close();
  });

  void it('keeps extra trusted roots and refuses to sign once closed', async () => {
    const extra = await createRootCertificate({ trustDomain: 'old.mesh' });
    const ca = await createCertificateAuthority({ trustDomain: TD, extraTrustedRootsPem: certToPem(extra.cert) });
    assert.equal(ca.trustBundle().roots.length, 2);
    assert.equal(ca.trustBundle().roots[1]!.certPem, certToPem(extra.cert));
    ca.close();
    ca.close();
    const { csrPem } = await createCsr();
    await rejectsWith(ca.signCsr({ csrPem, identity: WEB }), 'CA_NOT_READY');
  });
});
