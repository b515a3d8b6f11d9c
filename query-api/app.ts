// Assembles the query API: Jaeger-compatible routes, tracemesh's /api/v1 routes, the OpenAPI
// document, Prometheus metrics and readiness. Tests call the returned app in-process with
// `app.request('/path')`; main.ts serves it over HTTP.

import { Hono } from 'hono';
import type { Registry } from 'prom-client';
import type { Logger } from '../common/logger.ts';
import { silentLogger } from '../common/logger.ts';
import type { TraceReader } from '../storage/model.ts';
import type { OutcomeReader } from '../storage/outcomes/model.ts';
import { createQueryAdmission, DEFAULT_QUERY_ADMISSION_LIMITS, type QueryAdmission, type QueryAdmissionLimits } from './admission/admission.ts';
import { cachingServices } from './admission/services-cache.ts';
import { withoutAbortSignal } from '../storage/cancellation.ts';
import { ApiError, errorResponse } from './errors.ts';
import { createMetrics } from './metrics.ts';
import { openApiDocument } from './openapi.ts';
import { DEFAULT_MAX_RESPONSE_SPANS, DEFAULT_MAX_TRACE_LOGS, type SpanLimits } from './truncation.ts';
import { DEFAULT_MAX_TRACE_SPANS } from '../storage/reader.ts';
import { DEFAULT_MAX_PATH_SPANS } from './path/reconstruct.ts';
import { jaegerRoutes } from './routes/jaeger.ts';
import { jaegerV3Routes } from './routes/jaeger-v3.ts';
import { pathRoutes } from './routes/path.ts';
import { pathsRoutes } from './routes/paths.ts';
import { graphRoutes } from './routes/graph.ts';
import { uiRoutes } from './ui/serve.ts';
import type { CallGraphReader } from '../storage/calls.ts';

export interface QueryApiDeps {
  readonly reader: TraceReader;
  /** Trace outcomes for the failing-path routes; without it they answer 503. */
  readonly outcomes?: OutcomeReader;
  readonly logger?: Logger;
  /**
   * Readiness probe behind `/ready`, e.g. a ClickHouse ping. Default: always ready. A throw
   * counts as not ready.
   */
  readonly ready?: () => Promise<boolean>;
  /** Registry for the request metrics; default a fresh one (with process metrics). */
  readonly registry?: Registry;
  /** Current time in Unix nanoseconds, for default time ranges. Tests pin it. */
  readonly now?: () => bigint;
  /** Spans per trace used for path reconstruction (default 10 000). */
  readonly maxPathSpans?: number;
  /** A trace with a span that ended less than this many ms ago may still grow (default 10 000). */
  readonly quietPeriodMs?: number;
  /** Admission limits (query-api/admission/); defaults in DEFAULT_QUERY_ADMISSION_LIMITS. */
  readonly admission?: Partial<QueryAdmissionLimits>;
  /** The reader's cap on one trace (--max-trace-spans; default 100 000): told to the routes for their warnings. */
  readonly maxTraceSpans?: number;
  /** Spans of all traces in one answer (--max-response-spans; default 100 000). */
  readonly maxResponseSpans?: number;
  /** Log records of one trace in one answer (--max-trace-logs; default 10 000). */
  readonly maxTraceLogs?: number;
  /** How long `/ready` answers with the last probe's result (default 1 s; 0: probe on every request). */
  readonly readyCacheTtlMs?: number;
  /** How long `/api/services` and the operation lists answer from their cache (default 10 s; 0 turns the cache off). */
  readonly servicesCacheTtlMs?: number;
  /** Calls per service, workload or node for `/api/v1/graph`; without it only `by=service` (from the edges table). */
  readonly calls?: CallGraphReader;
  /** Directory of the built UI bundle (default query-api/ui/dist). */
  readonly uiDistDir?: string;
}

export interface QueryApp {
  readonly app: Hono;
  readonly registry: Registry;
  /** The admission layer; the HTTP server calls its fastShed before the app (main.ts). */
  readonly admission: QueryAdmission;
}

const nowNano = (): bigint => BigInt(Date.now()) * 1_000_000n;

/** The app and its metrics registry. */
export function createQueryApp(deps: QueryApiDeps): QueryApp {
  const logger = deps.logger ?? silentLogger;
  const now = deps.now ?? nowNano;
  const metrics = createMetrics(deps.registry ? { registry: deps.registry, defaultMetrics: false } : {});
  const app = new Hono();
  const reader = cachingServices(deps.reader, { ttlMs: deps.servicesCacheTtlMs ?? 10_000 });
  const admission = createQueryAdmission({ ...DEFAULT_QUERY_ADMISSION_LIMITS, ...deps.admission }, metrics.registry, logger, metrics.observe);

  // App-wide, before every route (routes added below are covered too): metrics first, so
  // that shed requests are counted, then admission.
  app.use('*', metrics.middleware);
  app.use('*', admission.middleware);
  app.onError((err, c) => errorResponse(c, err, logger));
  app.notFound((c) => errorResponse(c, new ApiError(404, 'ROUTE_NOT_FOUND', `no route for ${c.req.method} ${c.req.path}; see /openapi.json`), logger));

  const spanLimits: SpanLimits = { maxTraceSpans: deps.maxTraceSpans ?? DEFAULT_MAX_TRACE_SPANS, maxResponseSpans: deps.maxResponseSpans ?? DEFAULT_MAX_RESPONSE_SPANS };
  app.route('/', jaegerRoutes({ reader, now, spanLimits }));
  app.route('/', jaegerV3Routes({ reader, spanLimits }));
  app.route(
    '/',
    pathRoutes({
      reader,
      now,
      maxPathSpans: deps.maxPathSpans ?? DEFAULT_MAX_PATH_SPANS,
      quietPeriodNano: BigInt(deps.quietPeriodMs ?? 10_000) * 1_000_000n,
      spanLimits,
      maxTraceLogs: deps.maxTraceLogs ?? DEFAULT_MAX_TRACE_LOGS,
    }),
  );

  app.route('/', pathsRoutes({ outcomes: deps.outcomes, now }));
  app.route('/', graphRoutes({ reader, now, ...(deps.calls ? { calls: deps.calls } : {}) }));
  app.route('/', uiRoutes(deps.uiDistDir !== undefined ? { distDir: deps.uiDistDir } : {}));

  const document = openApiDocument();
  app.get('/openapi.json', (c) => c.json(document));

  app.get('/metrics', async (c) => {
    const body = await metrics.registry.metrics();
    return c.body(body, 200, { 'content-type': metrics.registry.contentType });
  });

  const readiness = cachedProbe(deps.ready, deps.readyCacheTtlMs ?? 1_000);
  app.get('/ready', async (c) => {
    const { ok, reason } = await readiness();
    return ok ? c.json({ status: 'ready' }) : c.json({ status: 'not ready', reason }, 503);
  });

  return { app, registry: metrics.registry, admission };
}

/**
 * The readiness probe, cached: one probe (a ClickHouse ping) runs at a time, shared by every
 * caller, and its answer is reused for `ttlMs`, so a burst of probes under load costs one ping.
 */
function cachedProbe(probe: (() => Promise<boolean>) | undefined, ttlMs: number): () => Promise<{ ok: boolean; reason: string }> {
  let last: { ok: boolean; reason: string; at: number } | undefined;
  let running: Promise<{ ok: boolean; reason: string }> | undefined;
  const run = async (): Promise<{ ok: boolean; reason: string }> => {
    if (probe === undefined) return { ok: true, reason: '' };
    try {
      return (await probe()) ? { ok: true, reason: '' } : { ok: false, reason: 'trace storage does not answer' };
    } catch (err) {
      return { ok: false, reason: `trace storage check failed: ${(err as Error).message}` };
    }
  };
  return () => {
    if (last !== undefined && Date.now() - last.at < ttlMs) return Promise.resolve(last);
    running ??= withoutAbortSignal(run).then((r) => {
      last = { ...r, at: Date.now() };
      running = undefined;
      return r;
    });
    return running;
  };
}

/** The app, for `app.request()` in tests and for serving. */
export function createApp(deps: QueryApiDeps): Hono {
  return createQueryApp(deps).app;
}
