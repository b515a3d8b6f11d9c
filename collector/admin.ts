// Admin endpoints on their own port (default 13133, the OpenTelemetry Collector's health
// check port):
//   GET /metrics  Prometheus exposition of the collector's registry.
//   GET /ready    200 once the receivers listen, 503 while starting or shutting down; for
//                 Kubernetes readiness probes and load balancers.
//   GET /healthz  200 while the process serves at all; for liveness probes.
//   GET /         Plain-text list of these endpoints.

import { Hono } from 'hono';
import type { Registry } from 'prom-client';

export interface AdminAppDeps {
  readonly registry: Registry;
  /** True while the collector takes OTLP requests. */
  readonly isReady: () => boolean;
}

export function createAdminApp(deps: AdminAppDeps): Hono {
  const app = new Hono();
  app.get('/metrics', async (c) => c.body(await deps.registry.metrics(), 200, { 'content-type': deps.registry.contentType }));
  app.get('/ready', (c) => (deps.isReady() ? c.text('ready\n') : c.text('not ready\n', 503)));
  app.get('/healthz', (c) => c.text('ok\n'));
  app.get('/', (c) =>
    c.text('tracemesh collector admin\n  /metrics  Prometheus metrics\n  /ready    readiness (503 while starting or shutting down)\n  /healthz  liveness\n'),
  );
  return app;
}
