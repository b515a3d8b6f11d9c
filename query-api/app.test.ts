import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { silentLogger } from '../common/logger.ts';
import { createApp, createQueryApp } from './app.ts';
import { startQueryApi } from './main.ts';
import { MemoryTraceStore } from './memory-store.ts';
import { FAILING_TRACE, fixture } from './testing/fixtures.ts';

interface OpenApiDoc {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
}

void describe('OpenAPI document', () => {
  void it('documents every registered route', async () => {
    const app = createApp({ reader: new MemoryTraceStore() });
    const res = await app.request('/openapi.json');
    assert.equal(res.status, 200);
    const doc = (await res.json()) as OpenApiDoc;
    assert.equal(doc.openapi, '3.1.0');
    const routes = app.routes.filter((r) => r.method !== 'ALL');
    assert.ok(routes.length >= 12, `only ${routes.length} routes`);
    for (const r of routes) {
      const path = r.path.replace(/:([A-Za-z]+)/g, '{$1}');
      const op = doc.paths[path]?.[r.method.toLowerCase()];
      assert.ok(op, `${r.method} ${r.path} is not in the OpenAPI document`);
      assert.ok(op.responses['200'], `${r.method} ${r.path} documents no 200 response`);
    }
    // And nothing documented that is not served.
    const served = new Set(routes.map((r) => r.path.replace(/:([A-Za-z]+)/g, '{$1}')));
    for (const p of Object.keys(doc.paths)) assert.ok(served.has(p), `${p} is documented but not served`);
  });
});

void describe('metrics and readiness', () => {
  void it('counts requests by route pattern and status', async () => {
    const store = new MemoryTraceStore();
    await store.writeSpans(fixture().spans);
    const { app } = createQueryApp({ reader: store });
    await app.request(`/api/traces/${FAILING_TRACE}`);
    await app.request(`/api/traces/${'ab'.repeat(16)}`);
    await app.request('/no/such/route');
    const res = await app.request('/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const text = await res.text();
    assert.match(text, /tracemesh_query_http_requests_total\{method="GET",route="\/api\/traces\/:traceId",status="200"\} 1/);
    assert.match(text, /tracemesh_query_http_requests_total\{method="GET",route="\/api\/traces\/:traceId",status="404"\} 1/);
    assert.match(text, /tracemesh_query_http_requests_total\{method="GET",route="unmatched",status="404"\} 1/);
    assert.match(text, /tracemesh_query_http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/api\/traces\/:traceId",status="200"\}/);
    assert.match(text, /process_cpu_seconds_total/);
  });

  void it('answers unknown routes with a JSON 404', async () => {
    const app = createApp({ reader: new MemoryTraceStore() });
    const res = await app.request('/api/v1/nothing');
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { error: { status: 404, code: 'ROUTE_NOT_FOUND', message: 'no route for GET /api/v1/nothing; see /openapi.json' } });
  });

  void it('reports readiness from the probe', async () => {
    const reader = new MemoryTraceStore();
    assert.equal((await createApp({ reader }).request('/ready')).status, 200);
    const down = await createApp({ reader, ready: () => Promise.resolve(false) }).request('/ready');
    assert.equal(down.status, 503);
    assert.equal(((await down.json()) as { status: string }).status, 'not ready');
    const broken = await createApp({ reader, ready: () => Promise.reject(new Error('ECONNREFUSED')) }).request('/ready');
    assert.equal(broken.status, 503);
    assert.match(((await broken.json()) as { reason: string }).reason, /ECONNREFUSED/);
  });
});

void describe('HTTP server', () => {
  void it('serves on a free loopback port and closes cleanly', async () => {
    const store = new MemoryTraceStore();
    await store.writeSpans(fixture().spans);
    const server = await startQueryApi({ reader: store, logger: silentLogger, host: '127.0.0.1', port: 0 });
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await fetch(`${server.url}/api/v1/traces/${FAILING_TRACE}/path`);
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { rootCause: { pod: string } }).rootCause.pod, 'payments-1');
    } finally {
      await server.close();
      await server.close();
    }
    await assert.rejects(fetch(`${server.url}/ready`));
  });

  void it('prints its flags with --help', () => {
    const r = spawnSync(process.execPath, ['query-api/main.ts', '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage: tracemesh query-api/);
    for (const flag of ['--port', 'TRACEMESH_QUERY_PORT', 'default: 16686', '--host', 'default: 127.0.0.1', '--clickhouse-url', 'TRACEMESH_CLICKHOUSE_URL', '--clickhouse-database', 'default: tracemesh']) {
      assert.ok(r.stdout.includes(flag), `help mentions ${flag}`);
    }
  });

  void it('rejects bad flags with a message naming the flag', () => {
    const r = spawnSync(process.execPath, ['query-api/main.ts', '--port', 'http'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, TRACEMESH_CLICKHOUSE_URL: '' } });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--port must be a whole number, got "http" \[CONFIG_INVALID\]/);
    const range = spawnSync(process.execPath, ['query-api/main.ts', '--port', '70000'], { encoding: 'utf8', timeout: 30_000 });
    assert.match(range.stderr, /--port must be from 0 to 65535/);
  });
});

void describe('the cheap lane', () => {
  void it('answers the operation lists and /ready from caches: one storage read and one ping for a burst', async () => {
    const store = new MemoryTraceStore();
    await store.writeSpans(fixture().spans);
    let operationReads = 0;
    let pings = 0;
    const reader = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'getOperations') operationReads++;
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const { app } = createQueryApp({
      reader,
      ready: async () => {
        pings++;
        await new Promise((r) => setTimeout(r, 20));
        return true;
      },
    });
    const service = fixture().spans[0]!.serviceName;
    const answers = await Promise.all(Array.from({ length: 10 }, async () => app.request(`/api/services/${service}/operations`)));
    const bodies = await Promise.all(answers.map((r) => r.json() as Promise<{ data: string[] }>));
    assert.ok(bodies.every((b) => b.data.length > 0 && JSON.stringify(b) === JSON.stringify(bodies[0])));
    await app.request(`/api/operations?service=${service}&spanKind=server`);
    await app.request(`/api/services/${service}/operations`);
    assert.equal(operationReads, 2, 'one read per list (and span kind), shared by the burst');
    const ready = await Promise.all(Array.from({ length: 10 }, async () => app.request('/ready')));
    assert.ok(ready.every((r) => r.status === 200));
    assert.equal(pings, 1, 'one ping for the burst');
  });
});
