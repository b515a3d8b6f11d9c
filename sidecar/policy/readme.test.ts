// The policy README's YAML examples load and decide as the README says.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parsePolicyYaml } from '../../common/policy/load.ts';
import { createAuthorizer, mtlsModeFor, type RequestFacts } from './authorize.ts';

void describe('README examples', () => {
  void it('load, and do what the README says', async () => {
    const readme = await readFile(join(import.meta.dirname, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
    assert.equal(blocks.length, 4);
    const set = parsePolicyYaml(blocks.join('---\n'), 'README.md');
    const checkout = { namespace: 'shop', labels: { app: 'checkout' } };
    const a = createAuthorizer(set.authorizationPolicies, checkout);
    const f: RequestFacts = { sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/frontend', sourceIp: '10.0.0.1', method: 'GET', path: '/cart', host: 'checkout', port: 8080, headers: {} };
    assert.equal(a.decide(f).policy, 'shop/checkout-from-frontend');
    assert.equal(a.decide({ ...f, sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/cart' }).allowed, false);
    assert.equal(a.decide({ ...f, sourcePrincipal: undefined }).allowed, false);
    assert.equal(a.decide({ ...f, method: 'DELETE', path: '/admin/users/7' }).reason, 'denied by policy shop/deny-admin-delete (rule 0): method DELETE, path /admin/*');
    assert.equal(mtlsModeFor(set.peerAuthentications, { namespace: 'legacy', labels: {} }), 'PERMISSIVE');
    assert.equal(mtlsModeFor(set.peerAuthentications, checkout), 'STRICT');
    assert.equal(mtlsModeFor(set.peerAuthentications, { namespace: 'bookinfo', labels: { app: 'ratings' } }, {}, 9090), 'DISABLE');
  });
});
