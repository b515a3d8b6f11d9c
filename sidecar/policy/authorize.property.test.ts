// Property tests of the authorizer: invariants from Istio's evaluation order, and a
// differential check against a naive reference evaluator written directly from Istio's rules
// (it rebuilds Istio's regexes on the full SPIFFE URI instead of sharing the compiled matchers).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BlockList, isIP } from 'node:net';
import fc from 'fast-check';
import { createAuthorizer, type PolicyDecision, type RequestFacts, type Workload } from './authorize.ts';
import { normalizePath } from './normalize.ts';
import type { AuthorizationAction, AuthorizationPolicy, Condition, Operation, Rule, Source } from '../../common/policy/resources.ts';

const ROOT = 'tracemesh-system';
const NAMESPACES = ['shop', 'web', 'other', ROOT];
const SERVICE_ACCOUNTS = ['frontend', 'admin', 'shop'];

// --- arbitraries -----------------------------------------------------------------------------

const sub = <T>(values: readonly T[]) => fc.subarray([...values], { minLength: 1, maxLength: 3 });
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 2 });
/** Mostly absent: keeps sources and operations to a field or two, so rules match often enough. */
const rarely = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

/** Drops undefined fields, as YAML parsing would never produce them. */
function defined<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

const principalPatterns = ['*', 'cluster.local/ns/shop/sa/frontend', 'cluster.local/ns/shop/*', '*/sa/admin', 'cluster.local/ns/web/sa/shop', 'cluster.local/ns/*/sa/frontend'];
const namespacePatterns = ['shop', 'sh*', '*b', '*', 'o*r', 'web', ROOT];
const serviceAccountPatterns = ['frontend', 'shop/admin', 'web/frontend', 'admin'];
const ipPatterns = ['10.0.0.0/8', '10.1.2.3', '192.168.0.0/16', '::1', '2001:db8::/32'];
const methodPatterns = ['GET', 'POST', 'DELETE', '*', 'P*', '*T', 'get'];
const pathPatterns = ['/admin', '/admin/*', '*.json', '/api/*', '*', '/public/*', '/'];
const hostPatterns = ['checkout', 'checkout:8080', '*.svc', 'CHECKOUT*', '*'];
const portPatterns = ['80', '8080', '9090'];
const headerPatterns = ['alice', 'a*', '*', '*ce', 'bob'];

const sourceArb: fc.Arbitrary<Source> = fc
  .record({
    principals: rarely(sub(principalPatterns)),
    notPrincipals: rarely(sub(principalPatterns)),
    namespaces: rarely(sub(namespacePatterns)),
    notNamespaces: rarely(sub(namespacePatterns)),
    serviceAccounts: rarely(sub(serviceAccountPatterns)),
    notServiceAccounts: rarely(sub(serviceAccountPatterns)),
    ipBlocks: rarely(sub(ipPatterns)),
    notIpBlocks: rarely(sub(ipPatterns)),
  })
  .map(defined);

const operationArb: fc.Arbitrary<Operation> = fc
  .record({
    methods: rarely(sub(methodPatterns)),
    notMethods: rarely(sub(methodPatterns)),
    paths: rarely(sub(pathPatterns)),
    notPaths: rarely(sub(pathPatterns)),
    hosts: rarely(sub(hostPatterns)),
    notHosts: rarely(sub(hostPatterns)),
    ports: rarely(sub(portPatterns)),
    notPorts: rarely(sub(portPatterns)),
  })
  .map(defined);

const conditionArb: fc.Arbitrary<Condition> = fc.oneof(
  fc.record({ key: fc.constantFrom('request.headers[X-User]', 'request.headers[x-user]'), values: maybe(sub(headerPatterns)), notValues: maybe(sub(headerPatterns)) }),
  fc.record({ key: fc.constant('source.ip'), values: maybe(sub(ipPatterns)), notValues: maybe(sub(ipPatterns)) }),
  fc.record({ key: fc.constant('source.namespace'), values: maybe(sub(namespacePatterns)), notValues: maybe(sub(namespacePatterns)) }),
  fc.record({ key: fc.constant('source.principal'), values: maybe(sub(principalPatterns)), notValues: maybe(sub(principalPatterns)) }),
  fc.record({ key: fc.constant('source.serviceAccount'), values: maybe(sub(serviceAccountPatterns)), notValues: maybe(sub(serviceAccountPatterns)) }),
  fc.record({ key: fc.constant('destination.port'), values: maybe(sub(portPatterns)), notValues: maybe(sub(portPatterns)) }),
).map((c) => ({ ...defined(c), key: c.key }));

const ruleArb: fc.Arbitrary<Rule> = fc
  .record({
    from: maybe(fc.array(sourceArb.map((source) => ({ source })), { minLength: 1, maxLength: 2 })),
    to: maybe(fc.array(operationArb.map((operation) => ({ operation })), { minLength: 1, maxLength: 2 })),
    when: rarely(fc.array(conditionArb, { minLength: 1, maxLength: 2 })),
  })
  .map(defined);

const labelsArb = fc.record({ app: fc.constantFrom('checkout', 'cart'), version: fc.constantFrom('v1', 'v2') }, { requiredKeys: [] });
const selectorLabelsArb = fc.oneof(fc.record({ app: fc.constantFrom('checkout', 'cart') }), labelsArb);

function policyArb(namespaces: readonly string[] = NAMESPACES, actions: readonly (AuthorizationAction | undefined)[] = ['ALLOW', 'DENY', 'AUDIT', undefined]): fc.Arbitrary<AuthorizationPolicy> {
  return fc
    .record({
      name: fc.stringMatching(/^[a-z]{1,6}$/),
      namespace: fc.constantFrom(...namespaces),
      // Selectors mostly of one label, so that they select the workload about half the time.
      action: fc.constantFrom(...actions),
      selector: maybe(selectorLabelsArb.map((matchLabels) => ({ matchLabels }))),
      rules: fc.oneof({ weight: 1, arbitrary: fc.constant(undefined) }, { weight: 5, arbitrary: fc.array(ruleArb, { maxLength: 3 }) }),
    })
    .map(({ name, namespace, ...spec }) => ({
      apiVersion: 'security.tracemesh.io/v1',
      kind: 'AuthorizationPolicy' as const,
      metadata: { name, namespace },
      spec: defined(spec),
    }));
}

/** Policies with unique namespace/name, as the loader guarantees. */
const policiesArb = fc.uniqueArray(policyArb(), { maxLength: 6, selector: (p) => `${p.metadata.namespace}/${p.metadata.name}` });

const workloadArb: fc.Arbitrary<Workload> = fc.record({ namespace: fc.constantFrom('shop', 'web', ROOT), labels: fc.record({ app: fc.constantFrom('checkout', 'cart'), version: fc.constantFrom('v1', 'v2') }) });

const factsArb: fc.Arbitrary<RequestFacts> = fc.record({
  sourcePrincipal: fc.constantFrom(undefined, ...NAMESPACES.flatMap((ns) => SERVICE_ACCOUNTS.map((sa) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`))),
  sourceIp: fc.constantFrom('10.1.2.3', '10.9.9.9', '192.168.4.4', '172.16.0.1', '::1', '2001:db8::5', '::ffff:10.1.2.3'),
  method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'get'),
  path: fc.constantFrom('/', '/admin', '/admin/users', '//admin/users', '/public/../admin/x', '/api/v1/items?x=1', '/data.json', '/public/a'),
  host: fc.constantFrom('checkout', 'checkout:8080', 'CHECKOUT.shop.svc', 'cart'),
  port: fc.constantFrom(80, 8080, 9090),
  headers: fc.constantFrom({}, { 'x-user': 'alice' }, { 'x-user': 'bob' }, { 'x-user': '' }, { 'x-user': ['alice', 'bob'] }),
});

// --- the reference evaluator -----------------------------------------------------------------

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Envoy StringMatcher as Istio generates it (StringMatcherWithPrefix). */
function istioString(pattern: string, value: string, prefix = ''): boolean {
  if (pattern === '*') return value.length > 0;
  if (pattern.startsWith('*')) return value.endsWith(pattern.slice(1));
  if (pattern.endsWith('*')) return value.startsWith(prefix + pattern.slice(0, -1));
  return value === prefix + pattern;
}

function refField(values: readonly string[] | undefined, notValues: readonly string[] | undefined, test: (v: string) => boolean): boolean {
  const pos = values === undefined || values.length === 0 || values.some(test);
  const neg = notValues !== undefined && notValues.length > 0 && notValues.some(test);
  return pos && !neg;
}

function refMatchers(f: RequestFacts, policyNs: string) {
  const uri = f.sourcePrincipal; // the full URI, as Envoy's `authenticated.principal_name` sees it
  const ipBlock = (block: string) => {
    const list = new BlockList();
    const [addr, bits] = block.split('/') as [string, string | undefined];
    const fam = isIP(addr) === 4 ? 'ipv4' : 'ipv6';
    list.addSubnet(addr, bits === undefined ? (fam === 'ipv4' ? 32 : 128) : Number(bits), fam);
    const v = isIP(f.sourceIp);
    return v !== 0 && list.check(f.sourceIp, v === 4 ? 'ipv4' : 'ipv6');
  };
  return {
    principal: (p: string) => uri !== undefined && istioString(p, uri, 'spiffe://'),
    // Istio: regex `.*/ns/<value with * → .*>/.*` on the principal.
    namespace: (n: string) => uri !== undefined && new RegExp(`^.*/ns/${n.split('*').map(esc).join('.*')}/.*$`).test(uri),
    // Istio: `spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`.
    serviceAccount: (v: string) => {
      const [ns, sa] = v.includes('/') ? (v.split('/') as [string, string]) : [policyNs, v];
      return uri !== undefined && new RegExp(`^spiffe://.+/ns/${esc(ns)}/(.+/|)sa/${esc(sa)}(/.+)?$`).test(uri);
    },
    ip: ipBlock,
    port: (p: string) => Number(p) === f.port,
    method: (m: string) => istioString(m.toUpperCase(), f.method.toUpperCase()),
    path: (p: string) => istioString(p, normalizePath(f.path) ?? ''),
    host: (h: string) => istioString(h.toLowerCase(), f.host.toLowerCase()),
    header: (h: string) => {
      const raw = f.headers['x-user'];
      if (raw === undefined) return false;
      const v = typeof raw === 'string' ? raw : raw.join(',');
      return h === '*' ? true : istioString(h, v);
    },
  };
}

function refRule(rule: Rule, f: RequestFacts, policyNs: string): boolean {
  const m = refMatchers(f, policyNs);
  const sourceOk = (s: Source) =>
    refField(s.principals, s.notPrincipals, m.principal) &&
    refField(s.namespaces, s.notNamespaces, m.namespace) &&
    refField(s.serviceAccounts, s.notServiceAccounts, m.serviceAccount) &&
    refField(s.ipBlocks, s.notIpBlocks, m.ip);
  const opOk = (o: Operation) =>
    refField(o.methods, o.notMethods, m.method) && refField(o.paths, o.notPaths, m.path) && refField(o.hosts, o.notHosts, m.host) && refField(o.ports, o.notPorts, m.port);
  const condOk = (c: Condition) => {
    const test = c.key.startsWith('request.headers')
      ? m.header
      : ({ 'source.ip': m.ip, 'source.namespace': m.namespace, 'source.principal': m.principal, 'source.serviceAccount': m.serviceAccount, 'destination.port': m.port } as Record<string, (v: string) => boolean>)[c.key];
    assert.ok(test, c.key);
    // Istio's validation requires values or notValues; a condition with neither never holds here.
    if ((c.values?.length ?? 0) === 0 && (c.notValues?.length ?? 0) === 0) return false;
    return refField(c.values, c.notValues, test);
  };
  return (rule.from === undefined || rule.from.some((x) => sourceOk(x.source))) && (rule.to === undefined || rule.to.some((x) => opOk(x.operation))) && (rule.when ?? []).every(condOk);
}

function refApplies(p: AuthorizationPolicy, w: Workload): boolean {
  if (p.metadata.namespace !== w.namespace && p.metadata.namespace !== ROOT) return false;
  return Object.entries(p.spec.selector?.matchLabels ?? {}).every(([k, v]) => w.labels[k] === v);
}

function refDecide(policies: readonly AuthorizationPolicy[], w: Workload, f: RequestFacts): { allowed: boolean; action: PolicyDecision['action']; matching: Set<string> } {
  const applying = policies.filter((p) => refApplies(p, w));
  const matches = (p: AuthorizationPolicy) => (p.spec.rules ?? []).some((r) => refRule(r, f, p.metadata.namespace));
  const id = (p: AuthorizationPolicy) => `${p.metadata.namespace}/${p.metadata.name}`;
  const denies = applying.filter((p) => p.spec.action === 'DENY' && matches(p));
  if (denies.length > 0) return { allowed: false, action: 'DENY', matching: new Set(denies.map(id)) };
  const allows = applying.filter((p) => (p.spec.action ?? 'ALLOW') === 'ALLOW');
  if (allows.length === 0) return { allowed: true, action: 'NONE', matching: new Set() };
  const matched = allows.filter(matches);
  return matched.length > 0 ? { allowed: true, action: 'ALLOW', matching: new Set(matched.map(id)) } : { allowed: false, action: 'NONE', matching: new Set() };
}

// --- properties ------------------------------------------------------------------------------

const RUNS = { numRuns: 600 };

void describe('createAuthorizer properties', () => {
  void it('agrees with a naive reference evaluator of Istio\'s rules', () => {
    fc.assert(
      fc.property(policiesArb, workloadArb, fc.array(factsArb, { minLength: 1, maxLength: 8 }), (policies, workload, requests) => {
        const authorizer = createAuthorizer(policies, workload);
        for (const f of requests) {
          const got = authorizer.decide(f);
          const want = refDecide(policies, workload, f);
          assert.equal(got.allowed, want.allowed, JSON.stringify({ got, want: { ...want, matching: [...want.matching] }, f }));
          assert.equal(got.action, want.action);
          if (got.policy !== undefined) assert.ok(want.matching.has(got.policy), `${got.policy} is not a matching policy`);
          else assert.equal(want.matching.size, 0);
        }
      }),
      { numRuns: 400 },
    );
  });

  void it('a DENY policy matching everything always denies, whatever else applies', () => {
    const denyAllArb = fc.record({
      namespace: fc.constantFrom('workload', ROOT),
      selector: fc.boolean(),
    });
    fc.assert(
      fc.property(policiesArb, workloadArb, factsArb, denyAllArb, (policies, workload, f, where) => {
        const denyAll: AuthorizationPolicy = {
          apiVersion: 'security.tracemesh.io/v1',
          kind: 'AuthorizationPolicy',
          metadata: { name: 'zz-deny-all', namespace: where.namespace === 'workload' ? workload.namespace : ROOT },
          spec: { action: 'DENY', rules: [{}], ...(where.selector ? { selector: { matchLabels: { ...workload.labels } } } : {}) },
        };
        const d = createAuthorizer([...policies, denyAll], workload).decide(f);
        assert.equal(d.allowed, false);
        assert.equal(d.action, 'DENY');
      }),
      RUNS,
    );
  });

  void it('a policy in an unrelated namespace never changes a decision', () => {
    fc.assert(
      fc.property(policiesArb, workloadArb, factsArb, policyArb(['elsewhere', 'unrelated']), (policies, workload, f, extra) => {
        assert.deepEqual(createAuthorizer([...policies, extra], workload).decide(f), createAuthorizer(policies, workload).decide(f));
      }),
      RUNS,
    );
  });

  void it('AUDIT policies never change whether a request is allowed, or by which policy', () => {
    const auditArb = fc.array(policyArb(NAMESPACES, ['AUDIT']).map((p) => ({ ...p, metadata: { ...p.metadata, name: `audit-${p.metadata.name}` } })), { maxLength: 3 });
    fc.assert(
      fc.property(policiesArb, auditArb, workloadArb, factsArb, (policies, audits, workload, f) => {
        const { audit: _a, ...without } = createAuthorizer([...policies, ...audits], workload).decide(f);
        const { audit: _b, ...base } = createAuthorizer(policies, workload).decide(f);
        assert.deepEqual(without, base);
      }),
      RUNS,
    );
  });

  void it('the order policies are given in does not matter', () => {
    fc.assert(
      fc.property(policiesArb.chain((ps) => fc.tuple(fc.constant(ps), fc.shuffledSubarray(ps, { minLength: ps.length, maxLength: ps.length }))), workloadArb, factsArb, ([ps, shuffled], workload, f) => {
        assert.deepEqual(createAuthorizer(shuffled, workload).decide(f), createAuthorizer(ps, workload).decide(f));
      }),
      RUNS,
    );
  });

  void it('decisions name a policy that applies, with the matching action', () => {
    fc.assert(
      fc.property(policiesArb, workloadArb, factsArb, (policies, workload, f) => {
        const a = createAuthorizer(policies, workload);
        const d = a.decide(f);
        if (a.applicable.allow.length === 0 && a.applicable.deny.length === 0) assert.equal(d.allowed, true);
        if (d.allowed) assert.notEqual(d.action, 'DENY');
        if (d.action === 'ALLOW') assert.ok(d.policy !== undefined && a.applicable.allow.includes(d.policy));
        if (d.action === 'DENY') assert.ok(d.policy !== undefined && a.applicable.deny.includes(d.policy));
      }),
      RUNS,
    );
  });
});
