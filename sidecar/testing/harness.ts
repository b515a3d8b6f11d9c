// Test harness for sidecar tests: real servers on port 0, a plain HTTP client, polling with a
// deadline, and sidecars wired to in-memory exporters. Used by sidecar/**/*.test.ts and
// test/sidecar-*.test.ts; not part of the runtime.

import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { InMemoryLogRecordExporter } from '@opentelemetry/sdk-logs';
import { silentLogger } from '../../common/logger.ts';
import { snapshotOf, StaticEndpointSource, type EndpointSpec } from '../endpoints/endpoints.ts';
import { startSidecar, type Sidecar, type SidecarDeps, type SidecarOptions } from '../sidecar.ts';

export interface TestServer {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/** Starts an HTTP server on 127.0.0.1:0. close() also cuts open connections. */
export async function startServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A loopback port with nothing listening on it (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = await startServer(() => {});
  await s.close();
  return s.port;
}

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One request on a fresh connection; rejects on a transport error (e.g. truncated body). */
export function httpRequest(
  port: number,
  o: { path?: string; method?: string; headers?: Record<string, string | string[]>; body?: string | Buffer } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: o.path ?? '/', method: o.method ?? 'GET', headers: o.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Polls `check` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(check: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface TestSidecar {
  readonly sidecar: Sidecar;
  readonly spans: InMemorySpanExporter;
  readonly logs: InMemoryLogRecordExporter;
  readonly accessLines: string[];
  readonly endpoints: StaticEndpointSource;
  /** Finished spans exported so far (flushes first). */
  finishedSpans(): Promise<ReadableSpan[]>;
  close(): Promise<void>;
}

/**
 * A sidecar on ephemeral loopback ports, with in-memory span/log exporters, captured
 * access-log lines and a StaticEndpointSource the test can change.
 */
export async function startTestSidecar(
  options: Partial<SidecarOptions> & { service: string; appPort: number },
  services: Readonly<Record<string, readonly EndpointSpec[]>> = {},
  shared?: { spans?: InMemorySpanExporter; logs?: InMemoryLogRecordExporter; accessLines?: string[] },
  deps: Pick<SidecarDeps, 'identity' | 'policies' | 'logger'> = {},
): Promise<TestSidecar> {
  const spans = shared?.spans ?? new InMemorySpanExporter();
  const logs = shared?.logs ?? new InMemoryLogRecordExporter();
  const accessLines = shared?.accessLines ?? [];
  const endpoints = new StaticEndpointSource(snapshotOf(services));
  const sidecar = await startSidecar(
    {
      pod: `${options.service}-1`,
      node: 'node-1',
      outboundPort: 0,
      inboundPort: 0,
      adminPort: 0,
      bindAddress: '127.0.0.1',
      collectorEndpoint: '',
      drainTimeoutMs: 1000,
      ...options,
    },
    { logger: silentLogger, endpoints, spanExporter: spans, logExporter: logs, exportDelayMs: 10, accessLogSink: (l) => accessLines.push(l), ...deps },
  );
  return {
    sidecar,
    spans,
    logs,
    accessLines,
    endpoints,
    async finishedSpans() {
      await sidecar.flush();
      return spans.getFinishedSpans();
    },
    close: () => sidecar.close(),
  };
}
