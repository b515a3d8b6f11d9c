import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../errors.ts';
import { compileRouteFiles, parseRouteYaml } from './load.ts';
import { applyHeaderModifier, planRoute, redirectLocation, rewritePath, type HeaderEditor, type RoutePlan } from './plan.ts';
import { parseDuration } from './resources.ts';
import { serviceRefOfHost, type RouteTable } from './table.ts';
import { REDIRECT_CONFORMANCE, routeRequest, sequence } from './testing.ts';

const MESH = { scheme: 'http' as const, host: 'echo', port: 80 };

function table(yaml: string): RouteTable {
  return compileRouteFiles(parseRouteYaml(yaml, 'routes.yaml')).table;
}

function plan(t: RouteTable, target: string, opts: { method?: string; headers?: Record<string, string>; consumer?: string; service?: string; port?: number; random?: () => number; grpc?: boolean } = {}): RoutePlan {
  const req = routeRequest(opts.method ?? 'GET', target, opts.headers ?? {}, opts.grpc ?? false);
  const service = { namespace: 'mesh', name: opts.service ?? 'echo' };
  return planRoute(t.resolve(service, opts.consumer ?? 'mesh', req, opts.port), req, MESH, opts.random ?? (() => 0));
}

function backendOf(p: RoutePlan): string {
  if (p.kind === 'forward') return p.backend.service;
  if (p.kind === 'direct') return '(direct)';
  if (p.kind === 'redirect') return `${p.status} → ${p.location}`;
  return `${p.status} ${p.reason}`;
}

const route = (name: string, rules: string, extra = '') => `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: mesh${extra} }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
${rules}
---`;

// The manifest of the Gateway API's MeshHTTPRouteMatching conformance test, in our words.
const MATCHING = route(
  'mesh-matching',
  `
  - matches: [{ path: { type: PathPrefix, value: / } }]
    backendRefs: [{ name: echo-v1, port: 80 }]
  - matches:
    - path: { type: PathPrefix, value: /v2 }
    - headers: [{ name: version, value: two }]
    backendRefs: [{ name: echo-v2, port: 80 }]`,
);

void describe('matching (MeshHTTPRouteMatching cases)', () => {
  const t = table(MATCHING);
  const cases: [string, Record<string, string>, string][] = [
    ['/', {}, 'echo-v1'],
    ['/example', {}, 'echo-v1'],
    ['/', { Version: 'one' }, 'echo-v1'],
    ['/v2', {}, 'echo-v2'],
    ['/v2/example', {}, 'echo-v2'],
    ['/', { Version: 'two' }, 'echo-v2'],
    ['/v2/', {}, 'echo-v2'],
    ['/v2example', {}, 'echo-v1'], // not a path-segment prefix
    ['/foo/v2/example', {}, 'echo-v1'],
  ];
  for (const [path, headers, want] of cases) {
    void test(`${path} ${JSON.stringify(headers)} → ${want}`, () => {
      assert.equal(backendOf(plan(t, path, { headers })), want);
    });
  }

  void test('a Service without routes is unrouted; the request goes to it directly', () => {
    assert.equal(plan(t, '/', { service: 'other' }).kind, 'direct');
  });

  void test('routes attach but nothing matches: 404 naming the route', () => {
    const t2 = table(route('only-api', `  - matches: [{ path: { type: Exact, value: /api } }]\n    backendRefs: [{ name: echo-v1 }]`));
    const p = plan(t2, '/other');
    assert.equal(p.kind, 'respond');
    assert.equal(p.kind === 'respond' && p.status, 404);
    assert.match(p.kind === 'respond' ? p.message : '', /HTTPRoute mesh\/only-api/);
  });

  void test('a parentRef port narrows the route to that Service port', () => {
    assert.equal(plan(t, '/v2', { port: 80 }).kind, 'forward');
    assert.equal(plan(t, '/v2', { port: 8080 }).kind, 'direct');
  });
});

void describe('precedence (Gateway API HTTPRouteRule rules)', () => {
  void test('Exact beats RegularExpression beats the longest PathPrefix; method, header and query counts break ties', () => {
    const t = table(
      route(
        'p',
        `
  - matches: [{ path: { type: PathPrefix, value: / } }]
    backendRefs: [{ name: catch-all }]
  - matches: [{ path: { type: PathPrefix, value: /a } }]
    backendRefs: [{ name: prefix-a }]
  - matches: [{ path: { type: PathPrefix, value: /a/b } }]
    backendRefs: [{ name: prefix-ab }]
  - matches: [{ path: { type: RegularExpression, value: "/a/[0-9]+" } }]
    backendRefs: [{ name: regex }]
  - matches: [{ path: { type: Exact, value: /a/b } }]
    backendRefs: [{ name: exact }]
  - matches: [{ path: { type: PathPrefix, value: /m }, method: POST }]
    backendRefs: [{ name: method }]
  - matches: [{ path: { type: PathPrefix, value: /m }, headers: [{ name: x, value: "1" }, { name: y, value: "1" }] }]
    backendRefs: [{ name: two-headers }]
  - matches: [{ path: { type: PathPrefix, value: /m }, headers: [{ name: x, value: "1" }] }]
    backendRefs: [{ name: one-header }]
  - matches: [{ path: { type: PathPrefix, value: /m }, queryParams: [{ name: q, value: "1" }] }]
    backendRefs: [{ name: query }]`,
      ),
    );
    assert.equal(backendOf(plan(t, '/a/b')), 'exact');
    assert.equal(backendOf(plan(t, '/a/123')), 'regex');
    assert.equal(backendOf(plan(t, '/a/b/c')), 'prefix-ab');
    assert.equal(backendOf(plan(t, '/a/c')), 'prefix-a');
    assert.equal(backendOf(plan(t, '/z')), 'catch-all');
    // method outranks headers; more headers outrank fewer; headers outrank query params
    assert.equal(backendOf(plan(t, '/m', { method: 'POST', headers: { x: '1', y: '1' } })), 'method');
    assert.equal(backendOf(plan(t, '/m', { headers: { x: '1', y: '1' } })), 'two-headers');
    assert.equal(backendOf(plan(t, '/m?q=1', { headers: { x: '1' } })), 'one-header');
    assert.equal(backendOf(plan(t, '/m?q=1')), 'query');
    assert.equal(backendOf(plan(t, '/m?q=2')), 'catch-all');
  });

  void test('ties across routes: the oldest creationTimestamp, then namespace/name; within a route, the first rule', () => {
    const rule = (b: string) => `  - matches: [{ path: { type: PathPrefix, value: /x } }]\n    backendRefs: [{ name: ${b} }]`;
    const older = table(route('zz', rule('zz-old'), ', creationTimestamp: "2024-01-01T00:00:00Z"') + route('aa', rule('aa-new'), ', creationTimestamp: "2025-01-01T00:00:00Z"'));
    assert.equal(backendOf(plan(older, '/x')), 'zz-old');
    const alpha = table(route('zz', rule('zz')) + route('aa', rule('aa')));
    assert.equal(backendOf(plan(alpha, '/x')), 'aa');
    const inRoute = table(route('one', `${rule('first')}\n${rule('second')}`));
    assert.equal(backendOf(plan(inRoute, '/x')), 'first');
  });

  void test('header names are case-insensitive and values exact; the first match on a repeated name counts; regexes match whole values', () => {
    const t = table(
      route(
        'h',
        `
  - matches: [{ headers: [{ name: X-Env, value: canary }, { name: x-env, value: ignored }] }]
    backendRefs: [{ name: canary }]
  - matches: [{ headers: [{ type: RegularExpression, name: x-user, value: "team-[a-z]+" }] }]
    backendRefs: [{ name: team }]
  - backendRefs: [{ name: stable }]`,
      ),
    );
    assert.equal(backendOf(plan(t, '/', { headers: { 'x-env': 'canary' } })), 'canary');
    assert.equal(backendOf(plan(t, '/', { headers: { 'x-env': 'Canary' } })), 'stable');
    assert.equal(backendOf(plan(t, '/', { headers: { 'x-env': 'ignored' } })), 'stable');
    assert.equal(backendOf(plan(t, '/', { headers: { 'x-user': 'team-blue' } })), 'team');
    assert.equal(backendOf(plan(t, '/', { headers: { 'x-user': 'my-team-blue' } })), 'stable');
  });
});

void describe('consumer and producer routes (MeshConsumerRoute)', () => {
  const producer = route('producer', `  - backendRefs: [{ name: echo-v1 }]`);
  const consumer = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: consumer, namespace: consumer-ns }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, namespace: mesh }]
  rules:
  - filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: X-Header-Set, value: set }] } }]
    backendRefs: [{ name: echo-v1, namespace: mesh }]
`;
  const t = table(producer + consumer);

  void test("a consumer route applies to requests from the route's namespace only, and replaces the producer's routes there", () => {
    const fromConsumer = plan(t, '/', { consumer: 'consumer-ns' });
    assert.equal(fromConsumer.kind, 'forward');
    assert.equal(fromConsumer.kind === 'forward' && fromConsumer.rule.route, 'HTTPRoute consumer-ns/consumer');
    assert.deepEqual(fromConsumer.kind === 'forward' && fromConsumer.responseHeaders, [{ set: [{ name: 'X-Header-Set', value: 'set' }] }]);
    const fromProducerNs = plan(t, '/', { consumer: 'mesh' });
    assert.equal(fromProducerNs.kind === 'forward' && fromProducerNs.rule.route, 'HTTPRoute mesh/producer');
    assert.deepEqual(fromProducerNs.kind === 'forward' && fromProducerNs.responseHeaders, []);
    // A third namespace gets the producer's routes.
    assert.equal(plan(t, '/', { consumer: 'elsewhere' }).kind === 'forward', true);
  });

  void test('hosts name Services as Kubernetes DNS does', () => {
    assert.deepEqual(serviceRefOfHost('echo', 'a'), { namespace: 'a', name: 'echo', port: undefined });
    assert.deepEqual(serviceRefOfHost('echo.mesh:8080', 'a'), { namespace: 'mesh', name: 'echo', port: 8080 });
    assert.deepEqual(serviceRefOfHost('echo.mesh.svc.cluster.local', 'a'), { namespace: 'mesh', name: 'echo', port: undefined });
    assert.deepEqual(serviceRefOfHost('ECHO.mesh.svc:80', 'a'), { namespace: 'mesh', name: 'echo', port: 80 });
  });
});

void describe('traffic split (MeshSplit, weights)', () => {
  const split = (weights: string) =>
    table(route('split', `  - backendRefs: [${weights}]`));

  void test('backends are chosen in proportion to their weights', () => {
    const t = split('{ name: echo-v1, weight: 90 }, { name: echo-v2, weight: 10 }');
    const counts = new Map<string, number>();
    for (let i = 0; i < 100; i++) {
      const b = backendOf(plan(t, '/', { random: () => i / 100 }));
      counts.set(b, (counts.get(b) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(counts), { 'echo-v1': 90, 'echo-v2': 10 });
  });

  void test('the default weight is 1; a backend with weight 0 gets nothing', () => {
    const t = split('{ name: echo-v1 }, { name: off, weight: 0 }, { name: echo-v2 }');
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(backendOf(plan(t, '/', { random: () => i / 10 })));
    assert.deepEqual([...seen].sort(), ['echo-v1', 'echo-v2']);
  });

  void test('weight 0 everywhere, or no backendRefs: 500 NO_BACKEND, as the Gateway API says', () => {
    const zero = plan(split('{ name: a, weight: 0 }, { name: b, weight: 0 }'), '/');
    assert.equal(backendOf(zero), '500 NO_BACKEND');
    assert.match(zero.kind === 'respond' ? zero.message : '', /weight 0/);
    const none = plan(table(route('empty', `  - matches: [{ path: { value: / } }]`)), '/');
    assert.equal(backendOf(none), '500 NO_BACKEND');
    assert.match(none.kind === 'respond' ? none.message : '', /no backendRefs/);
  });
});

void describe('filters', () => {
  void test('rewrite (MeshHTTPRouteRewritePath cases)', () => {
    const t = table(
      route(
        'rewrite',
        `
  - matches: [{ path: { type: PathPrefix, value: /prefix/one } }]
    filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /one } } }]
    backendRefs: [{ name: echo-v1 }]
  - matches: [{ path: { type: PathPrefix, value: /strip-prefix } }]
    filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: / } } }]
    backendRefs: [{ name: echo-v1 }]
  - matches: [{ path: { type: PathPrefix, value: /full/one } }]
    filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplaceFullPath, replaceFullPath: /one } } }]
    backendRefs: [{ name: echo-v1 }]
  - matches: [{ path: { type: PathPrefix, value: /host } }]
    filters: [{ type: URLRewrite, urlRewrite: { hostname: rewritten.example } }]
    backendRefs: [{ name: echo-v1 }]`,
      ),
    );
    const target = (p: RoutePlan) => (p.kind === 'forward' ? p.target : undefined);
    assert.equal(target(plan(t, '/prefix/one/two')), '/one/two');
    assert.equal(target(plan(t, '/strip-prefix/three')), '/three');
    assert.equal(target(plan(t, '/strip-prefix')), '/');
    assert.equal(target(plan(t, '/full/one/two?a=b')), '/one?a=b');
    const host = plan(t, '/host/x');
    assert.equal(host.kind === 'forward' && host.host, 'rewritten.example');
    assert.equal(target(host), undefined);
    assert.equal(rewritePath('/foo/', { type: 'ReplacePrefixMatch', replacePrefixMatch: '/bar' }, '/foo'), '/bar/');
    assert.equal(rewritePath('/foo', { type: 'ReplacePrefixMatch', replacePrefixMatch: '/xyz' }, '/'), '/xyz/foo');
  });

  void test('RequestRedirect: the mesh redirect conformance cases (scheme, port, path, host and status, 303/307/308)', () => {
    const t = table(REDIRECT_CONFORMANCE.yaml);
    for (const c of REDIRECT_CONFORMANCE.cases) assert.equal(backendOf(plan(t, c.path)), `${c.status} → ${c.location}`, c.path);
  });

  void test('RequestRedirect: the query is kept; the port follows the scheme, else the port the request named; response edits apply', () => {
    const t = table(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo }]
  rules:
  - matches: [{ path: { value: /same } }]
    filters: [{ type: RequestRedirect, requestRedirect: { hostname: other } }]
  - matches: [{ path: { value: /secure } }]
    filters:
    - { type: RequestRedirect, requestRedirect: { scheme: https } }
    - { type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: cache-control, value: no-store }] } }
  - matches: [{ path: { value: /plain } }]
    filters: [{ type: RequestRedirect, requestRedirect: { scheme: http, port: 80 } }]
  - matches: [{ path: { value: /odd-port } }]
    filters: [{ type: RequestRedirect, requestRedirect: { scheme: https, port: 8443 } }]`);
    const at = (target: string, port: number) => {
      const req = routeRequest('GET', target);
      return planRoute(t.resolve({ namespace: 'mesh', name: 'echo' }, 'mesh', req, port), req, { scheme: 'http', host: 'echo.mesh', port }, () => 0);
    };
    assert.equal(backendOf(at('/same/x?a=1&b=2', 8080)), '302 → http://other:8080/same/x?a=1&b=2');
    assert.equal(backendOf(at('/same', 80)), '302 → http://other/same');
    const secure = at('/secure?q', 8080);
    assert.equal(backendOf(secure), '302 → https://echo.mesh/secure?q');
    assert.deepEqual(secure.kind === 'redirect' && secure.responseHeaders, [{ set: [{ name: 'cache-control', value: 'no-store' }] }]);
    assert.equal(backendOf(at('/plain', 8080)), '302 → http://echo.mesh/plain');
    assert.equal(backendOf(at('/odd-port', 80)), '302 → https://echo.mesh:8443/odd-port');
    assert.equal(redirectLocation({ statusCode: 302 }, routeRequest('GET', '/x'), { scheme: 'http', host: '::1', port: 8080 }, undefined), 'http://[::1]:8080/x');
  });

  void test('header modifiers: set replaces, add appends, remove removes; rule edits come before backend edits', () => {
    const t = table(
      route(
        'headers',
        `
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{ name: X-Header-Set, value: set-overwrites-values }]
        add: [{ name: X-Header-Add, value: header-val-1 }, { name: X-Header-Add-Append, value: header-val-2 }]
        remove: [X-Header-Remove]
    backendRefs:
    - name: echo-v1
      filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-backend, value: v1 }] } }]`,
      ),
    );
    const p = plan(t, '/');
    assert.equal(p.kind, 'forward');
    const headers = new Map<string, string[]>([
      ['x-header-remove', ['remove-val']],
      ['x-header-add-append', ['append-val-1']],
      ['x-header-set', ['set-val']],
    ]);
    const editor: HeaderEditor = {
      set: (n, v) => headers.set(n.toLowerCase(), [v]),
      add: (n, v) => headers.set(n.toLowerCase(), [...(headers.get(n.toLowerCase()) ?? []), v]),
      remove: (n) => headers.delete(n.toLowerCase()),
    };
    for (const m of p.kind === 'forward' ? p.requestHeaders : []) applyHeaderModifier(m, editor);
    assert.deepEqual(Object.fromEntries([...headers].map(([k, v]) => [k, v.join(',')])), {
      'x-header-add-append': 'append-val-1,header-val-2',
      'x-header-set': 'set-overwrites-values',
      'x-header-add': 'header-val-1',
      'x-backend': 'v1',
    });
  });
});

const FAULTS = `
apiVersion: tracemesh.io/v1alpha1
kind: FaultInjection
metadata: { name: chaos, namespace: mesh }
spec:
  delay: { fixedDelay: 2s, percentage: 50 }
  abort: { httpStatus: 503, percentage: 10 }
---
apiVersion: tracemesh.io/v1alpha1
kind: FaultInjection
metadata: { name: grpc-chaos, namespace: mesh }
spec:
  abort: { grpcStatus: UNAVAILABLE, percentage: 100 }
---`;

void describe('fault injection (ExtensionRef → tracemesh.io FaultInjection)', () => {
  const t = table(
    FAULTS +
      route(
        'faulty',
        `
  - matches: [{ path: { value: /grpc } }]
    filters: [{ type: ExtensionRef, extensionRef: { group: tracemesh.io, kind: FaultInjection, name: grpc-chaos } }]
    backendRefs: [{ name: echo-v1 }]
  - filters: [{ type: ExtensionRef, extensionRef: { group: tracemesh.io, kind: FaultInjection, name: chaos } }]
    backendRefs: [{ name: echo-v1 }]`,
      ),
  );

  void test('delay and abort each roll for their share of requests', () => {
    // rolls: delay (< 50%?), then abort (< 10%?), then backend choice
    const delayedOnly = plan(t, '/', { random: sequence(0.1, 0.5, 0) });
    assert.equal(delayedOnly.kind === 'forward' && delayedOnly.delayMs, 2000);
    assert.equal(delayedOnly.kind === 'forward' && delayedOnly.fault, 'FaultInjection mesh/chaos');
    const neither = plan(t, '/', { random: sequence(0.9, 0.5, 0) });
    assert.equal(neither.kind === 'forward' && neither.delayMs, 0);
    const both = plan(t, '/', { random: sequence(0.1, 0.05) });
    assert.equal(both.kind, 'respond');
    assert.equal(both.kind === 'respond' && `${both.status} ${both.reason} ${both.delayMs} ${both.grpcStatus}`, '503 FAULT_ABORT 2000 14');
  });

  void test('over many requests the shares hold', () => {
    let aborted = 0;
    let delayed = 0;
    let x = 0;
    const random = () => ((x = (x * 9301 + 49297) % 233280), x / 233280);
    for (let i = 0; i < 10_000; i++) {
      const p = plan(t, '/', { random });
      if (p.kind === 'respond') aborted++;
      if ((p.kind === 'forward' || p.kind === 'respond') && p.delayMs > 0) delayed++;
    }
    assert.ok(Math.abs(aborted / 10_000 - 0.1) < 0.02, `aborted ${aborted}`);
    assert.ok(Math.abs(delayed / 10_000 - 0.5) < 0.03, `delayed ${delayed}`);
  });

  void test('a gRPC status abort maps to HTTP for plain clients', () => {
    const p = plan(t, '/grpc');
    assert.equal(p.kind === 'respond' && `${p.status} ${p.grpcStatus}`, '503 14');
  });
});

void describe('timeouts and retries', () => {
  void test('durations follow the Gateway API format', () => {
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('1h500ms'), 3_600_500);
    assert.equal(parseDuration('0s'), 0);
    assert.equal(parseDuration('1.5s'), undefined);
    assert.equal(parseDuration('10'), undefined);
  });

  void test('timeouts and retry settings reach the plan', () => {
    const t = table(
      route(
        'resilient',
        `
  - timeouts: { request: 10s, backendRequest: 2s }
    retry: { codes: [500, 503], attempts: 3, backoff: 100ms }
    backendRefs: [{ name: echo-v1 }]`,
      ),
    );
    const p = plan(t, '/');
    assert.equal(p.kind, 'forward');
    if (p.kind !== 'forward') return;
    assert.equal(p.requestTimeoutMs, 10_000);
    assert.equal(p.backendTimeoutMs, 2000);
    assert.deepEqual([...(p.retry?.codes ?? [])], [500, 503]);
    assert.equal(p.retry?.attempts, 3);
    assert.equal(p.retry?.backoffMs, 100);
  });
});

void describe('GRPCRoute', () => {
  const t = table(`
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: grpc, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo }]
  rules:
  - matches: [{ method: { service: demo.Echo, method: Slow } }]
    backendRefs: [{ name: echo-slow }]
  - matches: [{ method: { service: demo.Echo } }]
    backendRefs: [{ name: echo-grpc }]
  - matches: [{ method: { type: RegularExpression, service: "demo\\\\..*", method: "Get.*" } }]
    backendRefs: [{ name: echo-get }]
`);
  void test('method matches select rules; plain HTTP never takes a GRPCRoute', () => {
    assert.equal(backendOf(plan(t, '/demo.Echo/Slow', { method: 'POST', grpc: true })), 'echo-slow');
    assert.equal(backendOf(plan(t, '/demo.Echo/Fast', { method: 'POST', grpc: true })), 'echo-grpc');
    assert.equal(backendOf(plan(t, '/demo.Other/GetThing', { method: 'POST', grpc: true })), 'echo-get');
    assert.equal(backendOf(plan(t, '/demo.Echo/Fast', { method: 'POST', grpc: false })), '404 ROUTE_NOT_FOUND');
    const miss = plan(t, '/x.Y/Z', { method: 'POST', grpc: true });
    assert.equal(miss.kind === 'respond' && miss.grpcStatus, 12);
  });
});

void describe('validation: refused with file, name and reason', () => {
  const refused = (yaml: string, pattern: RegExp) => {
    assert.throws(
      () => parseRouteYaml(yaml, 'routes/bad.yaml'),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.match(err.message, /^routes\/bad\.yaml \(document \d+\): /);
        assert.match(err.message, pattern);
        return true;
      },
    );
  };
  const one = (rules: string) => route('bad', rules).replace(/---$/, '');

  void test('bad fields name the route and the field', () => {
    refused(one(`  - matches: [{ path: { type: Exact, value: "no-slash" } }]`), /HTTPRoute mesh\/bad: spec\.rules\[0\]\.matches\[0\]\.path\.value: must begin with "\/"/);
    refused(one(`  - matches: [{ path: { type: RegularExpression, value: "(" } }]`), /not a valid regular expression/);
    refused(one(`  - backendRefs: [{ name: a, weight: -1 }]`), /backendRefs\[0\]\.weight: must be from 0 to 1000000/);
    refused(one(`  - backendRefs: [{ name: a, kind: ServiceImport }]`), /routes to Services only/);
    refused(one(`  - matches: [{ method: FETCH }]`), /method: must be one of GET/);
    refused(one(`  - bogus: 1`), /spec\.rules\[0\]\.bogus: unknown field/);
    refused(one(`  - timeouts: { request: 1s, backendRequest: 2s }`), /backendRequest: must not be longer than timeouts\.request/);
    refused(one(`  - timeouts: { request: 1.5s }`), /must be a duration/);
    refused(one(`  - retry: { codes: [200] }`), /must be an HTTP status from 400 to 599/);
    refused(
      one(`  - matches: [{ path: { type: Exact, value: /a } }]\n    filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /b } } }]`),
      /ReplacePrefixMatch needs exactly one match, and it must be a PathPrefix/,
    );
    refused(one(`  - filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: a } } }]`), /not supported: RequestMirror/);
    refused(one(`  - filters: [{ type: RequestRedirect, requestRedirect: { scheme: https } }]\n    backendRefs: [{ name: a }]`), /backendRefs: RequestRedirect filter must not be used together with backendRefs/);
    refused(
      one(`  - matches: [{ path: { type: Exact, value: /a } }]\n    filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /b } } }]`),
      /ReplacePrefixMatch needs exactly one match, and it must be a PathPrefix/,
    );
    refused(one(`  - filters: [{ type: RequestRedirect, requestRedirect: { statusCode: 304 } }]`), /requestRedirect\.statusCode: must be one of 301, 302, 303, 307, 308/);
    refused(one(`  - filters: [{ type: RequestRedirect, requestRedirect: { scheme: ftp } }]`), /requestRedirect\.scheme: must be http or https/);
    refused(one(`  - filters: [{ type: RequestRedirect, requestRedirect: { hostname: "*.example.org" } }]`), /requestRedirect\.hostname: must be a lowercase DNS name \(no wildcard\)/);
    refused(one(`  - filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplaceFullPath, replaceFullPath: "/a b" } } }]`), /must not contain spaces or control characters/);
    refused(
      one(`  - filters: [{ type: RequestRedirect, requestRedirect: { scheme: https } }, { type: URLRewrite, urlRewrite: { hostname: a } }]`),
      /may specify either URLRewrite or RequestRedirect, but not both/,
    );
    refused(one(`  - filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: a, value: "x\\r\\ny: z" }] } }]`), /must not contain CR, LF or NUL/);
    refused(one(`  - filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: a, value: "1" }, { name: A, value: "2" }] } }]`), /header "A" is listed twice/);
  });

  void test('a parent that is neither a Service nor a Gateway is refused', () => {
    refused(
      `apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: bad }\nspec: { parentRefs: [{ group: example.com, kind: Mesh, name: m }] }`,
      /HTTPRoute default\/bad: spec\.parentRefs\[0\]: parentRef example\.com\/Mesh is not supported/,
    );
  });

  void test('dangling and unknown ExtensionRefs are refused', () => {
    refused(
      one(`  - filters: [{ type: ExtensionRef, extensionRef: { group: tracemesh.io, kind: FaultInjection, name: missing } }]`),
      /HTTPRoute mesh\/bad: spec\.rules\[0\]\.filters\[0\]\.extensionRef: FaultInjection mesh\/missing is not defined/,
    );
    refused(one(`  - filters: [{ type: ExtensionRef, extensionRef: { group: example.com, kind: RateLimit, name: x } }]`), /unknown extension example\.com\/RateLimit/);
  });

  void test('a FaultInjection needs a percentage and exactly one abort status', () => {
    refused(`apiVersion: tracemesh.io/v1alpha1\nkind: FaultInjection\nmetadata: { name: f }\nspec: { delay: { fixedDelay: 1s } }`, /FaultInjection default\/f: spec\.delay\.percentage: percentage is required/);
    refused(
      `apiVersion: tracemesh.io/v1alpha1\nkind: FaultInjection\nmetadata: { name: f }\nspec: { abort: { httpStatus: 503, grpcStatus: UNAVAILABLE, percentage: 1 } }`,
      /set exactly one of httpStatus and grpcStatus/,
    );
  });

  void test('a route defined twice is refused, naming both places', () => {
    assert.throws(() => parseRouteYaml(route('twice', '  - {}') + route('twice', '  - {}'), 'r.yaml'), /r\.yaml \(document 2\): HTTPRoute mesh\/twice is already defined in r\.yaml \(document 1\)/);
  });

  void test('other kinds are skipped, so routes and policies can share a directory', () => {
    const files = parseRouteYaml(`apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: p }\n---\n${MATCHING}`, 'mixed.yaml');
    assert.equal(files.httpRoutes.length, 1);
  });
});
