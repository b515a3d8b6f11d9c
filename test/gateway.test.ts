// The ingress gateway end to end, all real parts on loopback: Node's https client (with the
// test edge CA and SNI) → gateway (TLS terminated, Gateway + HTTPRoute routing, mTLS with its
// own SPIFFE identity) → real backend sidecars → apps; spans through the real collector into
// ClickHouse, read back by the query API's path endpoint. Also: host and path routing to two
// services, unknown hosts and unmatched paths (404), TLS failures counted, a broken route
// edit refused with file, name and reason while the last good set keeps serving.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { createLogger, silentLogger } from '../common/logger.ts';
import { MESH_ERROR, MESH_ERROR_HEADER } from '../common/semconv.ts';
import { startBackend, type Backend } from '../cli/stack.ts';
import type { TracePath, PathHop } from '../query-api/path/model.ts';
import { snapshotOf, StaticEndpointSource } from '../sidecar/endpoints/endpoints.ts';
import { startGateway, type IngressGateway } from '../sidecar/gateway/gateway.ts';
import { startSidecar, type Sidecar } from '../sidecar/sidecar.ts';
import { httpRequest, startServer, waitFor, type Reply, type TestServer } from '../sidecar/testing/harness.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';

const MAKE_CERTS = fileURLToPath(new URL('./certs/make-certs.sh', import.meta.url));
const GATEWAY_ID = 'spiffe://cluster.local/ns/default/sa/web';

let dir: string;
const f = (name: string): string => join(dir, name);
let edgeCa: Buffer;
let db: TestDatabase;
let backend: Backend;
let gw: IngressGateway;
const apps: TestServer[] = [];
const sidecars: Sidecar[] = [];
const warnings: string[] = [];

const GATEWAY = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: default }
spec:
  gatewayClassName: tracemesh
  listeners:
  - name: shop-https
    protocol: HTTPS
    port: 443
    hostname: shop.example.test
    tls: { mode: Terminate, certificateRefs: [{ name: shop-cert }] }
  - name: api-https
    protocol: HTTPS
    port: 443
    hostname: "*.api.example.test"
    tls: { certificateRefs: [{ name: api-cert }] }
  - name: plain
    protocol: HTTP
    port: 80
`;

/** The shop route: /cart to shop, /search to api (path routing on one host); `cartTo` moves /cart. */
const shopRoute = (cartTo = 'shop'): string => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: shop, namespace: default }
spec:
  parentRefs: [{ name: edge, sectionName: shop-https }, { name: edge, sectionName: plain }]
  hostnames: [shop.example.test]
  rules:
  - matches: [{ path: { type: PathPrefix, value: /cart } }]
    filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { add: [{ name: x-edge, value: shop-route }] } }]
    backendRefs: [{ name: ${cartTo}, port: 80 }]
  - matches: [{ path: { type: PathPrefix, value: /search } }]
    backendRefs: [{ name: api, port: 80 }]
`;

const API_ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [v1.api.example.test]
  rules:
  - matches: [{ path: { type: PathPrefix, value: /v1 } }]
    filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: / } } }]
    backendRefs: [{ name: api, port: 80 }]
`;

interface Seen {
  readonly app: string;
  readonly url: string;
  readonly headers: Record<string, string>;
}

interface EdgeReply extends Reply {
  readonly peerCn: string;
}

function edge(port: number, o: { servername: string; host?: string; path: string; headers?: Record<string, string>; method?: string; body?: string }): Promise<EdgeReply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, servername: o.servername, ca: edgeCa, method: o.method ?? 'GET', path: o.path, headers: { host: o.host ?? o.servername, ...o.headers }, agent: false },
      (res) => {
        const peer = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), peerCn: String(peer.subject?.CN ?? '') }));
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

function seen(r: Reply): Seen {
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body) as Seen;
}

function traceIdOf(r: Reply): string {
  const tr = r.headers['traceresponse'];
  assert.equal(typeof tr, 'string', 'the gateway answers with traceresponse');
  return String(tr).split('-')[1] ?? '';
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await gw.sidecar.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tracemesh-gateway-'));
  execFileSync('bash', [MAKE_CERTS, dir], { stdio: 'ignore' });
  // The edge PKI: a CA outside clients trust, and a server certificate per listener hostname.
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'edge-ca.key', '-out', 'edge-ca.crt', '-days', '2', '-subj', '/CN=tracemesh test edge CA');
  for (const [name, san] of [
    ['shop', 'DNS:shop.example.test'],
    ['api', 'DNS:*.api.example.test'],
  ] as const) {
    openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name} edge`);
    await writeFile(f(`${name}.ext`), `subjectAltName = ${san}\n`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'edge-ca.crt', '-CAkey', 'edge-ca.key', '-CAcreateserial', '-out', `${name}-edge.crt`, '-days', '2', '-extfile', `${name}.ext`);
  }
  edgeCa = await readFile(f('edge-ca.crt'));
  await mkdir(f('routes'));
  await writeFile(f('routes/gateway.yaml'), GATEWAY);
  await writeFile(f('routes/shop.yaml'), shopRoute());
  await writeFile(f('routes/api.yaml'), API_ROUTE);

  db = await createTestDatabase();
  backend = await startBackend({ clickhouseUrl: db.url, database: db.database, collector: { batchTimeoutMs: 200 }, queryHost: '127.0.0.1', queryPort: 0, logger: silentLogger });
  const mesh = { tlsCertFile: f('server.crt'), tlsKeyFile: f('server.key'), trustBundleFile: f('root-a.crt'), collectorEndpoint: backend.otlpGrpcEndpoint };
  for (const name of ['shop', 'api']) {
    const app = await startServer((req, res) => {
      if (req.url?.endsWith('/boom') === true) {
        res.statusCode = 500;
        res.end(`${name} failed`);
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ app: name, url: req.url, headers: req.headers }));
    });
    apps.push(app);
    // Spans go through the real collector (not the harness's in-memory exporters).
    const sidecar = await startSidecar(
      { service: name, pod: `${name}-1`, node: 'node-1', appPort: app.port, outboundPort: 0, inboundPort: 0, adminPort: 0, bindAddress: '127.0.0.1', accessLog: 'off', drainTimeoutMs: 1000, ...mesh },
      { logger: silentLogger, endpoints: new StaticEndpointSource(), exportDelayMs: 50 },
    );
    sidecars.push(sidecar);
  }
  const [shop, api] = sidecars as [Sidecar, Sidecar];
  const endpoints = new StaticEndpointSource(
    snapshotOf({
      shop: [{ address: `127.0.0.1:${shop.inboundPort}`, pod: 'shop-1', identity: 'spiffe://cluster.local/ns/default/sa/api' }],
      api: [{ address: `127.0.0.1:${api.inboundPort}`, pod: 'api-1', identity: 'spiffe://cluster.local/ns/default/sa/api' }],
    }),
  );
  const logger = createLogger({}, 'warn', (line) => warnings.push(line));
  gw = await startGateway(
    {
      sidecar: {
        service: 'ingress',
        pod: 'ingress-1',
        node: 'edge-node',
        appPort: 1,
        outboundPort: 0,
        inboundPort: 0,
        adminPort: 0,
        bindAddress: '127.0.0.1',
        tlsCertFile: f('client.crt'),
        tlsKeyFile: f('client.key'),
        trustBundleFile: f('root-a.crt'),
        collectorEndpoint: backend.otlpGrpcEndpoint,
        routeFiles: [f('routes')],
        accessLog: 'off',
        drainTimeoutMs: 1000,
      },
      certificates: { 'shop-cert': { certFile: f('shop-edge.crt'), keyFile: f('shop.key') }, 'api-cert': { certFile: f('api-edge.crt'), keyFile: f('api.key') } },
      listenerPorts: { 443: 0, 80: 0 },
      reloadDebounceMs: 20,
    },
    { endpoints, logger, exportDelayMs: 50 },
  );
});

after(async () => {
  await gw?.close();
  for (const s of sidecars) await s.close();
  for (const a of apps) await a.close();
  await backend?.close();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

/**
 * Replaces a route file in one step (as a ConfigMap update or an editor's save-by-rename does): a
 * write in place can be read half-done by the watcher, and an empty file is a valid (empty) set.
 */
async function replaceFile(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

const https = (): number => gw.ports.get(443) ?? 0;
const plain = (): number => gw.ports.get(80) ?? 0;

void describe('ingress gateway', () => {
  void it('terminates TLS with the certificate SNI selects and routes by host and path to two services over mTLS', async () => {
    const cart = await edge(https(), { servername: 'shop.example.test', path: '/cart/7?x=1' });
    assert.equal(cart.peerCn, 'shop edge', 'the shop listener presents the shop certificate');
    const c = seen(cart);
    assert.equal(c.app, 'shop');
    assert.equal(c.url, '/cart/7?x=1');
    assert.equal(c.headers['x-edge'], 'shop-route', 'the rule\'s header filter applied');
    assert.equal(c.headers['x-forwarded-proto'], 'https');
    assert.equal(c.headers['x-forwarded-host'], 'shop.example.test');
    assert.equal(c.headers['x-forwarded-client-cert'], `By=spiffe://cluster.local/ns/default/sa/api;URI=${GATEWAY_ID}`, 'the backend sidecar verified the gateway\'s own SPIFFE identity');
    // The same host, another path: the other service.
    assert.equal(seen(await edge(https(), { servername: 'shop.example.test', path: '/search?q=tea' })).app, 'api');
    // A wildcard listener with its own certificate; the rule rewrites the prefix.
    const v1 = await edge(https(), { servername: 'v1.api.example.test', path: '/v1/items' });
    assert.equal(v1.peerCn, 'api edge');
    const a = seen(v1);
    assert.equal(a.app, 'api');
    assert.equal(a.url, '/items');
    // The plaintext listener carries the shop route too.
    assert.equal(seen(await httpRequest(plain(), { path: '/cart', headers: { host: 'shop.example.test' } })).app, 'shop');
  });

  void it('answers 404 with a clear body for an unknown host and for a path no rule matches', async () => {
    const unknownHost = await edge(https(), { servername: 'shop.example.test', host: 'other.example.test', path: '/cart' });
    assert.equal(unknownHost.status, 404);
    assert.equal(unknownHost.headers[MESH_ERROR_HEADER], MESH_ERROR.routeNotFound);
    const body = JSON.parse(unknownHost.body) as { error: { code: string; message: string; hop: { service: string } } };
    assert.match(body.error.message, /no listener of Gateway default\/edge on port 443 accepts host "other\.example\.test"/);
    assert.equal(body.error.hop.service, 'ingress');
    const noRule = await edge(https(), { servername: 'shop.example.test', path: '/admin' });
    assert.equal(noRule.status, 404);
    assert.equal(noRule.headers[MESH_ERROR_HEADER], MESH_ERROR.routeNotFound);
    assert.match(noRule.body, /HTTPRoute default\/shop/);
    // The catch-all plaintext listener takes any host, but no route's hostnames match it.
    const plainUnknown = await httpRequest(plain(), { path: '/cart', headers: { host: 'unknown.test' } });
    assert.equal(plainUnknown.status, 404);
    assert.equal(plainUnknown.headers[MESH_ERROR_HEADER], MESH_ERROR.routeNotFound);
  });

  void it('counts TLS handshake failures: an unknown SNI and plaintext on the TLS port', async () => {
    const before = await metric('tracemesh_gateway_tls_handshake_failures_total', 'reason="unknown_sni"');
    const failed = await new Promise<Error>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: https(), servername: 'nope.example.test', ca: edgeCa }, () => reject(new Error('handshake should fail')));
      s.on('error', resolve);
    });
    assert.ok(failed instanceof Error);
    await waitFor(async () => ((await metric('tracemesh_gateway_tls_handshake_failures_total', 'reason="unknown_sni"')) > before ? true : undefined), 'the unknown-SNI failure counted');
    const notTls = await metric('tracemesh_gateway_tls_handshake_failures_total', 'reason="not_tls"');
    await new Promise<void>((resolve) => {
      const s = netConnect(https(), '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nhost: shop.example.test\r\n\r\n'));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.resume();
    });
    await waitFor(async () => ((await metric('tracemesh_gateway_tls_handshake_failures_total', 'reason="not_tls"')) > notTls ? true : undefined), 'the plaintext-on-TLS failure counted');
  });

  void it('starts the trace at the edge: the gateway is the root hop in ClickHouse, an outside traceparent only a link', async () => {
    const outside = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const r = await edge(https(), { servername: 'shop.example.test', path: '/cart/trace', headers: { traceparent: outside, 'x-request-id': 'outside-id' } });
    assert.equal(seen(r).app, 'shop');
    assert.notEqual(seen(r).headers['x-request-id'], 'outside-id', 'an outside x-request-id is replaced (restart mode)');
    const traceId = traceIdOf(r);
    assert.notEqual(traceId, '4bf92f3577b34da6a3ce929d0e0e4736', 'an untrusted traceparent does not pick the trace');
    await gw.flush();
    await Promise.all(sidecars.map((s) => s.flush()));
    // gateway SERVER + gateway outbound CLIENT + shop inbound SERVER
    const path = (await eventually(
      async () => {
        const res = await fetch(`${backend.queryApi.url}/api/v1/traces/${traceId}/path`);
        return res.ok ? ((await res.json()) as TracePath) : undefined;
      },
      (p) => p !== undefined && p.spanCount >= 3,
      30_000,
      `the 3 spans of trace ${traceId} in the path`,
    )) as TracePath;
    assert.equal(path.status, 'ok');
    assert.equal(path.hops.length, 1, 'one root hop');
    const root = path.hops[0] as PathHop & { children: PathHop[] };
    assert.equal(root.service, 'ingress', 'the gateway is the first hop');
    assert.equal(root.pod, 'ingress-1');
    assert.equal(root.missingParentSpanId, null, 'the edge span is the root of the trace');
    assert.deepEqual(
      root.children.map((h) => h.service),
      ['shop'],
    );
    const jaeger = (await (await fetch(`${backend.queryApi.url}/api/traces/${traceId}`)).json()) as {
      data: { spans: { spanID: string; operationName: string; references: { refType: string; traceID: string; spanID: string }[]; tags: { key: string; value: unknown }[]; processID: string }[]; processes: Record<string, { serviceName: string }> }[];
    };
    const spans = jaeger.data[0]?.spans ?? [];
    const edgeSpan = spans.find((s) => s.tags.some((t) => t.key === 'span.kind' && t.value === 'server') && jaeger.data[0]?.processes[s.processID]?.serviceName === 'ingress');
    assert.ok(edgeSpan, 'the gateway\'s SERVER span is stored');
    assert.equal(edgeSpan.tags.find((t) => t.key === 'mesh.gateway')?.value, 'default/edge');
    assert.equal(edgeSpan.tags.find((t) => t.key === 'mesh.route')?.value, 'HTTPRoute default/shop');
    assert.ok(!edgeSpan.references.some((ref) => ref.refType === 'CHILD_OF'), 'no parent');
    assert.ok(
      edgeSpan.references.some((ref) => ref.refType === 'FOLLOWS_FROM' && ref.traceID === '4bf92f3577b34da6a3ce929d0e0e4736' && ref.spanID === '00f067aa0ba902b7'),
      `the outside context is kept as a link: ${JSON.stringify(edgeSpan.references)}`,
    );
  });

  void it('blames the right hop: the backend for its own 500, the gateway for a request no route takes', async () => {
    const pathOf = async (traceId: string, spans: number): Promise<TracePath> => {
      await gw.flush();
      await Promise.all(sidecars.map((s) => s.flush()));
      return (await eventually(
        async () => {
          const res = await fetch(`${backend.queryApi.url}/api/v1/traces/${traceId}/path`);
          return res.ok ? ((await res.json()) as TracePath) : undefined;
        },
        (p) => p !== undefined && p.spanCount >= spans,
        30_000,
        `${spans} spans of trace ${traceId}`,
      )) as TracePath;
    };
    const boom = await edge(https(), { servername: 'shop.example.test', path: '/cart/boom' });
    assert.equal(boom.status, 500);
    const failed = await pathOf(traceIdOf(boom), 3);
    assert.equal(failed.status, 'error');
    assert.equal(failed.hops[0]?.service, 'ingress', 'the gateway is still the first hop');
    assert.equal(failed.rootCause?.service, 'shop', 'the app that failed is the root cause, not the gateway that relayed it');
    assert.equal(failed.rootCause?.pod, 'shop-1');
    const lost = await edge(https(), { servername: 'shop.example.test', path: '/admin' });
    assert.equal(lost.status, 404);
    const unrouted = await pathOf(traceIdOf(lost), 1);
    assert.equal(unrouted.rootCause?.service, 'ingress', 'no route: the failure began at the gateway');
    assert.equal(unrouted.rootCause?.meshErrorCode, MESH_ERROR.routeNotFound);
  });

  void it('takes a renewed certificate without a restart, and keeps the last good one when the new pair does not load', async () => {
    openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'shop2.key', '-out', 'shop2.csr', '-subj', '/CN=shop edge renewed');
    openssl('x509', '-req', '-in', 'shop2.csr', '-CA', 'edge-ca.crt', '-CAkey', 'edge-ca.key', '-CAcreateserial', '-out', 'shop2-edge.crt', '-days', '2', '-extfile', 'shop.ext');
    // Key first, then certificate, each in one step (a mismatched pair in between is refused).
    await replaceFile(f('shop.key'), await readFile(f('shop2.key'), 'utf8'));
    await replaceFile(f('shop-edge.crt'), await readFile(f('shop2-edge.crt'), 'utf8'));
    await gw.reload();
    const renewed = await edge(https(), { servername: 'shop.example.test', path: '/cart' });
    assert.equal(renewed.peerCn, 'shop edge renewed');
    assert.equal(renewed.status, 200);
    const invalid = await metric('tracemesh_gateway_certificate_reloads_total', 'result="invalid"');
    await replaceFile(f('shop-edge.crt'), '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    await gw.reload();
    assert.equal(await metric('tracemesh_gateway_certificate_reloads_total', 'result="invalid"'), invalid + 1);
    assert.ok(warnings.some((l) => l.includes('gateway certificates refused') && l.includes('certificate \\"shop-cert\\"')), `the refusal names the certificate: ${warnings.filter((l) => l.includes('certificates')).join('\n')}`);
    assert.equal((await edge(https(), { servername: 'shop.example.test', path: '/cart' })).peerCn, 'shop edge renewed', 'the last good certificate still serves');
  });

  void it('reloads routes: a good edit takes effect, a broken one is refused with file, name and reason and the last good set keeps serving', async () => {
    await replaceFile(f('routes/shop.yaml'), shopRoute('api'));
    await gw.reload();
    assert.equal(seen(await edge(https(), { servername: 'shop.example.test', path: '/cart' })).app, 'api', 'the edit moved /cart to api');
    const invalidBefore = await metric('tracemesh_gateway_route_reloads_total', 'result="invalid"');
    // A route naming a listener the Gateway does not have.
    await replaceFile(f('routes/shop.yaml'), shopRoute('shop').replace('sectionName: plain', 'sectionName: nope'));
    await gw.reload();
    assert.equal(await metric('tracemesh_gateway_route_reloads_total', 'result="invalid"'), invalidBefore + 1);
    const refused = warnings.find((l) => l.includes('gateway route files refused') && l.includes('sectionName'));
    assert.ok(refused, `a warning names the refusal: ${warnings.join('\n')}`);
    assert.match(refused, /shop\.yaml \(document 1\): HTTPRoute default\/shop: spec\.parentRefs\[1\]\.sectionName: Gateway default\/edge has no listener \\"nope\\"/);
    assert.equal(seen(await edge(https(), { servername: 'shop.example.test', path: '/cart' })).app, 'api', 'the last good routes still serve');
    // A document that fails the schema: refused as well, with its field.
    await replaceFile(f('routes/api.yaml'), API_ROUTE.replace('port: 80', 'port: 80, weight: -1'));
    await gw.reload();
    assert.ok(warnings.some((l) => l.includes('api.yaml (document 1)') && l.includes('HTTPRoute default/api') && l.includes('weight')), 'the schema refusal names file, route and field');
    assert.equal(seen(await edge(https(), { servername: 'v1.api.example.test', path: '/v1/x' })).url, '/x', 'the api route still serves');
  });
});

void describe('ingress gateway limits and trusted trace context', () => {
  let small: IngressGateway;
  const spans = new InMemorySpanExporter();
  const lines: string[] = [];

  before(async () => {
    await mkdir(f('plain-routes'));
    await writeFile(f('plain-routes/all.yaml'), `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: inner, namespace: default }
spec:
  gatewayClassName: tracemesh
  listeners: [{ name: http, protocol: HTTP, port: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: all, namespace: default }
spec:
  parentRefs: [{ name: inner }]
  rules: [{ backendRefs: [{ name: shop, port: 80 }] }]
`);
    const [shop] = sidecars as [Sidecar];
    small = await startGateway(
      {
        sidecar: {
          service: 'inner-gateway',
          pod: 'inner-1',
          appPort: 1,
          outboundPort: 0,
          inboundPort: 0,
          adminPort: 0,
          bindAddress: '127.0.0.1',
          tlsCertFile: f('client.crt'),
          tlsKeyFile: f('client.key'),
          trustBundleFile: f('root-a.crt'),
          collectorEndpoint: '',
          routeFiles: [f('plain-routes')],
          drainTimeoutMs: 1000,
          limits: { requestHeadersTimeoutMs: 300, idleTimeoutMs: 400, maxConnections: 2 },
        },
        listenerPorts: { 8080: 0 },
        edgeTraceContext: 'trust',
      },
      {
        endpoints: new StaticEndpointSource(snapshotOf({ shop: [{ address: `127.0.0.1:${shop.inboundPort}`, pod: 'shop-1', identity: 'spiffe://cluster.local/ns/default/sa/api' }] })),
        logger: silentLogger,
        spanExporter: spans,
        accessLogSink: (l) => lines.push(l),
        exportDelayMs: 10,
      },
    );
  });

  after(async () => {
    await small?.close();
  });

  const port = (): number => small.ports.get(8080) ?? 0;
  const count = async (reason: string): Promise<number> => {
    const line = (await small.sidecar.registry.metrics()).split('\n').find((l) => l.startsWith('tracemesh_gateway_refusals_total{') && l.includes(`reason="${reason}"`));
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  /** A raw connection; resolves with what the gateway sent and how long until it closed. */
  const raw = (send: string | undefined): Promise<{ text: string; ms: number }> =>
    new Promise((resolve) => {
      const t0 = Date.now();
      let text = '';
      const s = netConnect(port(), '127.0.0.1', () => {
        if (send !== undefined) s.write(send);
      });
      s.on('data', (c: Buffer) => (text += c.toString()));
      s.on('error', () => {});
      s.on('close', () => resolve({ text, ms: Date.now() - t0 }));
    });

  void it('with --edge-trace-context trust continues the client\'s trace and keeps its x-request-id', async () => {
    const r = await httpRequest(port(), { path: '/t', headers: { host: 'anything.test', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'x-request-id': 'outside-id' } });
    const s = seen(r);
    assert.equal(s.headers['x-request-id'], 'outside-id');
    assert.equal(traceIdOf(r), '4bf92f3577b34da6a3ce929d0e0e4736');
    const edgeSpan = await waitFor(async () => {
      await small.flush();
      return spans.getFinishedSpans().find((x) => x.attributes['mesh.gateway'] === 'default/inner');
    }, 'the edge span');
    assert.equal(edgeSpan.parentSpanContext?.spanId, '00f067aa0ba902b7');
    const line = JSON.parse(await waitFor(() => lines.find((l) => l.includes('outside-id') && l.includes('"gateway":')), 'the edge access-log line')) as Record<string, unknown>;
    assert.equal(line['gateway'], 'default/inner');
    assert.equal(line['listener'], 'http');
    assert.equal(line['route'], 'HTTPRoute default/all');
    assert.equal(line['status'], 200);
    assert.equal(line['service'], 'shop');
  });

  void it('closes a request head that takes longer than --request-headers-timeout with 408, counted', async () => {
    const before = await count('deadline');
    const r = await raw('GET /slow HTTP/1.1\r\nhost: a.test\r\n');
    assert.match(r.text, /^HTTP\/1\.1 408/);
    assert.ok(r.ms < 5000, `closed after ${r.ms} ms`);
    assert.ok((await count('deadline')) > before);
    // A connection that never sends a byte is closed too.
    const silent = await raw(undefined);
    assert.ok(silent.ms < 5000, `a silent connection closed after ${silent.ms} ms`);
  });

  void it('closes a keep-alive connection idle for --idle-timeout', async () => {
    const r = await raw('GET /a HTTP/1.1\r\nhost: a.test\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 200/);
    assert.ok(r.ms >= 300 && r.ms < 5000, `closed after ${r.ms} ms`);
  });

  void it('closes connections over --max-downstream-connections at accept, counted', async () => {
    const before = await count('concurrency');
    const held = [netConnect(port(), '127.0.0.1'), netConnect(port(), '127.0.0.1')];
    for (const h of held) h.on('error', () => {});
    await Promise.all(held.map((h) => new Promise((resolve) => h.once('connect', resolve))));
    await new Promise((r) => setTimeout(r, 50));
    const third = await raw('GET / HTTP/1.1\r\nhost: a.test\r\n\r\n');
    assert.equal(third.text, '', 'the third connection got nothing');
    for (const h of held) h.destroy();
    await waitFor(async () => ((await count('concurrency')) > before ? true : undefined), 'the refusal counted');
  });
});
