// AuthorizationPolicy and PeerAuthentication CRDs through the real client-node informers and
// the API fixture: the first list (items without kind, as the API server lists them), watch
// events, a malformed object reported by name and skipped with the last good version kept,
// deletes, and a relist after 410 Gone.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, type Logger } from '../../../common/logger.ts';
import type { PolicySet } from '../../../common/policy/load.ts';
import { pollUntil } from '../../ca/testing.ts';
import { KubeApiFixture, KUBE_POLICY_TYPES as T } from '../../testing/kube-api.ts';
import { KubernetesPolicies, POLICY_PATHS } from './policies.ts';

const warnings: string[] = [];
const logger: Logger = createLogger({}, 'warn', (line) => warnings.push(line));

const denyDelete = (methods: string[] = ['DELETE']): Record<string, unknown> => ({
  metadata: { name: 'deny-delete', namespace: 'shop', uid: '1f0c6f7e-0000-4000-8000-000000000001', generation: 1, creationTimestamp: '2026-12-01T10:00:00Z' },
  spec: { selector: { matchLabels: { app: 'payments' } }, action: 'DENY', rules: [{ to: [{ operation: { methods } }] }] },
});
const peerAuth = (name: string, mode: string, namespace = 'shop'): Record<string, unknown> => ({
  metadata: { name, namespace, creationTimestamp: '2026-12-01T10:00:00Z' },
  spec: { mtls: { mode } },
});

const names = (set: PolicySet): string[] => [
  ...set.authorizationPolicies.map((p) => `AuthorizationPolicy ${p.metadata.namespace}/${p.metadata.name}`),
  ...set.peerAuthentications.map((p) => `PeerAuthentication ${p.metadata.namespace}/${p.metadata.name} ${p.spec.mtls?.mode ?? ''}`),
];

void describe('policies from their CRDs (KubernetesPolicies)', () => {
  let fixture: KubeApiFixture;
  let policies: KubernetesPolicies;
  const seen: PolicySet[] = [];

  before(async () => {
    fixture = await KubeApiFixture.start();
    fixture.apply(T.authorizationPolicies, denyDelete());
    fixture.apply(T.peerAuthentications, peerAuth('strict', 'STRICT'));
    policies = new KubernetesPolicies({ kubeConfig: fixture.kubeConfig(), logger });
    policies.subscribe((s) => seen.push(s));
    policies.start();
    await policies.synced();
  });
  after(async () => {
    await policies.close();
    await fixture.close();
  });

  void it('lists both kinds, validated with the policy files’ schemas', () => {
    assert.deepEqual(names(policies.current()), ['AuthorizationPolicy shop/deny-delete', 'PeerAuthentication shop/strict STRICT']);
    const ap = policies.current().authorizationPolicies[0]!;
    assert.equal(ap.apiVersion, 'security.tracemesh.io/v1');
    assert.equal(ap.spec.action, 'DENY');
    assert.equal(ap.metadata.creationTimestamp, '2026-12-01T10:00:00Z');
    assert.deepEqual(policies.informerStatus().map((i) => i.path).sort(), [POLICY_PATHS.authorizationPolicies, POLICY_PATHS.peerAuthentications].sort());
    assert.ok(seen.length >= 1, 'subscribers hear the first set');
  });

  void it('follows watch events', async () => {
    fixture.apply(T.peerAuthentications, peerAuth('legacy', 'DISABLE', 'legacy'));
    await pollUntil('the new PeerAuthentication', () => (names(policies.current()).includes('PeerAuthentication legacy/legacy DISABLE') ? true : undefined));
    fixture.apply(T.authorizationPolicies, denyDelete(['DELETE', 'PUT']));
    await pollUntil('the changed AuthorizationPolicy', () => {
      const methods = policies.current().authorizationPolicies[0]?.spec.rules?.[0]?.to?.[0]?.operation.methods;
      return methods?.length === 2 ? true : undefined;
    });
  });

  void it('reports a malformed object by name and skips it; a malformed update keeps the last good version', async () => {
    fixture.apply(T.peerAuthentications, peerAuth('broken', 'SOMETIMES'));
    fixture.apply(T.authorizationPolicies, denyDelete(['DELETE', 7 as unknown as string]));
    const rejected = await pollUntil('both rejections', () => (policies.rejected().length >= 2 ? [...policies.rejected()] : undefined));
    assert.deepEqual(rejected.map((r) => r.object).sort(), ['AuthorizationPolicy shop/deny-delete', 'PeerAuthentication shop/broken']);
    assert.match(rejected.find((r) => r.object === 'PeerAuthentication shop/broken')!.reason, /spec\.mtls\.mode/);
    assert.match(rejected.find((r) => r.object === 'AuthorizationPolicy shop/deny-delete')!.reason, /methods/);
    assert.ok(warnings.some((w) => w.includes('malformed policy skipped') && w.includes('shop/broken')));
    // The broken PeerAuthentication is not there; the DENY policy keeps its last good version.
    const current = names(policies.current());
    assert.ok(!current.some((n) => n.includes('broken')), current.join(', '));
    assert.deepEqual(policies.current().authorizationPolicies[0]!.spec.rules?.[0]?.to?.[0]?.operation.methods, ['DELETE', 'PUT']);
    // A valid PeerAuthentication applied after them still flows.
    fixture.apply(T.peerAuthentications, peerAuth('later', 'PERMISSIVE', 'other'));
    await pollUntil('a later valid object', () => (names(policies.current()).includes('PeerAuthentication other/later PERMISSIVE') ? true : undefined));
  });

  void it('drops deleted objects, and relists after 410 Gone', async () => {
    fixture.delete(T.peerAuthentications, 'legacy', 'legacy');
    await pollUntil('the delete', () => (names(policies.current()).some((n) => n.startsWith('PeerAuthentication legacy/')) ? undefined : true));
    const lists = fixture.lists(T.peerAuthentications);
    fixture.compact();
    fixture.expireWatches();
    fixture.apply(T.peerAuthentications, peerAuth('after-gone', 'STRICT', 'other'));
    await pollUntil('a relist and the object made meanwhile', () =>
      fixture.lists(T.peerAuthentications) > lists && names(policies.current()).includes('PeerAuthentication other/after-gone STRICT') ? true : undefined, 20_000);
    assert.deepEqual(fixture.unexpected, []);
  });
});
