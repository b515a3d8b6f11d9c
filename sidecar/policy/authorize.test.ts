import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createAuthorizer, describeRule, type RequestFacts, type Workload } from './authorize.ts';
import type { AuthorizationPolicy, AuthorizationPolicySpec, Rule } from '../../common/policy/resources.ts';

function policy(name: string, spec: AuthorizationPolicySpec, namespace = 'shop', creationTimestamp?: string): AuthorizationPolicy {
  return {
    apiVersion: 'security.tracemesh.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: creationTimestamp === undefined ? { name, namespace } : { name, namespace, creationTimestamp },
    spec,
  };
}

const checkout: Workload = { namespace: 'shop', labels: { app: 'checkout', version: 'v1' } };
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';

function facts(over: Partial<RequestFacts> = {}): RequestFacts {
  return { sourcePrincipal: FRONTEND, sourceIp: '10.0.0.5', method: 'GET', path: '/', host: 'checkout', port: 8080, headers: {}, ...over };
}

const allowAll: AuthorizationPolicySpec = { action: 'ALLOW', rules: [{}] };
const denyAll: AuthorizationPolicySpec = { action: 'DENY', rules: [{}] };
/** A one-rule policy; `decide` answers whether that rule matches the request. */
function ruleMatcher(rule: Rule, namespace = 'shop') {
  const a = createAuthorizer([policy('p', { action: 'ALLOW', rules: [rule] }, namespace)], checkout);
  return (over: Partial<RequestFacts> = {}) => a.decide(facts(over)).allowed;
}

void describe('createAuthorizer: evaluation order', () => {
  void it('allows when no policy applies, and says so', () => {
    const d = createAuthorizer([], checkout).decide(facts());
    assert.deepEqual(d, { allowed: true, action: 'NONE', policy: undefined, reason: 'no ALLOW or DENY policy applies to this workload' });
  });

  void it('a matching DENY wins over a matching ALLOW', () => {
    const a = createAuthorizer([policy('allow-all', allowAll), policy('deny-delete', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] })], checkout);
    assert.deepEqual(a.decide(facts({ method: 'DELETE' })), {
      allowed: false,
      action: 'DENY',
      policy: 'shop/deny-delete',
      ruleIndex: 0,
      reason: 'denied by policy shop/deny-delete (rule 0): method DELETE',
    });
    assert.equal(a.decide(facts({ method: 'GET' })).action, 'ALLOW');
    assert.equal(a.decide(facts({ method: 'GET' })).policy, 'shop/allow-all');
  });

  void it('only DENY policies, none matching: allowed', () => {
    const d = createAuthorizer([policy('deny-delete', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] })], checkout).decide(facts());
    assert.equal(d.allowed, true);
    assert.equal(d.action, 'NONE');
    assert.equal(d.policy, undefined);
    assert.match(d.reason, /no DENY policy matched \(checked: shop\/deny-delete\) and no ALLOW policy applies/);
  });

  void it('ALLOW policies apply but none matches: denied, naming what was checked', () => {
    const a = createAuthorizer(
      [
        policy('only-post', { rules: [{ to: [{ operation: { methods: ['POST'] } }] }] }),
        policy('only-admin', { rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] }, 'tracemesh-system'),
      ],
      checkout,
    );
    assert.deepEqual(a.decide(facts()), {
      allowed: false,
      action: 'NONE',
      policy: undefined,
      reason: 'no ALLOW policy matched (checked: tracemesh-system/only-admin, shop/only-post)',
    });
  });

  void it('spec: {} is allow-nothing: it denies every request unless another ALLOW matches', () => {
    const nothing = policy('allow-nothing', {});
    assert.equal(createAuthorizer([nothing], checkout).decide(facts()).allowed, false);
    assert.equal(createAuthorizer([nothing], checkout).decide(facts({ sourcePrincipal: undefined, method: 'OPTIONS' })).allowed, false);
    const both = createAuthorizer([nothing, policy('get', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] })], checkout);
    assert.equal(both.decide(facts()).allowed, true);
    assert.equal(both.decide(facts({ method: 'POST' })).allowed, false);
  });

  void it('an ALLOW policy with an empty rules list also matches nothing', () => {
    assert.equal(createAuthorizer([policy('empty', { action: 'ALLOW', rules: [] })], checkout).decide(facts()).allowed, false);
  });

  void it('rules: [{}] matches every request: deny-all and allow-all', () => {
    assert.equal(createAuthorizer([policy('deny-all', denyAll)], checkout).decide(facts()).allowed, false);
    assert.equal(createAuthorizer([policy('deny-all', denyAll), policy('allow-all', allowAll)], checkout).decide(facts()).allowed, false);
    assert.equal(createAuthorizer([policy('allow-all', allowAll)], checkout).decide(facts({ sourcePrincipal: undefined })).allowed, true);
    assert.equal(describeRule({}), 'every request');
  });

  void it('a DENY policy without rules never denies', () => {
    assert.equal(createAuthorizer([policy('deny-none', { action: 'DENY' })], checkout).decide(facts()).allowed, true);
  });

  void it('AUDIT never changes the decision and reports the first matching audit rule', () => {
    const audit = policy('audit-admin', { action: 'AUDIT', rules: [{ to: [{ operation: { paths: ['/x'] } }] }, { to: [{ operation: { paths: ['/admin/*'] } }] }] });
    const onlyAudit = createAuthorizer([audit], checkout);
    assert.deepEqual(onlyAudit.decide(facts({ path: '/admin/users' })), {
      allowed: true,
      action: 'NONE',
      policy: undefined,
      reason: 'no ALLOW or DENY policy applies to this workload',
      audit: { policy: 'shop/audit-admin', ruleIndex: 1 },
    });
    assert.equal(onlyAudit.decide(facts({ path: '/public' })).audit, undefined);
    const withDeny = createAuthorizer([audit, policy('deny-all', denyAll)], checkout).decide(facts({ path: '/admin/users' }));
    assert.equal(withDeny.allowed, false);
    assert.equal(withDeny.policy, 'shop/deny-all');
    assert.deepEqual(withDeny.audit, { policy: 'shop/audit-admin', ruleIndex: 1 });
    // An AUDIT policy is not an ALLOW policy: it does not switch on deny-by-default.
    assert.equal(createAuthorizer([audit], checkout).decide(facts({ path: '/other' })).allowed, true);
  });

  void it('reports the matching rule index and, across policies, the oldest policy first', () => {
    const newer = policy('a-newer', { rules: [{ to: [{ operation: { methods: ['POST'] } }] }, { to: [{ operation: { methods: ['GET'] } }] }] }, 'shop', '2025-02-01T00:00:00Z');
    const older = policy('z-older', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }, 'shop', '2025-01-01T00:00:00Z');
    const d = createAuthorizer([newer, older], checkout).decide(facts());
    assert.equal(d.policy, 'shop/z-older');
    const onlyNewer = createAuthorizer([newer], checkout).decide(facts());
    assert.equal(onlyNewer.ruleIndex, 1);
    assert.equal(onlyNewer.reason, 'allowed by policy shop/a-newer (rule 1): method GET');
    // Without timestamps, alphabetical by name.
    const ab = createAuthorizer([policy('b', allowAll), policy('a', allowAll)], checkout).decide(facts());
    assert.equal(ab.policy, 'shop/a');
  });

  void it('lists the applicable policies by action', () => {
    const a = createAuthorizer(
      [policy('d', denyAll), policy('x', allowAll), policy('au', { action: 'AUDIT', rules: [{}] }), policy('elsewhere', allowAll, 'other'), policy('mesh', allowAll, 'tracemesh-system')],
      checkout,
    );
    assert.deepEqual(a.applicable, { allow: ['tracemesh-system/mesh', 'shop/x'], deny: ['shop/d'], audit: ['shop/au'] });
  });
});

void describe('createAuthorizer: workload selection', () => {
  const deny = (selector: AuthorizationPolicySpec['selector'], namespace = 'shop') =>
    policy('deny', selector === undefined ? denyAll : { ...denyAll, selector }, namespace);
  const denied = (p: AuthorizationPolicy, w: Workload = checkout, opts = {}) => !createAuthorizer([p], w, opts).decide(facts()).allowed;

  void it('no selector, or an empty one, selects every workload in the namespace', () => {
    assert.equal(denied(deny(undefined)), true);
    assert.equal(denied(deny({})), true);
    assert.equal(denied(deny({ matchLabels: {} })), true);
  });

  void it('matchLabels must all be on the workload; extra workload labels do not matter', () => {
    assert.equal(denied(deny({ matchLabels: { app: 'checkout' } })), true);
    assert.equal(denied(deny({ matchLabels: { app: 'checkout', version: 'v1' } })), true);
    assert.equal(denied(deny({ matchLabels: { app: 'checkout', version: 'v2' } })), false);
    assert.equal(denied(deny({ matchLabels: { app: 'cart' } })), false);
    assert.equal(denied(deny({ matchLabels: { tier: 'backend' } })), false);
    // Inherited object properties are not labels.
    assert.equal(denied(deny({ matchLabels: { toString: 'x' } })), false);
  });

  void it('a policy in another namespace does not apply', () => {
    assert.equal(denied(deny(undefined, 'other')), false);
  });

  void it('root-namespace policies apply mesh-wide, selectors matched in every namespace', () => {
    assert.equal(denied(deny(undefined, 'tracemesh-system')), true);
    assert.equal(denied(deny({ matchLabels: { app: 'checkout' } }, 'tracemesh-system')), true);
    assert.equal(denied(deny({ matchLabels: { app: 'cart' } }, 'tracemesh-system')), false);
    assert.equal(denied(deny(undefined, 'tracemesh-system'), { namespace: 'tracemesh-system', labels: {} }), true);
  });

  void it('the root namespace is configurable, like Istio\'s meshConfig.rootNamespace', () => {
    assert.equal(denied(deny(undefined, 'istio-system'), checkout, { rootNamespace: 'istio-system' }), true);
    assert.equal(denied(deny(undefined, 'tracemesh-system'), checkout, { rootNamespace: 'istio-system' }), false);
  });
});

void describe('createAuthorizer: sources', () => {
  void it('principals: exact, prefix, suffix and presence, without the spiffe:// prefix', () => {
    const m = (p: string) => ruleMatcher({ from: [{ source: { principals: [p] } }] });
    assert.equal(m('cluster.local/ns/shop/sa/frontend')(), true);
    assert.equal(m('cluster.local/ns/shop/sa/front')(), false);
    assert.equal(m('cluster.local/ns/shop/*')(), true);
    assert.equal(m('cluster.local/ns/other/*')(), false);
    assert.equal(m('*/sa/frontend')(), true);
    assert.equal(m('*/sa/backend')(), false);
    assert.equal(m('*')(), true);
    // A `*` in the middle is literal, as in Istio.
    assert.equal(m('cluster.local/ns/*/sa/frontend')(), false);
    // Facts may carry the identity without the scheme too.
    assert.equal(m('cluster.local/ns/shop/sa/frontend')({ sourcePrincipal: 'cluster.local/ns/shop/sa/frontend' }), true);
  });

  void it('identity matches fail for plaintext; their not-forms pass', () => {
    const plaintext = { sourcePrincipal: undefined };
    assert.equal(ruleMatcher({ from: [{ source: { principals: ['*'] } }] })(plaintext), false);
    assert.equal(ruleMatcher({ from: [{ source: { namespaces: ['*'] } }] })(plaintext), false);
    assert.equal(ruleMatcher({ from: [{ source: { serviceAccounts: ['frontend'] } }] })(plaintext), false);
    assert.equal(ruleMatcher({ from: [{ source: { notPrincipals: ['*'] } }] })(plaintext), true);
    assert.equal(ruleMatcher({ from: [{ source: { notPrincipals: ['*'] } }] })(), false);
    assert.equal(ruleMatcher({ from: [{ source: { notNamespaces: ['shop'] } }] })(plaintext), true);
    assert.equal(ruleMatcher({ from: [{ source: { principals: ['*'] } }] })({ sourcePrincipal: '' }), false);
  });

  void it('namespaces: exact, prefix, suffix, presence and a * anywhere; notNamespaces', () => {
    const m = (ns: string[], not?: string[]) => ruleMatcher({ from: [{ source: not === undefined ? { namespaces: ns } : { namespaces: ns, notNamespaces: not } }] })();
    assert.equal(m(['shop']), true);
    assert.equal(m(['sh*']), true);
    assert.equal(m(['*op']), true);
    assert.equal(m(['s*p']), true);
    assert.equal(m(['*']), true);
    assert.equal(m(['other', 'shop']), true);
    assert.equal(m(['shopping']), false);
    assert.equal(m(['sh*'], ['shop']), false);
    assert.equal(ruleMatcher({ from: [{ source: { notNamespaces: ['other'] } }] })(), true);
    // The namespace comes from the identity, not from anything the client can set.
    assert.equal(ruleMatcher({ from: [{ source: { namespaces: ['shop'] } }] })({ sourcePrincipal: 'spiffe://cluster.local/ns/evil/sa/shop', headers: { namespace: 'shop' } }), false);
  });

  void it('serviceAccounts: bare names are in the policy namespace; ns/sa names any namespace', () => {
    assert.equal(ruleMatcher({ from: [{ source: { serviceAccounts: ['frontend'] } }] })(), true);
    assert.equal(ruleMatcher({ from: [{ source: { serviceAccounts: ['frontend'] } }] }, 'tracemesh-system')(), false);
    assert.equal(ruleMatcher({ from: [{ source: { serviceAccounts: ['shop/frontend'] } }] }, 'tracemesh-system')(), true);
    assert.equal(ruleMatcher({ from: [{ source: { serviceAccounts: ['other/frontend'] } }] })(), false);
    assert.equal(ruleMatcher({ from: [{ source: { notServiceAccounts: ['frontend'] } }] })(), false);
    assert.equal(ruleMatcher({ from: [{ source: { notServiceAccounts: ['admin'] } }] })(), true);
  });

  void it('ipBlocks: single addresses, CIDRs, IPv6, IPv4-mapped peers; notIpBlocks', () => {
    const m = (blocks: string[]) => ruleMatcher({ from: [{ source: { ipBlocks: blocks } }] });
    assert.equal(m(['10.0.0.5'])(), true);
    assert.equal(m(['10.0.0.6'])(), false);
    assert.equal(m(['10.0.0.0/8'])(), true);
    assert.equal(m(['10.0.0.1/8'])(), true);
    assert.equal(m(['192.168.0.0/16'])(), false);
    assert.equal(m(['10.0.0.0/8'])({ sourceIp: '::ffff:10.1.2.3' }), true);
    assert.equal(m(['2001:db8::/32'])({ sourceIp: '2001:db8::7' }), true);
    assert.equal(m(['2001:db8::/32'])(), false);
    assert.equal(m(['10.0.0.0/8'])({ sourceIp: 'not-an-ip' }), false);
    assert.equal(ruleMatcher({ from: [{ source: { notIpBlocks: ['10.0.0.0/8'] } }] })(), false);
    assert.equal(ruleMatcher({ from: [{ source: { ipBlocks: ['10.0.0.0/8'], notIpBlocks: ['10.0.0.5'] } }] })(), false);
  });

  void it('within a source every field must match; sources are alternatives', () => {
    const both = ruleMatcher({ from: [{ source: { namespaces: ['shop'], ipBlocks: ['192.168.0.0/16'] } }] });
    assert.equal(both(), false);
    assert.equal(both({ sourceIp: '192.168.1.1' }), true);
    const either = ruleMatcher({ from: [{ source: { namespaces: ['other'] } }, { source: { ipBlocks: ['10.0.0.0/8'] } }] });
    assert.equal(either(), true);
    assert.equal(either({ sourceIp: '192.168.1.1' }), false);
  });
});

void describe('createAuthorizer: operations', () => {
  const op = (operation: NonNullable<Rule['to']>[number]['operation']) => ruleMatcher({ to: [{ operation }] });

  void it('methods: upper-cased on both sides; wildcards; notMethods', () => {
    assert.equal(op({ methods: ['GET', 'HEAD'] })(), true);
    assert.equal(op({ methods: ['get'] })(), true);
    assert.equal(op({ methods: ['GET'] })({ method: 'get' }), true);
    assert.equal(op({ methods: ['POST'] })(), false);
    assert.equal(op({ methods: ['P*'] })({ method: 'PUT' }), true);
    assert.equal(op({ notMethods: ['GET'] })(), false);
    assert.equal(op({ notMethods: ['DELETE'] })(), true);
  });

  void it('paths: exact, prefix, suffix, presence; the query never counts', () => {
    assert.equal(op({ paths: ['/cart'] })({ path: '/cart' }), true);
    assert.equal(op({ paths: ['/cart'] })({ path: '/cart/' }), false);
    assert.equal(op({ paths: ['/cart'] })({ path: '/cart?x=1' }), true);
    assert.equal(op({ paths: ['/api/*'] })({ path: '/api/v1/items' }), true);
    assert.equal(op({ paths: ['/api/*'] })({ path: '/api' }), false);
    assert.equal(op({ paths: ['*.json'] })({ path: '/a/b.json' }), true);
    assert.equal(op({ paths: ['*'] })({ path: '/anything' }), true);
    assert.equal(op({ notPaths: ['/healthz'] })({ path: '/healthz' }), false);
    assert.equal(op({ paths: ['/api/*'], notPaths: ['/api/admin/*'] })({ path: '/api/admin/x' }), false);
  });

  void it('paths: templates {*} (one segment) and {**} (the rest)', () => {
    const one = op({ paths: ['/users/{*}/cart'] });
    assert.equal(one({ path: '/users/42/cart' }), true);
    assert.equal(one({ path: '/users//cart' }), false);
    assert.equal(one({ path: '/users/4/2/cart' }), false);
    const rest = op({ paths: ['/files/{**}'] });
    assert.equal(rest({ path: '/files/a/b/c.txt' }), true);
    assert.equal(rest({ path: '/files/' }), true);
    assert.equal(rest({ path: '/filesystem' }), false);
    const mixed = op({ paths: ['/exact', '/api/{*}/items/{**}'] });
    assert.equal(mixed({ path: '/api/v1/items/9' }), true);
    assert.equal(mixed({ path: '/exact' }), true);
  });

  void it('paths are normalized first, so encodings and dot segments cannot dodge a DENY', () => {
    const a = createAuthorizer([policy('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin/*', '/admin'] } }] }] })], checkout);
    for (const path of ['/admin', '/admin/users', '//admin/users', '/public/../admin/users', '/%61dmin/users', '/ADMIN/../admin/x', '\\admin\\users', '/./admin', '/admin/./x']) {
      assert.equal(a.decide(facts({ path })).allowed, false, path);
    }
    assert.equal(a.decide(facts({ path: '/administrator' })).allowed, true);
    // %2F stays encoded by default; DECODE_AND_MERGE_SLASHES decodes it.
    assert.equal(a.decide(facts({ path: '/admin%2Fusers' })).allowed, true);
    const strict = createAuthorizer([policy('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin/*'] } }] }] })], checkout, { pathNormalization: 'DECODE_AND_MERGE_SLASHES' });
    assert.equal(strict.decide(facts({ path: '/admin%2Fusers' })).allowed, false);
    const none = createAuthorizer([policy('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin/*'] } }] }] })], checkout, { pathNormalization: 'NONE' });
    assert.equal(none.decide(facts({ path: '//admin/x' })).allowed, true);
  });

  void it('an encoded NUL in the path is never authorized', () => {
    const d = createAuthorizer([policy('allow-all-paths', { rules: [{ to: [{ operation: { paths: ['*'] } }] }] })], checkout).decide(facts({ path: '/a%00b' }));
    assert.equal(d.allowed, false);
    assert.match(d.reason, /encoded NUL/);
  });

  void it('hosts: case-insensitive, compared with the port, wildcards at either end', () => {
    assert.equal(op({ hosts: ['checkout'] })({ host: 'CHECKOUT' }), true);
    assert.equal(op({ hosts: ['checkout'] })({ host: 'checkout:8080' }), false);
    assert.equal(op({ hosts: ['checkout', 'checkout:*'] })({ host: 'checkout:8080' }), true);
    assert.equal(op({ hosts: ['*.svc.cluster.local'] })({ host: 'checkout.shop.svc.cluster.local' }), true);
    assert.equal(op({ hosts: ['Checkout.*'] })({ host: 'checkout.shop' }), true);
    assert.equal(op({ notHosts: ['evil.com'] })({ host: 'EVIL.com' }), false);
  });

  void it('ports: the destination port, exact; notPorts', () => {
    assert.equal(op({ ports: ['8080'] })(), true);
    assert.equal(op({ ports: ['80', '443'] })(), false);
    assert.equal(op({ notPorts: ['8080'] })(), false);
    assert.equal(op({ notPorts: ['9090'] })(), true);
  });

  void it('within an operation every field must match; operations are alternatives', () => {
    const both = op({ methods: ['DELETE'], paths: ['/admin/*'] });
    assert.equal(both({ method: 'DELETE', path: '/admin/x' }), true);
    assert.equal(both({ method: 'DELETE', path: '/cart' }), false);
    assert.equal(both({ method: 'GET', path: '/admin/x' }), false);
    const either = ruleMatcher({ to: [{ operation: { methods: ['DELETE'] } }, { operation: { paths: ['/admin/*'] } }] });
    assert.equal(either({ method: 'GET', path: '/admin/x' }), true);
    assert.equal(either({ method: 'DELETE', path: '/cart' }), true);
    assert.equal(either({ method: 'GET', path: '/cart' }), false);
  });
});

void describe('createAuthorizer: when conditions', () => {
  const when = (key: string, values?: string[], notValues?: string[]) => {
    const c = { key, ...(values === undefined ? {} : { values }), ...(notValues === undefined ? {} : { notValues }) };
    return ruleMatcher({ when: [c] });
  };

  void it('request.headers[...]: exact, prefix, suffix; header names are case-insensitive', () => {
    assert.equal(when('request.headers[X-User]', ['alice'])({ headers: { 'x-user': 'alice' } }), true);
    assert.equal(when('request.headers[x-user]', ['ali*'])({ headers: { 'x-user': 'alice' } }), true);
    assert.equal(when('request.headers[x-user]', ['*ice'])({ headers: { 'x-user': 'alice' } }), true);
    assert.equal(when('request.headers[x-user]', ['bob'])({ headers: { 'x-user': 'alice' } }), false);
    // Header values are case-sensitive.
    assert.equal(when('request.headers[x-user]', ['Alice'])({ headers: { 'x-user': 'alice' } }), false);
  });

  void it('request.headers[...] with * is a presence test, true even for an empty value', () => {
    const present = when('request.headers[x-debug]', ['*']);
    assert.equal(present({ headers: { 'x-debug': '' } }), true);
    assert.equal(present({ headers: { 'x-debug': '1' } }), true);
    assert.equal(present({ headers: {} }), false);
  });

  void it('a missing header fails values and passes notValues', () => {
    assert.equal(when('request.headers[x-user]', ['alice'])(), false);
    assert.equal(when('request.headers[x-user]', undefined, ['mallory'])(), true);
    assert.equal(when('request.headers[x-user]', undefined, ['mallory'])({ headers: { 'x-user': 'mallory' } }), false);
    assert.equal(when('request.headers[x-user]', ['*'], ['mallory'])({ headers: { 'x-user': 'alice' } }), true);
  });

  void it('repeated header values are joined with "," as Envoy does', () => {
    assert.equal(when('request.headers[x-group]', ['a,b'])({ headers: { 'x-group': ['a', 'b'] } }), true);
    assert.equal(when('request.headers[x-group]', ['a*'])({ headers: { 'x-group': ['a', 'b'] } }), true);
  });

  void it('source.ip, source.principal, source.namespace, source.serviceAccount, destination.port', () => {
    assert.equal(when('source.ip', ['10.0.0.0/8'])(), true);
    assert.equal(when('source.ip', undefined, ['10.0.0.0/8'])(), false);
    assert.equal(when('source.principal', ['cluster.local/ns/shop/*'])(), true);
    assert.equal(when('source.principal', ['*'])({ sourcePrincipal: undefined }), false);
    assert.equal(when('source.namespace', ['shop'])(), true);
    assert.equal(when('source.namespace', undefined, ['shop'])(), false);
    assert.equal(when('source.serviceAccount', ['shop/frontend'])(), true);
    assert.equal(when('destination.port', ['8080'])(), true);
    assert.equal(when('destination.port', ['9090'])(), false);
  });

  void it('every condition must hold, together with from and to', () => {
    const m = ruleMatcher({
      from: [{ source: { namespaces: ['shop'] } }],
      to: [{ operation: { methods: ['GET'] } }],
      when: [
        { key: 'request.headers[x-user]', values: ['alice'] },
        { key: 'destination.port', values: ['8080'] },
      ],
    });
    assert.equal(m({ headers: { 'x-user': 'alice' } }), true);
    assert.equal(m({ headers: { 'x-user': 'alice' }, port: 9090 }), false);
    assert.equal(m({ headers: { 'x-user': 'alice' }, method: 'POST' }), false);
    assert.equal(m({ headers: { 'x-user': 'alice' }, sourcePrincipal: 'spiffe://cluster.local/ns/other/sa/frontend' }), false);
    assert.equal(m({}), false);
  });

  void it('an unknown key in a hand-built policy makes its rule never match', () => {
    assert.equal(when('request.auth.claims[iss]', ['x'])(), false);
    const deny = createAuthorizer([policy('d', { action: 'DENY', rules: [{ when: [{ key: 'connection.sni', values: ['x'] }] }] })], checkout);
    assert.equal(deny.decide(facts()).allowed, true);
  });
});

void describe('createAuthorizer: robustness', () => {
  void it('never throws on odd facts', () => {
    const a = createAuthorizer(
      [
        policy('p', {
          rules: [
            {
              from: [{ source: { principals: ['*'], namespaces: ['s*'], ipBlocks: ['10.0.0.0/8'] } }],
              to: [{ operation: { hosts: ['*'], paths: ['/{*}'], methods: ['*'], ports: ['1'] } }],
              when: [{ key: 'request.headers[h]', values: ['*'] }],
            },
          ],
        }),
      ],
      checkout,
    );
    for (const f of [
      facts({ sourcePrincipal: 'spiffe://', sourceIp: '', method: '', path: '', host: '', port: -1 }),
      facts({ sourcePrincipal: 'no-scheme', sourceIp: '999.1.1.1', path: '%', headers: { h: [] } }),
      facts({ sourcePrincipal: 'spiffe://td/ns/', path: '?', host: 'ÄÖ' }),
    ]) {
      assert.equal(typeof a.decide(f).allowed, 'boolean');
    }
  });

  void it('returns the same frozen decision object for the same outcome (no per-request allocation)', () => {
    const a = createAuthorizer([policy('allow-get', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] })], checkout);
    const first = a.decide(facts());
    assert.equal(a.decide(facts({ path: '/other' })), first);
    assert.equal(Object.isFrozen(first), true);
  });
});

void describe('describeRule', () => {
  void it('summarizes sources, operations and conditions', () => {
    assert.equal(
      describeRule({
        from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }, { source: { notIpBlocks: ['10.0.0.0/8', '::1'] } }],
        to: [{ operation: { methods: ['DELETE'], paths: ['/admin/*'] } }],
        when: [{ key: 'request.headers[x-user]', notValues: ['bob'] }],
      }),
      '(principal cluster.local/ns/shop/sa/frontend) or (not source ip in [10.0.0.0/8, ::1]), method DELETE, path /admin/*, not request.headers[x-user] bob',
    );
  });

  void it('keeps long descriptions bounded', () => {
    const long = describeRule({ to: [{ operation: { paths: Array.from({ length: 100 }, (_, i) => `/path/number/${i}`) } }] });
    assert.ok(long.length <= 300);
    assert.ok(long.endsWith('…'));
  });
});
