import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isCaError } from '../../../common/ca/errors.ts';
import { createCertificateAuthority } from './authority.ts';
import { createCsr } from '../../../common/ca/client.ts';
import { formatSpiffeId, parseSpiffeId, spiffeIdFromCertificate, tryParseSpiffeId } from '../../../common/spiffe.ts';

void describe('SPIFFE IDs', () => {
  void it('parses and formats a workload identity', () => {
    const id = parseSpiffeId('spiffe://cluster.local/ns/default/sa/web');
    assert.deepEqual(id, { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'web' });
    assert.equal(formatSpiffeId(id), 'spiffe://cluster.local/ns/default/sa/web');
    assert.ok(tryParseSpiffeId('spiffe://my_td-1.example/ns/kube-system/sa/coredns.v2'));
  });

  void it('rejects everything that is not exactly spiffe://td/ns/<ns>/sa/<sa>', () => {
    const bad = [
      '',
      'https://cluster.local/ns/default/sa/web',
      'spiffe://Cluster.local/ns/default/sa/web',
      'spiffe://cluster.local:8443/ns/default/sa/web',
      'spiffe://user@cluster.local/ns/default/sa/web',
      'spiffe://cluster.local/ns/default/sa/web/',
      'spiffe://cluster.local/ns/default/sa/web?x=1',
      'spiffe://cluster.local/ns/default/sa/web#f',
      'spiffe://cluster.local/ns//sa/web',
      'spiffe://cluster.local/ns/Default/sa/web',
      'spiffe://cluster.local/ns/default/sa/we%62',
      'spiffe://cluster.local/sa/web/ns/default',
      'spiffe://cluster.local/ns/-default/sa/web',
      'spiffe://cluster..local/ns/default/sa/web',
      'spiffe:///ns/default/sa/web',
      `spiffe://cluster.local/ns/${'a'.repeat(64)}/sa/web`,
    ];
    for (const uri of bad) {
      assert.equal(tryParseSpiffeId(uri), undefined, uri);
      assert.throws(() => parseSpiffeId(uri), (err) => isCaError(err, 'SPIFFE_ID_INVALID'), uri);
    }
    assert.throws(
      () => formatSpiffeId({ trustDomain: 'cluster.local', namespace: 'a/b', serviceAccount: 'web' }),
      (err) => isCaError(err, 'SPIFFE_ID_INVALID'),
    );
  });

  void it('round-trips any valid identity (property)', () => {
    const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/);
    const td = fc.stringMatching(/^[a-z0-9]([a-z0-9_-]{0,10})(\.[a-z0-9_-]{1,10}){0,3}$/);
    fc.assert(
      fc.property(td, label, label, (trustDomain, namespace, serviceAccount) => {
        const id = { trustDomain, namespace, serviceAccount };
        assert.deepEqual(parseSpiffeId(formatSpiffeId(id)), id);
      }),
    );
  });

  void it('never throws anything but SPIFFE_ID_INVALID on arbitrary input (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        try {
          parseSpiffeId(`spiffe://${s}`);
        } catch (err) {
          assert.ok(isCaError(err, 'SPIFFE_ID_INVALID'));
        }
      }),
    );
  });

  void it('reads the identity out of an issued certificate', async () => {
    const ca = await createCertificateAuthority({ trustDomain: 'cluster.local' });
    const identity = { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'web' };
    const { csrPem } = await createCsr();
    const issued = await ca.signCsr({ csrPem, identity });
    assert.deepEqual(spiffeIdFromCertificate(issued.certChainPem[0]!), identity);
    // A root has no URI SAN: not a workload certificate.
    assert.throws(() => spiffeIdFromCertificate(issued.certChainPem[1]!), (err) => isCaError(err, 'SPIFFE_ID_INVALID'));
    ca.close();
  });
});
