// Admission for the query API, app-wide middleware in front of every route (routes added later
// included): requests that reach trace storage share a small concurrency limit with a short,
// bounded queue that is fair across clients (fair-gate.ts: a per-client cap on running
// requests, round-robin across waiting clients, the heaviest client shed first when the queue
// is full); beyond it they get 503 with Retry-After at once. Cheap routes (readiness,
// metrics, the OpenAPI document, the cached service list, the UI's static files) run in a lane
// of their own, so a flood of expensive searches never delays them. The request's abort
// signal is handed to storage (storage/cancellation.ts), so a client that goes away cancels
// its ClickHouse statement.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../common/logger.ts';
import { withAbortSignal } from '../../storage/cancellation.ts';
import { ApiError, errorPayload, errorResponse, isStatementTimeout } from '../errors.ts';
import { FairGate, type GateRefusal } from './fair-gate.ts';

export type QueryRefusalReason = GateRefusal;
export type Lane = 'storage' | 'cheap';

export interface QueryAdmissionLimits {
  /** Requests of the storage lane running at once. Keep it below the ClickHouse client's socket pool. */
  readonly maxConcurrentQueries: number;
  /** Storage-lane requests that may wait for a slot; more get 503 at once. */
  readonly queueSize: number;
  /** Longest wait in the queue; then 503. */
  readonly queueTimeoutMs: number;
  /** Requests of the cheap lane running at once (no queue). */
  readonly maxConcurrentCheap: number;
  /** Storage-lane requests one client may run at once (default: defaultPerClient(maxConcurrentQueries), 6 of 8). */
  readonly maxQueriesPerClient?: number;
  /**
   * Header naming the client (e.g. `x-scope-orgid`, set by an authenticating proxy); without
   * it, or when a request lacks it, the client is its remote address.
   */
  readonly clientHeader?: string;
}

export const DEFAULT_QUERY_ADMISSION_LIMITS: QueryAdmissionLimits = {
  maxConcurrentQueries: 8,
  queueSize: 16,
  queueTimeoutMs: 2_000,
  maxConcurrentCheap: 64,
};

/** Retry hint of a refusal, in seconds. */
export const RETRY_AFTER_S = 1;

/** Paths answered without a storage statement (or from a cache): the cheap lane. */
const CHEAP_PATHS: ReadonlySet<string> = new Set(['/ready', '/live', '/metrics', '/openapi.json', '/api/services', '/api/v3/services', '/api/operations', '/api/v3/operations']);
/** Jaeger's per-service operation list (`/api/services/{service}/operations`), answered from a cache too. */
const OPERATIONS_PATH = /^\/api\/services\/[^/]+\/operations$/;

/** The lane of a request: every `/api/` route is a storage route unless it is listed as cheap. */
export function laneOf(path: string): Lane {
  if (CHEAP_PATHS.has(path) || OPERATIONS_PATH.test(path)) return 'cheap';
  return path.startsWith('/api/') ? 'storage' : 'cheap';
}

/** The `route` label of requests shed by fastShed, before any routing. */
export const SHED_ROUTE = 'shed';

export interface QueryAdmission {
  readonly middleware: MiddlewareHandler;
  /**
   * For the HTTP server, before the app sees the request: a storage-lane request that the gate
   * would refuse at once (queue full) is answered 503 + Retry-After here, with no Request object,
   * routing or middleware, and true is returned; otherwise false and nothing is done. A flood's
   * shed requests then cost little, so the cheap lane's requests between them wait for little.
   */
  fastShed(req: IncomingMessage, res: ServerResponse): boolean;
}

/** The admission middleware; its metrics go to `registry`. */
export function createQueryAdmission(
  limits: QueryAdmissionLimits,
  registry: Registry,
  logger: Logger,
  observe?: (labels: { method: string; route: string; status: string }, seconds: number) => void,
): QueryAdmission {
  const perClient = limits.maxQueriesPerClient ?? defaultPerClient(limits.maxConcurrentQueries);
  const gates: Record<Lane, FairGate> = {
    storage: new FairGate({ max: limits.maxConcurrentQueries, perClient, queueSize: limits.queueSize, queueTimeoutMs: limits.queueTimeoutMs }),
    cheap: new FairGate({ max: limits.maxConcurrentCheap, perClient: limits.maxConcurrentCheap, queueSize: 0, queueTimeoutMs: 0 }),
  };
  const clientHeader = limits.clientHeader?.toLowerCase();
  const refusals = new Counter({
    name: 'tracemesh_query_admission_refusals_total',
    help: 'Requests answered 503 at a limit, by lane (storage, cheap), reason and the flag of the limit: concurrency (--query-queue-size, --max-concurrent-cheap), deadline (--query-queue-timeout: waited for a slot; --query-timeout: a ClickHouse statement ran past max_execution_time).',
    labelNames: ['lane', 'reason', 'limit'],
    registers: [registry],
  });
  new Gauge({
    name: 'tracemesh_query_inflight_requests',
    help: 'Requests running, by admission lane.',
    labelNames: ['lane'],
    registers: [registry],
    collect() {
      this.set({ lane: 'storage' }, gates.storage.active);
      this.set({ lane: 'cheap' }, gates.cheap.active);
    },
  });
  new Gauge({
    name: 'tracemesh_query_storage_clients',
    help: 'Clients (remote addresses, or values of --query-client-header) with a storage-lane request running or waiting.',
    registers: [registry],
    collect() {
      this.set(gates.storage.clients);
    },
  });
  new Gauge({
    name: 'tracemesh_query_queued_requests',
    help: 'Storage-lane requests waiting for a slot.',
    registers: [registry],
    collect() {
      this.set(gates.storage.queued);
    },
  });
  const lastLog = new Map<string, number>();

  /** Counts and logs one refusal; its message. */
  const refused = (path: string, lane: Lane, reason: QueryRefusalReason, client: string): string => {
    refusals.inc({ lane, reason, limit: reason === 'deadline' ? 'query-queue-timeout' : lane === 'storage' ? 'query-queue-size' : 'max-concurrent-cheap' });
    const key = `${lane}/${reason}`;
    const now = Date.now();
    if (now - (lastLog.get(key) ?? 0) >= 10_000) {
      lastLog.set(key, now);
      logger.warn('query API shedding load', { lane, reason, path: path.slice(0, 256), client: client.slice(0, 64) });
    }
    return reason === 'concurrency'
      ? `the query API is busy (${lane === 'storage' ? `${limits.maxConcurrentQueries} queries running and ${limits.queueSize} waiting, at most ${perClient} running per client` : `${limits.maxConcurrentCheap} requests running`}); retry after ${RETRY_AFTER_S} s`
      : `the query API is busy (waited ${limits.queueTimeoutMs} ms for one of ${limits.maxConcurrentQueries} query slots, at most ${perClient} per client); retry after ${RETRY_AFTER_S} s`;
  };

  const refuse = (c: Context, lane: Lane, reason: QueryRefusalReason, client: string): Response => {
    const res = errorResponse(c, new ApiError(503, 'OVERLOADED', refused(c.req.path, lane, reason, client)), logger);
    res.headers.set('retry-after', String(RETRY_AFTER_S));
    return res;
  };

  const fastShed = (req: IncomingMessage, res: ServerResponse): boolean => {
    const started = process.hrtime.bigint();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (laneOf(path) !== 'storage') return false;
    const headerValue = clientHeader === undefined ? undefined : req.headers[clientHeader];
    const value = Array.isArray(headerValue) ? headerValue[0] : headerValue;
    const client = value !== undefined && value !== '' ? `h:${value.slice(0, MAX_CLIENT_KEY)}` : `a:${req.socket.remoteAddress ?? 'local'}`;
    if (!gates.storage.wouldRefuse(client)) return false;
    const body = JSON.stringify(errorPayload(path, 503, 'OVERLOADED', refused(path, 'storage', 'concurrency', client)));
    res.writeHead(503, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'retry-after': String(RETRY_AFTER_S) });
    res.end(body);
    observe?.({ method: req.method ?? 'GET', route: SHED_ROUTE, status: '503' }, Number(process.hrtime.bigint() - started) / 1e9);
    return true;
  };

  const middleware: MiddlewareHandler = async (c, next) => {
    const lane = laneOf(c.req.path);
    const gate = gates[lane];
    const signal = c.req.raw.signal as AbortSignal | undefined;
    const client = clientKey(c, clientHeader);
    const got = await gate.acquire(client, signal);
    if (got === 'gone') {
      // Nobody is listening; answer something cheap for the logs.
      c.res = new Response(null, { status: 499 as 400 });
      return;
    }
    if (got !== 'ok') {
      c.res = refuse(c, lane, got, client);
      return;
    }
    try {
      if (signal === undefined) await next();
      else await withAbortSignal(signal, next);
      // onError has answered 503 QUERY_TIMEOUT by now; the shed is counted here with the others.
      if (isStatementTimeout(c.error)) refusals.inc({ lane, reason: 'deadline', limit: 'query-timeout' });
    } finally {
      gate.release(client);
    }
  };
  return { middleware, fastShed };
}

/**
 * Three quarters of the query slots (6 of 8): one client alone (a browser, a Grafana server)
 * keeps most of the capacity, and a flooding client still leaves a quarter to everybody else.
 */
export function defaultPerClient(maxConcurrentQueries: number): number {
  return Math.max(1, maxConcurrentQueries - Math.ceil(maxConcurrentQueries / 4));
}

/** Longest client key kept (a header value is outside input). */
const MAX_CLIENT_KEY = 256;

/**
 * Who sent a request: the value of `header` when configured and present, else the remote
 * address (from @hono/node-server's `incoming` socket; `local` for in-process requests).
 */
export function clientKey(c: Context, header: string | undefined): string {
  if (header !== undefined) {
    const value = c.req.header(header);
    if (value !== undefined && value !== '') return `h:${value.slice(0, MAX_CLIENT_KEY)}`;
  }
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return `a:${env?.incoming?.socket?.remoteAddress ?? 'local'}`;
}
