import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../errors.ts';
import { parsePolicyYaml } from './load.ts';
import { authorizationPolicySchema, fieldPath, parseWith, peerAuthenticationSchema } from './resources.ts';

const head = (kind = 'AuthorizationPolicy', apiVersion = 'security.tracemesh.io/v1') => `apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata:\n  name: p\n  namespace: shop\n`;
const authz = (spec: string) => `${head()}spec:\n${spec}\n`;
const peer = (spec: string) => `${head('PeerAuthentication')}spec:\n${spec}\n`;

function rejects(yaml: string, expected: string | RegExp, file = 'policies/p.yaml'): void {
  assert.throws(
    () => parsePolicyYaml(yaml, file),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.code, 'CONFIG_INVALID');
      if (typeof expected === 'string') assert.equal(err.message, expected);
      else assert.match(err.message, expected);
      return true;
    },
  );
}

void describe('AuthorizationPolicy validation', () => {
  void it('names the file, the document and the field', () => {
    const second = `${authz('  {}')}---\n${authz('  rules:\n  - to:\n    - operation:\n        methods: DELETE')}`;
    rejects(second, 'policies/deny.yaml (document 2): spec.rules[0].to[0].operation.methods: expected array, received string', 'policies/deny.yaml');
  });

  const cases: Array<[string, string, RegExp]> = [
    ['CUSTOM action', '  action: CUSTOM\n  provider: {name: ext}\n  rules: [{}]', /spec\.action: not supported: the CUSTOM action delegates to an external authorizer.*; spec\.provider: not supported/],
    ['unknown action', '  action: allow', /spec\.action: must be ALLOW, DENY or AUDIT, got "allow"/],
    ['requestPrincipals', '  rules:\n  - from:\n    - source:\n        requestPrincipals: ["*"]', /spec\.rules\[0\]\.from\[0\]\.source\.requestPrincipals: not supported: requestPrincipals needs JWT request authentication/],
    ['notRequestPrincipals', '  rules:\n  - from:\n    - source:\n        notRequestPrincipals: ["*"]', /source\.notRequestPrincipals: not supported/],
    ['remoteIpBlocks', '  rules:\n  - from:\n    - source:\n        remoteIpBlocks: ["1.2.3.4"]', /source\.remoteIpBlocks: not supported: .*use ipBlocks/],
    ['targetRefs', '  targetRefs:\n  - kind: Gateway\n    group: gateway.networking.k8s.io\n    name: gw', /spec\.targetRefs: not supported: tracemesh attaches policies to workloads with selector\.matchLabels only/],
    ['a typo in a field name', '  rules:\n  - from:\n    - source:\n        principal: ["x"]', /spec\.rules\[0\]\.from\[0\]\.source\.principal: unknown field/],
    ['an empty source', '  rules:\n  - from:\n    - source: {}', /spec\.rules\[0\]\.from\[0\]\.source: must not be empty/],
    ['a source with only empty lists', '  rules:\n  - from:\n    - source: {principals: []}', /source: must not be empty/],
    ['a missing source', '  rules:\n  - from:\n    - {}', /spec\.rules\[0\]\.from\[0\]\.source: required/],
    ['an empty from', '  rules:\n  - from: []', /spec\.rules\[0\]\.from: must not be empty; leave out `from` to match any source/],
    ['an empty operation', '  rules:\n  - to:\n    - operation: {}', /spec\.rules\[0\]\.to\[0\]\.operation: must not be empty/],
    ['an empty to', '  rules:\n  - to: []', /spec\.rules\[0\]\.to: must not be empty/],
    ['an empty value', '  rules:\n  - to:\n    - operation: {paths: [""]}', /operation\.paths\[0\]: empty value not allowed/],
    ['a bad IP block', '  rules:\n  - from:\n    - source: {ipBlocks: ["10.0.0.0/40"]}', /source\.ipBlocks\[0\]: must be an IP address or CIDR range/],
    ['a bad port', '  rules:\n  - to:\n    - operation: {ports: ["http"]}', /operation\.ports\[0\]: must be a port number from 0 to 65535/],
    ['a port out of range', '  rules:\n  - to:\n    - operation: {notPorts: [70000]}', /operation\.notPorts\[0\]: must be a port number/],
    ['a spiffe:// principal', '  rules:\n  - from:\n    - source: {principals: ["spiffe://cluster.local/ns/a/sa/b"]}', /principals\[0\]: write principals without the spiffe:\/\/ prefix/],
    ['a wildcard service account', '  rules:\n  - from:\n    - source: {serviceAccounts: ["shop/*"]}', /serviceAccounts\[0\]: wildcards are not allowed/],
    ['a malformed service account', '  rules:\n  - from:\n    - source: {serviceAccounts: ["a/b/c"]}', /serviceAccounts\[0\]: expected "serviceAccount" or "namespace\/serviceAccount"/],
    ['serviceAccounts with principals', '  rules:\n  - from:\n    - source: {serviceAccounts: ["a"], principals: ["x"]}', /source: cannot set serviceAccounts together with principals or namespaces/],
    ['a bad path template', '  rules:\n  - to:\n    - operation: {paths: ["/a/{**}/b/{*}"]}', /paths\[0\]: \{\*\*\} must be the last operator/],
    ['a DENY without rules', '  action: DENY', /spec\.rules: a DENY policy without rules never matches; add an empty rule `rules: \[\{\}\]`/],
    ['a DENY with empty rules', '  action: DENY\n  rules: []', /spec\.rules: a DENY policy without rules never matches/],
    ['a JWT condition', '  rules:\n  - when:\n    - key: request.auth.claims[iss]\n      values: ["x"]', /spec\.rules\[0\]\.when\[0\]\.key: not supported: "request\.auth\.claims\[iss\]" needs JWT/],
    ['an unknown condition key', '  rules:\n  - when:\n    - key: source.user\n      values: ["x"]', /when\[0\]\.key: unknown attribute "source\.user"/],
    ['a header key without a name', '  rules:\n  - when:\n    - key: request.headers[]\n      values: ["x"]', /when\[0\]\.key: bad key "request\.headers\[\]"/],
    ['destination.namespace', '  rules:\n  - when:\n    - key: destination.namespace\n      values: ["x"]', /destination\.namespace is replaced by metadata\.namespace/],
    ['remote.ip', '  rules:\n  - when:\n    - key: remote.ip\n      values: ["1.2.3.4"]', /when\[0\]\.key: not supported: remote\.ip/],
    ['a condition without values', '  rules:\n  - when:\n    - key: source.ip', /spec\.rules\[0\]\.when\[0\]: at least one of values or notValues must be set for key source\.ip/],
    ['a bad source.ip value', '  rules:\n  - when:\n    - key: source.ip\n      notValues: ["x"]', /when\[0\]\.notValues\[0\]: must be an IP address/],
    ['a bad destination.port value', '  rules:\n  - when:\n    - key: destination.port\n      values: ["-1"]', /when\[0\]\.values\[0\]: must be a port number/],
    ['a wildcard selector', '  selector:\n    matchLabels: {app: "web-*"}', /spec\.selector\.matchLabels\.app: wildcards are not supported in selectors/],
    ['a numeric label value', '  selector:\n    matchLabels: {version: 2}', /spec\.selector\.matchLabels\.version: expected string, received number/],
  ];
  for (const [name, spec, expected] of cases) {
    void it(`rejects ${name}`, () => rejects(authz(spec), expected));
  }

  void it('lists every problem of a document, separated by "; "', () => {
    rejects(authz('  action: CUSTOM\n  rules:\n  - to: []'), /^policies\/p\.yaml \(document 1\): spec\.action: not supported: .*; spec\.rules\[0\]\.to: must not be empty.*$/);
  });

  void it('checks metadata and apiVersion', () => {
    rejects('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {}\nspec: {}', /metadata\.name: required/);
    rejects('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: Bad_Name}\n', /metadata\.name: must be a lowercase DNS name/);
    rejects('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: "Not/Valid"}\n', /metadata\.namespace: must be a Kubernetes namespace name/);
    rejects('apiVersion: security.istio.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: p}\n', /apiVersion: must be one of security\.tracemesh\.io\/v1, security\.istio\.io\/v1, security\.istio\.io\/v1beta1/);
    rejects('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspecs: {}\n', /specs: unknown field/);
    rejects('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, creationTimestamp: yesterday}\n', /metadata\.creationTimestamp: must be an RFC 3339 timestamp/);
  });

  void it('accepts Istio YAML: defaults, bare-number ports, status and server-set metadata', () => {
    const set = parsePolicyYaml(
      [
        'apiVersion: security.istio.io/v1beta1',
        'kind: AuthorizationPolicy',
        'metadata: {name: p, uid: abc, labels: {a: b}}',
        'spec:',
        '  rules:',
        '  - to:',
        '    - operation: {ports: [8080, "9090"]}',
        '    when:',
        '    - key: destination.port',
        '      values: [8080]',
        'status: {validationMessages: []}',
      ].join('\n'),
      'p.yaml',
    );
    assert.deepEqual(set.authorizationPolicies, [
      {
        apiVersion: 'security.istio.io/v1beta1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'p', namespace: 'default' },
        spec: { rules: [{ to: [{ operation: { ports: ['8080', '9090'] } }], when: [{ key: 'destination.port', values: ['8080'] }] }] },
      },
    ]);
  });

  void it('a missing spec is spec: {} (allow nothing)', () => {
    const set = parsePolicyYaml('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\n', 'p.yaml');
    assert.deepEqual(set.authorizationPolicies[0]?.spec, {});
  });

  void it('parseWith prefixes paths inside a List', () => {
    assert.throws(
      () => parseWith(authorizationPolicySchema, { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'p' }, spec: { action: 1 } }, 'l.yaml (document 1)', ['items', 3]),
      /l\.yaml \(document 1\): items\[3\]\.spec\.action: must be ALLOW, DENY or AUDIT, got 1$/,
    );
    assert.equal(fieldPath([]), '(top level)');
    assert.equal(fieldPath(['a', 0, 'b']), 'a[0].b');
  });
});

void describe('PeerAuthentication validation', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['an unknown mode', '  mtls: {mode: strict}', /spec\.mtls\.mode: must be STRICT, PERMISSIVE, DISABLE or UNSET, got "strict"/],
    ['port-level mTLS without a selector', '  portLevelMtls:\n    8080: {mode: DISABLE}', /spec\.portLevelMtls: mesh- or namespace-wide peer authentication cannot have port-level mTLS/],
    ['port 0', '  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    0: {mode: DISABLE}', /spec\.portLevelMtls\.0: port must be in range 1\.\.65535/],
    ['an empty portLevelMtls', '  selector: {matchLabels: {app: a}}\n  portLevelMtls: {}', /spec\.portLevelMtls: if set, must have at least one port/],
    ['targetRef', '  targetRef: {kind: Gateway, name: gw}', /spec\.targetRef: not supported/],
    ['a typo', '  mTLS: {mode: STRICT}', /spec\.mTLS: unknown field/],
  ];
  for (const [name, spec, expected] of cases) {
    void it(`rejects ${name}`, () => rejects(peer(spec), expected));
  }

  void it('accepts port-level modes keyed by YAML integers', () => {
    const set = parsePolicyYaml(peer('  selector: {matchLabels: {app: a}}\n  mtls: {mode: STRICT}\n  portLevelMtls:\n    9090: {mode: DISABLE}'), 'p.yaml');
    assert.deepEqual(set.peerAuthentications[0]?.spec.portLevelMtls, { '9090': { mode: 'DISABLE' } });
    assert.ok(peerAuthenticationSchema.safeParse(set.peerAuthentications[0]).success);
  });
});
