// Admin listener (default :15000), for probes, Prometheus and people:
//   GET /ready            200 "ready" while serving; 503 once shutdown began (readiness probe)
//   GET /live             200 while the process runs (liveness probe)
//   GET /metrics          Prometheus text exposition of this sidecar's registry
//   GET /debug/endpoints  JSON: the endpoint snapshot the balancer currently uses
//   GET /debug/identity   JSON: mTLS state: own SPIFFE ID, certificate serial and expiry, trust
//                         bundle roots, inbound mTLS mode, applicable policies, outbound connections
//   GET /debug/xds        JSON (with --control-plane): connection state, each type's ACKed version,
//                         every resource held with the version that last changed it, clusters with
//                         their peers' mTLS modes
//   GET /health/app       the sidecar's view of its app (--app-health-check): 200 healthy, 503
//                         unhealthy or not checked yet; {"status":"unchecked"} (200) without a check
//   GET /debug/clusters   JSON: per destination service: policy, endpoints (ejected or not),
//                         requests in flight and waiting, retries in flight, retry budget use

import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Registry } from 'prom-client';
import type { EndpointSnapshot } from '../endpoints/endpoints.ts';
import type { Refusals } from '../limits/limits.ts';

export interface AdminDeps {
  readonly registry: Registry;
  /** False once shutdown has begun. */
  ready(): boolean;
  endpoints(): EndpointSnapshot;
  /** The body of /debug/identity. */
  identity(): unknown;
  /** The body of /debug/xds (with --control-plane): config held and each resource's version. */
  xds?: () => unknown;
  /** Timeouts and the concurrency cap of this port; default: node's timeouts, no cap. */
  readonly limits?: { readonly requestHeadersTimeoutMs: number; readonly idleTimeoutMs: number; readonly maxConcurrentRequests: number };
  readonly refusals?: Refusals;
  /** The app's health as the active check sees it; undefined without a check. */
  appHealth?(): { readonly status: 'unknown' | 'healthy' | 'unhealthy'; readonly lastError: string | undefined; readonly lastCheckAt: Date | undefined } | undefined;
  /** The body of /debug/clusters. */
  clusters?(): unknown;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function createAdminServer(deps: AdminDeps): Server {
  const limits = deps.limits;
  let inFlight = 0;
  // Header and request timeouts are checked every second (node's default interval is 30 s).
  const server = createServer({ connectionsCheckingInterval: 1_000 }, (req: IncomingMessage, res: ServerResponse) => {
    if (limits !== undefined && inFlight >= limits.maxConcurrentRequests) {
      deps.refusals?.refused('admin', 'max-concurrent-requests', 'request');
      res.setHeader('retry-after', '1');
      send(res, 503, 'text/plain', `the admin port is serving ${limits.maxConcurrentRequests} requests already; retry after 1 s\n`);
      return;
    }
    inFlight++;
    res.once('close', () => inFlight--);
    serve(deps, req, res);
  });
  if (limits !== undefined) {
    server.headersTimeout = limits.requestHeadersTimeoutMs;
    server.requestTimeout = limits.requestHeadersTimeoutMs + 10_000;
    server.keepAliveTimeout = Math.min(limits.idleTimeoutMs, 5_000);
    server.setTimeout(limits.idleTimeoutMs);
    // With a listener, node leaves the socket to us: an idle connection (no request for
    // --idle-timeout, or kept alive and unused past the keep-alive timeout) is cut and counted.
    server.on('timeout', (socket: Socket) => {
      deps.refusals?.refused('admin', 'idle-timeout', 'connection');
      socket.destroy();
    });
  }
  // What node would answer by itself, plus the count: a head that took longer than
  // --request-headers-timeout (or a request longer than its limit) is a refusal.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') deps.refusals?.refused('admin', 'request-headers-timeout', 'request head');
    if (socket.writable && socket.bytesWritten === 0) {
      const status = CLIENT_ERROR_STATUS.get(err.code ?? '') ?? 400;
      socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Bad Request'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    }
    socket.destroy();
  });
  return server;
}

/** The answer node gives a client error (lib/_http_server.js); anything else is a 400. */
const CLIENT_ERROR_STATUS: ReadonlyMap<string, number> = new Map([
  ['ERR_HTTP_REQUEST_TIMEOUT', 408],
  ['HPE_HEADER_OVERFLOW', 431],
  ['HPE_CHUNK_EXTENSIONS_OVERFLOW', 413],
]);

function serve(deps: AdminDeps, req: IncomingMessage, res: ServerResponse): void {
  {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain', 'only GET\n');
      return;
    }
    switch (path) {
      case '/ready':
        if (deps.ready()) send(res, 200, 'text/plain', 'ready\n');
        else send(res, 503, 'text/plain', 'shutting down\n');
        return;
      case '/live':
        send(res, 200, 'text/plain', 'live\n');
        return;
      case '/metrics':
        deps.registry.metrics().then(
          (text) => send(res, 200, deps.registry.contentType, text),
          (err: unknown) => send(res, 500, 'text/plain', `metrics failed: ${(err as Error).message}\n`),
        );
        return;
      case '/debug/endpoints': {
        const services: Record<string, unknown> = {};
        for (const [name, eps] of deps.endpoints()) services[name] = eps;
        send(res, 200, 'application/json', JSON.stringify({ services }, null, 2) + '\n');
        return;
      }
      case '/debug/xds':
        if (deps.xds === undefined) send(res, 404, 'text/plain', 'no control plane: this sidecar runs without --control-plane\n');
        else send(res, 200, 'application/json', JSON.stringify(deps.xds(), null, 2) + '\n');
        return;
      case '/health/app': {
        const h = deps.appHealth?.();
        if (h === undefined) {
          send(res, 200, 'application/json', JSON.stringify({ status: 'unchecked' }) + '\n');
          return;
        }
        const body = JSON.stringify({ status: h.status, lastError: h.lastError ?? null, lastCheckAt: h.lastCheckAt?.toISOString() ?? null }) + '\n';
        send(res, h.status === 'healthy' ? 200 : 503, 'application/json', body);
        return;
      }
      case '/debug/clusters':
        send(res, 200, 'application/json', JSON.stringify(deps.clusters?.() ?? {}, null, 2) + '\n');
        return;
      case '/debug/identity':
        send(res, 200, 'application/json', JSON.stringify(deps.identity(), null, 2) + '\n');
        return;
      default:
        send(res, 404, 'text/plain', 'not found; try /ready, /live, /metrics, /health/app, /debug/endpoints, /debug/clusters or /debug/identity\n');
    }
  }
}
