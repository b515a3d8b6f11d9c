import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../common/logger.ts';
import { makeIdentity, makeRoot, type TestRoot } from '../testing/certs.ts';
import { waitFor } from '../testing/harness.ts';
import { FileIdentitySource } from './file-source.ts';
import { describeIdentity, firstIdentity, IdentityError, StaticIdentitySource, type IdentityMaterial } from './identity.ts';
import { checkServerPeer, isVerifyErrorCode, peerSpiffeId, PeerIdentityError, verifyRejection } from './peer.ts';

const WEB = 'spiffe://cluster.local/ns/default/sa/web';
let root: TestRoot;
let other: TestRoot;
let web: IdentityMaterial;

before(async () => {
  root = await makeRoot();
  other = await makeRoot();
  web = await makeIdentity(root, WEB);
});

void describe('describeIdentity', () => {
  void it('reads the SPIFFE ID, trust domain, serial and validity of a good identity', () => {
    const id = describeIdentity({ ...web, trustBundlePem: [root.pem + other.pem] });
    assert.equal(id.spiffeId, WEB);
    assert.equal(id.trustDomain, 'cluster.local');
    assert.match(id.serialNumber, /^[0-9a-f]+$/);
    assert.ok(id.notAfter.getTime() > Date.now());
    assert.equal(id.trustBundlePem.length, 2, 'a PEM bundle is split into one root per entry');
  });

  void it('refuses material that does not fit, naming the problem', async () => {
    const otherKey = (await makeIdentity(root, WEB)).privateKeyPem;
    const cases: Array<[IdentityMaterial, RegExp]> = [
      [{ ...web, certChainPem: 'nothing' }, /holds no PEM certificate/],
      [{ ...web, privateKeyPem: otherKey }, /private key does not belong to the certificate/],
      [{ ...web, privateKeyPem: 'garbage' }, /private key cannot be read/],
      [{ ...web, trustBundlePem: [] }, /trust bundle holds no PEM certificate/],
    ];
    for (const [material, message] of cases) {
      assert.throws(() => describeIdentity(material), (err: unknown) => err instanceof IdentityError && err.code === 'IDENTITY_UNAVAILABLE' && message.test(err.message));
    }
  });
});

void describe('identity sources', () => {
  void it('firstIdentity waits for a static source and times out with the source\'s last error', async () => {
    const source = new StaticIdentitySource();
    const first = firstIdentity(source, 1000, 'hint');
    source.set(web);
    assert.equal(await first, web);
    const empty = Object.assign(new StaticIdentitySource(), { lastError: () => new Error('CA said no') });
    await assert.rejects(firstIdentity(empty, 20, 'check the CA'), /no workload certificate after 20 ms \(last error: CA said no\); check the CA/);
  });

  let dir: string;
  after(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  void it('FileIdentitySource reloads changed files and skips a half-written rotation', async () => {
    dir = await mkdtemp(join(tmpdir(), 'tracemesh-identity-'));
    const files = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), trustBundleFile: join(dir, 'ca.crt') };
    await writeFile(files.certFile, web.certChainPem);
    await writeFile(files.keyFile, web.privateKeyPem);
    await writeFile(files.trustBundleFile, root.pem);
    const source = await FileIdentitySource.open(files, silentLogger);
    try {
      const seen: IdentityMaterial[] = [];
      source.subscribe((m) => seen.push(m));
      const next = await makeIdentity(root, WEB);
      // Certificate first, key later: the mismatched pair in between must not be applied.
      await writeFile(files.certFile, next.certChainPem);
      await source.reload();
      assert.equal(seen.length, 0);
      assert.match(String(source.lastError()), /private key does not belong/);
      await writeFile(files.keyFile, next.privateKeyPem);
      await waitFor(() => (seen.length > 0 ? true : undefined), 'the new pair to be applied');
      assert.equal(describeIdentity(source.current()).serialNumber, describeIdentity(next).serialNumber);
    } finally {
      source.close();
    }
    await assert.rejects(FileIdentitySource.open({ ...files, keyFile: join(dir, 'missing.key') }, silentLogger), /--tls-key-file/);
  });
});

void describe('peer checks', () => {
  void it('names verify errors and sorts them into metric reasons', () => {
    assert.deepEqual(verifyRejection('CERT_HAS_EXPIRED'), { kind: 'expired', reason: 'certificate has expired (CERT_HAS_EXPIRED)' });
    assert.equal(verifyRejection('UNABLE_TO_VERIFY_LEAF_SIGNATURE').kind, 'untrusted');
    assert.equal(verifyRejection('SOMETHING_NEW').kind, 'untrusted');
    assert.equal(isVerifyErrorCode('SELF_SIGNED_CERT_IN_CHAIN'), true);
    assert.equal(isVerifyErrorCode('ECONNRESET'), false);
  });

  void it('accepts a SPIFFE ID of the trust domain and refuses others', async () => {
    const cert = new X509Certificate(web.certChainPem);
    assert.deepEqual(peerSpiffeId(cert, 'cluster.local'), { spiffeId: WEB });
    assert.deepEqual(peerSpiffeId(cert, 'example.org'), { kind: 'bad_identity', reason: `peer identity ${WEB} is not in trust domain example.org` });
    const raw = { raw: cert.raw } as Parameters<typeof checkServerPeer>[0];
    assert.equal(checkServerPeer(raw, 'cluster.local', WEB), WEB);
    assert.equal(checkServerPeer(raw, 'cluster.local', undefined), WEB);
    assert.throws(
      () => checkServerPeer(raw, 'cluster.local', 'spiffe://cluster.local/ns/default/sa/api'),
      (err: unknown) =>
        err instanceof PeerIdentityError &&
        err.kind === 'wrong_identity' &&
        err.message === `wrong identity: peer identity ${WEB}, expected spiffe://cluster.local/ns/default/sa/api`,
    );
  });
});
