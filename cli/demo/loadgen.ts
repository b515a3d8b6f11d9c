// Steady demo traffic: requests at a fixed rate to the frontend service, sent through the
// ingress sidecar's outbound listener. Each request is the
// root CLIENT span of its trace (service `loadgen`), so the demo knows the trace of every
// request that failed.

import { Agent, request } from 'node:http';
import { SpanStatusCode, type Tracer } from '@opentelemetry/api';
import { injectHeaders, SpanKind } from './tracing.ts';

export interface LoadResult {
  readonly traceId: string;
  readonly status: number;
  readonly ms: number;
}

export interface LoadGenerator {
  /** Stops sending and waits for requests in flight. Safe to call twice. */
  stop(): Promise<void>;
}

export function startLoad(tracer: Tracer, targets: readonly number[], ratePerSecond: number, onResult: (r: LoadResult) => void): LoadGenerator {
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  let inFlight = 0;
  let next = 0;
  let idle: (() => void) | undefined;
  const send = (): void => {
    const port = targets[next++ % targets.length];
    if (port === undefined) return;
    const span = tracer.startSpan('GET /checkout', {
      kind: SpanKind.CLIENT,
      attributes: { 'http.request.method': 'GET', 'url.path': '/checkout', 'server.address': 'frontend', 'server.port': port },
    });
    const traceId = span.spanContext().traceId;
    const started = performance.now();
    inFlight++;
    const done = (status: number): void => {
      if (status > 0) span.setAttribute('http.response.status_code', status);
      if (status >= 400 || status === 0) span.setStatus({ code: SpanStatusCode.ERROR, message: status === 0 ? 'request failed' : `HTTP ${status}` });
      span.end();
      inFlight--;
      onResult({ traceId, status, ms: performance.now() - started });
      if (inFlight === 0) idle?.();
    };
    const req = request({ host: '127.0.0.1', port, path: '/checkout', headers: { host: 'frontend', ...injectHeaders(span) }, agent }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode ?? 0));
      res.on('error', () => done(0));
    });
    req.setTimeout(30_000, () => req.destroy());
    req.on('error', () => done(0));
    req.end();
  };
  const timer = setInterval(send, Math.max(1, Math.round(1000 / ratePerSecond)));
  let stopping: Promise<void> | undefined;
  return {
    stop: () =>
      (stopping ??= (async () => {
        clearInterval(timer);
        if (inFlight > 0) await new Promise<void>((r) => (idle = r));
        agent.destroy();
      })()),
  };
}
