// End to end: a 3-hop chain through real sidecars, the real collector, ClickHouse and the
// query API. The deepest pod fails; the path endpoint must name that pod and its node as the
// root cause, and the Jaeger endpoint must return every hop in one trace.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { SpanStatusCode } from '@opentelemetry/api';
import { silentLogger } from '../common/logger.ts';
import { startBackend, type Backend } from '../cli/stack.ts';
import { startDemoApp, type DemoApp } from '../cli/demo/app.ts';
import { createAppTracing, injectHeaders, SpanKind, type AppTracing } from '../cli/demo/tracing.ts';
import { snapshotOf, StaticEndpointSource } from '../sidecar/endpoints/endpoints.ts';
import { startSidecar, type Sidecar } from '../sidecar/sidecar.ts';
import type { TracePath } from '../query-api/path/model.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';

interface JaegerTrace {
  traceID: string;
  spans: { traceID: string; spanID: string; processID: string; references: { spanID: string }[]; tags: { key: string; value: unknown }[] }[];
  processes: Record<string, { serviceName: string; tags: { key: string; value: unknown }[] }>;
}

function get(port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/order', headers: { host: 'a', ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

void describe('failing path across three pods', () => {
  let db: TestDatabase;
  let backend: Backend;
  let tracing: AppTracing;
  const apps = new Map<string, DemoApp>();
  const sidecars = new Map<string, Sidecar>();
  const endpoints = new StaticEndpointSource();

  before(async () => {
    db = await createTestDatabase();
    backend = await startBackend({
      clickhouseUrl: db.url,
      database: db.database,
      collector: { batchTimeoutMs: 200 },
      queryHost: '127.0.0.1',
      queryPort: 0,
      logger: silentLogger,
    });
    tracing = createAppTracing(backend.otlpGrpcEndpoint, { 'service.name': 'client' });
    // a-1 (node-1) calls b, b-1 (node-2) calls c, c-1 (node-3) fails every request.
    const chain = [
      { service: 'a', pod: 'a-1', node: 'node-1', calls: ['b'], failRate: 0 },
      { service: 'b', pod: 'b-1', node: 'node-2', calls: ['c'], failRate: 0 },
      { service: 'c', pod: 'c-1', node: 'node-3', calls: [], failRate: 1 },
    ];
    for (const p of chain) {
      const app = await startDemoApp({ service: p.service, pod: p.pod, calls: p.calls, outboundPort: 0, failRate: p.failRate, workMs: 0 });
      const sidecar = await startSidecar(
        {
          service: p.service,
          pod: p.pod,
          node: p.node,
          namespace: 'shop',
          appPort: app.port(),
          outboundPort: 0,
          inboundPort: 0,
          adminPort: 0,
          bindAddress: '127.0.0.1',
          collectorEndpoint: backend.otlpGrpcEndpoint,
          accessLog: 'off',
        },
        { endpoints, logger: silentLogger, exportDelayMs: 100 },
      );
      app.options.outboundPort = sidecar.outboundPort;
      apps.set(p.pod, app);
      sidecars.set(p.pod, sidecar);
    }
    const ep = (pod: string, node: string): { address: string; pod: string; node: string; namespace: string } => ({
      address: `127.0.0.1:${sidecars.get(pod)!.inboundPort}`,
      pod,
      node,
      namespace: 'shop',
    });
    endpoints.set(snapshotOf({ b: [ep('b-1', 'node-2')], c: [ep('c-1', 'node-3')] }));
  });

  after(async () => {
    await tracing?.shutdown();
    for (const s of sidecars.values()) await s.close();
    for (const a of apps.values()) await a.close();
    await backend?.close();
    await db?.drop();
  });

  /** Sends one request into a-1 as the root CLIENT span of a new trace; returns its id and status. */
  async function send(): Promise<{ traceId: string; status: number }> {
    const span = tracing.tracer.startSpan('GET /order', { kind: SpanKind.CLIENT });
    const status = await get(sidecars.get('a-1')!.inboundPort, injectHeaders(span));
    span.setAttribute('http.response.status_code', status);
    if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${status}` });
    span.end();
    return { traceId: span.spanContext().traceId, status };
  }

  async function pathOf(traceId: string, spans: number): Promise<TracePath> {
    await tracing.forceFlush();
    return eventually(
      async () => {
        const res = await fetch(`${backend.queryApi.url}/api/v1/traces/${traceId}/path`);
        return res.ok ? ((await res.json()) as TracePath) : undefined;
      },
      (p) => p !== undefined && p.spanCount >= spans,
      20_000,
      `all ${spans} spans of trace ${traceId} in the path`,
    ) as Promise<TracePath>;
  }

  void it('names the deepest pod and its node as the root cause of a 500', async () => {
    const { traceId, status } = await send();
    assert.equal(status, 502, 'a-1 relays the failure from below');
    // client span + (outbound CLIENT + inbound SERVER) for a→b and b→c + inbound SERVER of a = 6
    const path = await pathOf(traceId, 6);
    assert.equal(path.status, 'error');
    assert.ok(path.rootCause, 'a root cause is named');
    assert.equal(path.rootCause.service, 'c');
    assert.equal(path.rootCause.pod, 'c-1');
    assert.equal(path.rootCause.node, 'node-3');
    assert.equal(path.rootCause.namespace, 'shop');
    assert.equal(path.rootCause.httpStatus, 500);
    assert.equal(path.rootCause.observedBy?.pod, 'c-1', 'the sidecar that saw the app\'s 500 is c-1\'s');
    assert.equal(path.rootCause.observedBy?.direction, 'inbound');
    // The relaying hops are on the failure path but are not the cause.
    const flat: TracePath['hops'] = [];
    const walk = (h: TracePath['hops'][number]): void => {
      flat.push(h);
      h.children.forEach(walk);
    };
    path.hops.forEach(walk);
    const byPod = new Map(flat.map((h) => [h.pod, h]));
    for (const [pod, node] of [['a-1', 'node-1'], ['b-1', 'node-2'], ['c-1', 'node-3']] as const) {
      const hop = byPod.get(pod);
      assert.ok(hop, `hop of ${pod} present`);
      assert.equal(hop.node, node);
      assert.equal(hop.status, 'error');
      assert.equal(hop.onFailurePath, true);
    }
    assert.equal(byPod.get('c-1')?.peer?.pod ?? byPod.get('c-1')?.call?.caller?.pod, 'b-1');
  });

  void it('returns every hop of the trace in one Jaeger trace', async () => {
    const { traceId } = await send();
    await pathOf(traceId, 6);
    const res = await fetch(`${backend.queryApi.url}/api/traces/${traceId}`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { data: JaegerTrace[] };
    assert.equal(body.data.length, 1, 'one trace');
    const trace = body.data[0]!;
    assert.equal(trace.traceID, traceId);
    assert.equal(trace.spans.length, 6);
    for (const s of trace.spans) assert.equal(s.traceID, traceId);
    const services = new Set(trace.spans.map((s) => trace.processes[s.processID]?.serviceName));
    assert.deepEqual([...services].sort(), ['a', 'b', 'c', 'client']);
    // Every span but the client's root has its parent in the trace: the hops are linked.
    const ids = new Set(trace.spans.map((s) => s.spanID));
    const orphans = trace.spans.filter((s) => s.references.length > 0 && !ids.has(s.references[0]!.spanID));
    assert.deepEqual(orphans, []);
    const pods = new Set(Object.values(trace.processes).flatMap((p) => p.tags.filter((t) => t.key === 'k8s.pod.name').map((t) => t.value)));
    assert.deepEqual([...pods].sort(), ['a-1', 'b-1', 'c-1']);
  });

  void it('names an unreachable pod when its process is down (connection refused)', async () => {
    const c = apps.get('c-1')!;
    await c.crash();
    try {
      const { traceId, status } = await send();
      assert.equal(status, 502);
      const path = await pathOf(traceId, 6);
      assert.ok(path.rootCause);
      assert.equal(path.rootCause.pod, 'c-1');
      assert.equal(path.rootCause.node, 'node-3');
      assert.equal(path.rootCause.meshErrorCode, 'CONNECTION_REFUSED');
    } finally {
      await c.recover();
    }
  });
});
