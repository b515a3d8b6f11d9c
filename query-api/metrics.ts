// Prometheus metrics of the query API: requests by route pattern and status, and their
// latency. Each app gets its own Registry, so two apps in one process (tests) do not clash.

import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface QueryApiMetrics {
  readonly registry: Registry;
  readonly middleware: MiddlewareHandler;
  /** Counts a request answered outside the app (the HTTP layer's early shedding). */
  observe(labels: { method: string; route: string; status: string }, seconds: number): void;
}

export interface MetricsOptions {
  /** Process metrics (CPU, memory, event loop lag); default true. */
  readonly defaultMetrics?: boolean;
  readonly registry?: Registry;
}

export function createMetrics(options: MetricsOptions = {}): QueryApiMetrics {
  const registry = options.registry ?? new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const labelNames = ['method', 'route', 'status'] as const;
  const requests = new Counter({
    name: 'tracemesh_query_http_requests_total',
    help: 'HTTP requests served by the query API, by route pattern and status code.',
    labelNames,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'tracemesh_query_http_request_duration_seconds',
    help: 'Time to serve a query API request, by route pattern and status code.',
    labelNames,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const middleware: MiddlewareHandler = async (c, next) => {
    const started = process.hrtime.bigint();
    await next();
    // The matched pattern, not the raw path: ids in paths would explode the label set.
    const pattern = routePath(c, -1);
    const route = pattern === '*' || pattern === '/*' || pattern === '' ? 'unmatched' : pattern;
    const labels = { method: c.req.method, route, status: String(c.res.status) };
    requests.inc(labels);
    latency.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
  };
  const observe = (labels: { method: string; route: string; status: string }, seconds: number): void => {
    requests.inc(labels);
    latency.observe(labels, seconds);
  };
  return { registry, middleware, observe };
}
