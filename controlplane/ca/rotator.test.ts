import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { WorkloadCertificate } from '../../common/ca/client.ts';
import { CA_ERROR, CaError } from '../../common/ca/errors.ts';
import { CertificateRotator } from '../../common/ca/rotator.ts';
import { issuedByOneOf, pollUntil, startTestCa, type TestCa } from './testing.ts';

void describe('CertificateRotator', () => {
  let t: TestCa;
  before(async () => {
    t = await startTestCa();
  });
  after(async () => {
    await t.close();
  });

  void it('renews a 3-second certificate several times, each one valid when delivered', async () => {
    const client = t.client('default', 'web');
    const delivered: { cert: WorkloadCertificate; at: number }[] = [];
    const rotator = new CertificateRotator({
      issue: () => client.requestCertificate({ ttlMs: 3_000 }),
      onCertificate: (cert) => delivered.push({ cert, at: Date.now() }),
    });
    rotator.start();
    rotator.start();
    await pollUntil('four certificates', () => (delivered.length >= 4 ? true : undefined), 20_000);
    rotator.close();
    rotator.close();

    const serials = new Set(delivered.map((d) => d.cert.serialNumber));
    assert.equal(serials.size, delivered.length, 'a new certificate each time');
    assert.equal(new Set(delivered.map((d) => d.cert.privateKeyPem)).size, delivered.length, 'a new key each time');
    for (const [i, { cert, at }] of delivered.entries()) {
      assert.ok(cert.notAfter.getTime() > at, `certificate ${i} is not expired on delivery`);
      assert.ok(issuedByOneOf(cert.certChainPem, [t.ca.trustBundle().pem]), `certificate ${i} verifies against the root`);
      assert.equal(new X509Certificate(cert.certChainPem).subjectAltName, 'URI:spiffe://cluster.local/ns/default/sa/web');
      const next = delivered[i + 1];
      // Renewal happens around half of the 3s lifetime (±10% jitter), well before expiry.
      if (next) assert.ok(next.at < cert.notAfter.getTime(), `certificate ${i + 1} arrived before ${i} expired`);
    }
    assert.equal(rotator.renewals, delivered.length);
    assert.equal(rotator.current, delivered[delivered.length - 1]!.cert);
  });

  void it('retries failures with backoff and reports each one', async () => {
    const client = t.client('default', 'api');
    let calls = 0;
    const errors: number[] = [];
    const got: WorkloadCertificate[] = [];
    const rotator = new CertificateRotator({
      issue: () => (++calls <= 2 ? Promise.reject(new CaError(CA_ERROR.unavailable, 'CA down')) : client.requestCertificate()),
      onCertificate: (cert) => got.push(cert),
      onError: (_err, attempt) => errors.push(attempt),
      initialBackoffMs: 50,
    });
    rotator.start();
    await pollUntil('a certificate after two failures', () => (got.length === 1 ? true : undefined), 10_000);
    rotator.close();
    assert.deepEqual(errors, [1, 2]);
    assert.equal(calls, 3);
  });

  void it('drops a result that arrives after close() and survives a throwing callback', async () => {
    let release: (() => void) | undefined;
    let delivered = 0;
    const client = t.client('payments', 'ledger');
    const rotator = new CertificateRotator({
      issue: async () => {
        const cert = await client.requestCertificate({ ttlMs: 2_000 });
        if (delivered >= 2) await new Promise<void>((resolve) => (release = resolve));
        return cert;
      },
      onCertificate: () => {
        delivered += 1;
        throw new Error('consumer bug');
      },
    });
    rotator.start();
    await pollUntil('an in-flight third request', () => release, 10_000);
    rotator.close();
    release!();
    await new Promise((r) => setImmediate(r));
    assert.equal(delivered, 2, 'nothing delivered after close, rotation went on after the callback threw');
  });
});
