// The demo's application pods: small HTTP services that call their downstream services
// through their own sidecar's outbound listener and propagate the trace headers, as any
// meshed application must. Each pod can be told to fail a fraction of its requests or to
// stop listening for a while (a crashed process), so the demo has failures deep in the graph.

import { createServer, request, Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Tracer } from '@opentelemetry/api';
import { failSpan, SpanKind, startSpanFromHeaders } from './tracing.ts';

/** Headers an application copies from its inbound request to every outbound call. */
const PROPAGATED = ['traceparent', 'tracestate', 'baggage', 'x-request-id', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-sampled'];

export interface DemoAppOptions {
  readonly service: string;
  readonly pod: string;
  /** Downstream services called one after another for each request. */
  readonly calls: readonly string[];
  /** This pod's sidecar outbound port; set after the sidecar starts. */
  outboundPort: number;
  /** Fraction (0..1) of requests this pod answers with a 500 of its own. */
  readonly failRate: number;
  /** Simulated work per request, in ms. */
  readonly workMs: number;
  /** With this probability, first call another service's path directly (the demo's policy violation). */
  readonly sideCall?: { readonly service: string; readonly path: string; readonly probability: number };
  /** When set, the app records its own span (an instrumented app) for each request. */
  readonly tracer?: Tracer;
  /** Name of that span, e.g. `charge card`. */
  readonly operation?: string;
}

export interface DemoApp {
  readonly options: DemoAppOptions;
  port(): number;
  /** Stops listening (the sidecar then sees connection refused), keeping the port. */
  crash(): Promise<void>;
  /** Listens again on the same port. */
  recover(): Promise<void>;
  close(): Promise<void>;
}

function callDownstream(agent: Agent, port: number, service: string, req: IncomingMessage, path = req.url ?? '/'): Promise<number> {
  const headers: Record<string, string> = { host: service };
  for (const h of PROPAGATED) {
    const v = req.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  return new Promise((resolve) => {
    const out = request({ host: '127.0.0.1', port, path, method: 'GET', headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 502));
      res.on('error', () => resolve(502));
    });
    out.on('error', () => resolve(502));
    out.end();
  });
}

export async function startDemoApp(options: DemoAppOptions): Promise<DemoApp> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    req.resume();
    const span = options.tracer ? startSpanFromHeaders(options.tracer, options.operation ?? 'handle', req.headers, SpanKind.INTERNAL) : undefined;
    if (options.workMs > 0) await new Promise((r) => setTimeout(r, options.workMs * (0.5 + Math.random())));
    if (Math.random() < options.failRate) {
      const message = 'database connection pool exhausted (simulated)';
      if (span) {
        failSpan(span, new Error(message));
        span.end();
      }
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `${options.pod}: ${message}` }));
      return;
    }
    span?.end();
    const statuses: number[] = [];
    const side = options.sideCall;
    if (side && Math.random() < side.probability) statuses.push(await callDownstream(agent, options.outboundPort, side.service, req, side.path));
    // Any failed downstream call fails this request too: the app has no fallback.
    for (const service of options.calls) {
      if (statuses.some((s) => s >= 400)) break;
      statuses.push(await callDownstream(agent, options.outboundPort, service, req));
    }
    const failed = statuses.find((s) => s >= 400);
    res.writeHead(failed === undefined ? 200 : 502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ service: options.service, pod: options.pod, downstream: statuses }));
  };
  let server: Server = createServer((req, res) => void handler(req, res));
  const listen = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(0);
  const port = (server.address() as AddressInfo).port;
  const closeServer = (): Promise<void> =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  let down = false;
  return {
    options,
    port: () => port,
    crash: async () => {
      if (down) return;
      down = true;
      await closeServer();
    },
    recover: async () => {
      if (!down) return;
      server = createServer((req, res) => void handler(req, res));
      await listen(port);
      down = false;
    },
    close: async () => {
      agent.destroy();
      if (!down) await closeServer();
      down = true;
    },
  };
}
