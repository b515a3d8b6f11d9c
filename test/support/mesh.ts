// A small real mesh for end-to-end tests: demo apps (cli/demo/app.ts), each behind a real
// sidecar that exports to a real backend (collector + ClickHouse + query API, and the outcomes
// component when asked), with static endpoints. The root client is an instrumented app
// (the OTel SDK) whose CLIENT span starts every trace, so each request is one trace that
// begins outside the mesh.

import { request } from 'node:http';
import { SpanStatusCode } from '@opentelemetry/api';
import { startBackend, type Backend, type BackendOptions } from '../../cli/stack.ts';
import { startDemoApp, type DemoApp, type DemoAppOptions } from '../../cli/demo/app.ts';
import { createAppTracing, injectHeaders, SpanKind, type AppTracing } from '../../cli/demo/tracing.ts';
import { silentLogger } from '../../common/logger.ts';
import { snapshotOf, StaticEndpointSource } from '../../sidecar/endpoints/endpoints.ts';
import { startSidecar, type Sidecar, type SidecarOptions } from '../../sidecar/sidecar.ts';
import type { TestDatabase } from './clickhouse.ts';

export interface MeshPod {
  readonly service: string;
  readonly pod: string;
  readonly node: string;
  /** Services this pod's app calls, one after another, for each request. */
  readonly calls: readonly string[];
  /** Share (0..1) of requests the app answers with a 500; default 0. */
  readonly failRate?: number;
  /**
   * The app's options object itself, when the test changes them while it runs (failRate is
   * read per request). Its outboundPort is set once the sidecar is up.
   */
  readonly app?: DemoAppOptions;
}

export interface TestMeshOptions {
  readonly db: TestDatabase;
  readonly pods: readonly MeshPod[];
  /** Backend options beyond the database and loopback query port (collector, outcomes, …). */
  readonly backend?: Partial<Omit<BackendOptions, 'clickhouseUrl' | 'database'>>;
  /** Sidecar settings shared by every pod (lbPolicy, …). */
  readonly sidecar?: Partial<SidecarOptions>;
  /** The namespace of every pod; default `shop`. */
  readonly namespace?: string;
}

export interface TestMesh {
  readonly backend: Backend;
  readonly tracing: AppTracing;
  readonly apps: ReadonlyMap<string, DemoApp>;
  readonly sidecars: ReadonlyMap<string, Sidecar>;
  /**
   * Sends `GET /order` into the first pod's sidecar, as the root CLIENT span of a new trace;
   * the span records the status and is an error from 500 up.
   */
  send(headers?: Readonly<Record<string, string>>): Promise<{ traceId: string; status: number }>;
  close(): Promise<void>;
}

function get(port: number, headers: Readonly<Record<string, string>>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/order', headers: { host: 'a', ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Starts the backend, then every pod's app and sidecar in order; endpoints are set last. */
export async function startTestMesh(options: TestMeshOptions): Promise<TestMesh> {
  const namespace = options.namespace ?? 'shop';
  const apps = new Map<string, DemoApp>();
  const sidecars = new Map<string, Sidecar>();
  const endpoints = new StaticEndpointSource();
  let backend: Backend | undefined;
  let tracing: AppTracing | undefined;
  const close = async (): Promise<void> => {
    await tracing?.shutdown();
    for (const s of sidecars.values()) await s.close();
    for (const a of apps.values()) await a.close();
    await backend?.close();
  };
  try {
    backend = await startBackend({
      collector: { batchTimeoutMs: 200 },
      queryHost: '127.0.0.1',
      queryPort: 0,
      logger: silentLogger,
      ...options.backend,
      clickhouseUrl: options.db.url,
      database: options.db.database,
    });
    tracing = createAppTracing(backend.otlpGrpcEndpoint, { 'service.name': 'client' });
    for (const p of options.pods) {
      const app = await startDemoApp(p.app ?? { service: p.service, pod: p.pod, calls: p.calls, outboundPort: 0, failRate: p.failRate ?? 0, workMs: 0 });
      apps.set(p.pod, app);
      const sidecar = await startSidecar(
        {
          service: p.service,
          pod: p.pod,
          node: p.node,
          namespace,
          appPort: app.port(),
          outboundPort: 0,
          inboundPort: 0,
          adminPort: 0,
          bindAddress: '127.0.0.1',
          collectorEndpoint: backend.otlpGrpcEndpoint,
          accessLog: 'off',
          ...options.sidecar,
        },
        { endpoints, logger: silentLogger, exportDelayMs: 100 },
      );
      sidecars.set(p.pod, sidecar);
      app.options.outboundPort = sidecar.outboundPort;
    }
    const byService = new Map<string, { address: string; pod: string; node: string; namespace: string }[]>();
    for (const p of options.pods) {
      const list = byService.get(p.service) ?? [];
      list.push({ address: `127.0.0.1:${sidecars.get(p.pod)!.inboundPort}`, pod: p.pod, node: p.node, namespace });
      byService.set(p.service, list);
    }
    endpoints.set(snapshotOf(Object.fromEntries(byService)));
  } catch (err) {
    await close();
    throw err;
  }
  const entry = sidecars.get(options.pods[0]!.pod)!;
  const t = tracing;
  return {
    backend,
    tracing: t,
    apps,
    sidecars,
    close,
    async send(headers = {}) {
      const span = t.tracer.startSpan('GET /order', { kind: SpanKind.CLIENT });
      const status = await get(entry.inboundPort, { ...injectHeaders(span), ...headers });
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${status}` });
      span.end();
      return { traceId: span.spanContext().traceId, status };
    },
  };
}
