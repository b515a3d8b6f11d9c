// proxy-status against a real control plane: connected clients with per-type states.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../common/logger.ts';
import { TYPE_URL } from '../common/xds/protos.ts';
import { bootstrapTokenAuthenticator } from '../controlplane/ca/authn/bootstrap-token.ts';
import { createCertificateAuthority, type CertificateAuthority } from '../controlplane/ca/pki/authority.ts';
import { pollUntil } from '../controlplane/ca/testing.ts';
import { startControlPlane, type ControlPlane } from '../controlplane/controlplane.ts';
import { RawAdsStream } from '../controlplane/xds/testing.ts';
import { formatProxyStatus } from './proxy-status.ts';

void describe('tracemesh proxy-status', () => {
  let ca: CertificateAuthority;
  let cp: ControlPlane;
  const streams: RawAdsStream[] = [];
  before(async () => {
    ca = await createCertificateAuthority({ trustDomain: 'cluster.local' });
    cp = await startControlPlane({ ca, authenticators: [bootstrapTokenAuthenticator('cluster.local', new Map())], port: 0, transport: { kind: 'plaintext' }, registration: false, debugPort: 0, logger: silentLogger });
    cp.registry.set('test', 'shop/cart', [{ host: '127.0.0.1', port: 9, pod: 'cart-1', node: undefined, namespace: 'shop', serviceAccount: undefined, labels: {}, ready: true, serving: true, terminating: false, source: 'test' }]);
  });
  after(async () => {
    for (const s of streams) s.close();
    await cp.close();
    ca.close();
  });

  void it('shows SYNCED after an ACK, STALE before it, NOT SENT for types never asked', async () => {
    const a = new RawAdsStream(cp.address);
    const b = new RawAdsStream(cp.address);
    streams.push(a, b);
    a.send({ type_url: TYPE_URL.cluster, node: { id: 'sidecar~a.shop', user_agent_name: 'tracemesh-sidecar' } });
    const r = await a.next(TYPE_URL.cluster);
    a.send({ type_url: TYPE_URL.cluster, version_info: r.version_info, response_nonce: r.nonce });
    b.send({ type_url: TYPE_URL.cluster, node: { id: 'sidecar~b.shop', user_agent_name: 'tracemesh-sidecar' } });
    await b.next(TYPE_URL.cluster);
    await pollUntil('a synced', () => (cp.xds.status().find((c) => c.nodeId === 'sidecar~a.shop')?.types[0]?.state === 'SYNCED' ? true : undefined));
    const body = (await (await fetch(`${cp.debugUrl}/debug/syncz`)).json()) as Parameters<typeof formatProxyStatus>[0];
    const lines = formatProxyStatus(body).trimEnd().split('\n');
    assert.match(lines[0]!, /^NAME\s+CDS\s+LDS\s+EDS\s+RDS\s+POLICY\s+VERSION\s+IDENTITY\s+AGENT$/);
    assert.match(lines[1]!, /^sidecar~a\.shop\s+SYNCED\s+NOT SENT\s+NOT SENT\s+NOT SENT\s+NOT SENT\s+\S+-\d+\s+-\s+tracemesh-sidecar$/);
    assert.match(lines[2]!, /^sidecar~b\.shop\s+STALE\s+NOT SENT/);
  });
});
