// Assembles one sidecar: endpoints → balancer → outbound listener; inbound listener → local
// app; span, access log and metrics observers on both; admin listener; orderly shutdown.

import { Agent, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { LogRecordExporter } from '@opentelemetry/sdk-logs';
import { createLogger, type Logger } from '../common/logger.ts';
import { createAdminServer } from './admin/admin.ts';
import { Balancer } from './balancer/balancer.ts';
import { resolveConfig, type SidecarConfig, type SidecarOptions } from './config.ts';
import { StaticEndpointSource, type EndpointSource } from './endpoints/endpoints.ts';
import { FileEndpointSource } from './endpoints/file-source.ts';
import { ListenError, type Hop } from './errors.ts';
import { createInboundServer } from './inbound/inbound.ts';
import { createOutboundServer } from './outbound/outbound.ts';
import { InFlight, type ExchangeObserver, type ProxyContext } from './proxy/exchange.ts';
import { AccessLog, FdLineSink, type AccessLogSink } from './telemetry/access-log.ts';
import { SidecarMetrics } from './telemetry/metrics.ts';
import { SpanRecorder } from './telemetry/spans.ts';
import { createTelemetry } from './telemetry/telemetry.ts';

export type { SidecarOptions, SidecarConfig } from './config.ts';

/** What startSidecar may be given instead of its defaults; tests inject here. */
export interface SidecarDeps {
  /** Operational log (JSON lines on stderr by default). */
  readonly logger?: Logger;
  /** Endpoint source; overrides `endpointsFile`. The caller keeps ownership (not closed by close()). */
  readonly endpoints?: EndpointSource;
  /** Span exporter instead of OTLP/gRPC, e.g. an InMemorySpanExporter. */
  readonly spanExporter?: SpanExporter;
  /** Log exporter instead of OTLP/gRPC, e.g. an InMemoryLogRecordExporter. */
  readonly logExporter?: LogRecordExporter;
  /** Batch export delay; default 1000 ms. Tests set it low. */
  readonly exportDelayMs?: number;
  /** Access-log line sink; overrides `accessLog`. */
  readonly accessLogSink?: AccessLogSink;
}

export interface Sidecar {
  /** Actual ports (useful when 0 was configured). */
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly adminPort: number;
  readonly config: SidecarConfig;
  /** This sidecar's Prometheus registry. */
  readonly registry: Registry;
  /** Exports all finished spans and log records now. */
  flush(): Promise<void>;
  /**
   * Stops accepting, lets in-flight requests finish for up to `drainTimeoutMs`, then cuts
   * the rest, flushes and shuts down telemetry. Safe to call twice (same promise).
   */
  close(): Promise<void>;
}

function listen(server: Server, port: number, host: string, flag: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new ListenError(`cannot listen on ${host}:${port}: ${err.message}; choose another --${flag}`, { cause: err }));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.removeListener('error', onError);
      server.on('error', () => {}); // post-listen server errors are per-connection; never crash on them
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
}

function withDeadline(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Starts a sidecar. Rejects with ConfigError or ListenError, leaving nothing running. */
export async function startSidecar(options: SidecarOptions, deps: SidecarDeps = {}): Promise<Sidecar> {
  const config = resolveConfig(options);
  const logger = (deps.logger ?? createLogger({ component: 'sidecar' })).child({ service: config.service, pod: config.pod });
  const hop: Hop = { service: config.service, pod: config.pod };
  const metrics = new SidecarMetrics();

  let endpoints: EndpointSource;
  let ownsEndpoints = false;
  if (deps.endpoints !== undefined) {
    endpoints = deps.endpoints;
  } else if (config.endpointsFile !== '') {
    endpoints = await FileEndpointSource.open(config.endpointsFile, { logger, onReload: (result) => metrics.reloads.inc({ result }) });
    ownsEndpoints = true;
  } else {
    endpoints = new StaticEndpointSource();
    ownsEndpoints = true;
  }
  const balancer = new Balancer(endpoints);

  const telemetry = createTelemetry({
    service: config.service,
    pod: config.pod,
    namespace: config.namespace,
    node: config.node,
    samplingRatio: config.samplingRatio,
    collectorEndpoint: config.collectorEndpoint,
    spanExporter: deps.spanExporter,
    logExporter: deps.logExporter,
    exportDelayMs: deps.exportDelayMs,
  });
  const stdoutSink = deps.accessLogSink === undefined && config.accessLog === 'stdout' ? new FdLineSink(1) : undefined;
  const observers: readonly ExchangeObserver[] = [
    new SpanRecorder(),
    new AccessLog({ sink: deps.accessLogSink ?? stdoutSink?.write, logger: telemetry.logger }),
    metrics,
  ];

  const inFlight = new InFlight();
  const agentOptions = { keepAlive: true, scheduling: 'lifo' as const, maxFreeSockets: 256 };
  const outboundAgent = new Agent(agentOptions);
  const inboundAgent = new Agent(agentOptions);
  const base = { hop, tracer: telemetry.tracer, upstreamTimeoutMs: config.upstreamTimeoutMs, observers, inFlight };
  const outboundCtx: ProxyContext = { ...base, direction: 'outbound', agent: outboundAgent };
  const inboundCtx: ProxyContext = { ...base, direction: 'inbound', agent: inboundAgent };

  const outbound = createOutboundServer(outboundCtx, balancer);
  const inbound = createInboundServer(inboundCtx, config.appPort);
  let closing = false;
  const admin = createAdminServer({ registry: metrics.registry, ready: () => !closing, endpoints: () => endpoints.current() });

  async function teardown(): Promise<void> {
    closing = true;
    const stopped = Promise.all([closeServer(outbound), closeServer(inbound)]);
    if (!(await inFlight.drained(config.drainTimeoutMs))) {
      logger.warn('shutdown deadline passed; cutting in-flight requests', { inFlight: inFlight.count });
    }
    outbound.closeAllConnections();
    inbound.closeAllConnections();
    await stopped;
    // Cut exchanges finish their span and access log on the close events just triggered.
    await inFlight.drained(100);
    outboundAgent.destroy();
    inboundAgent.destroy();
    balancer.close();
    if (ownsEndpoints) endpoints.close();
    if (!(await withDeadline(telemetry.shutdown(), config.drainTimeoutMs))) {
      logger.warn('telemetry export did not finish before the deadline; some spans may be lost', { collector: config.collectorEndpoint });
    }
    if (stdoutSink !== undefined) await withDeadline(stdoutSink.drain(), config.drainTimeoutMs);
    const adminClosed = closeServer(admin);
    admin.closeAllConnections();
    await adminClosed;
  }

  let outboundPort: number;
  let inboundPort: number;
  let adminPort: number;
  try {
    outboundPort = await listen(outbound, config.outboundPort, '127.0.0.1', 'outbound-port');
    inboundPort = await listen(inbound, config.inboundPort, config.bindAddress, 'inbound-port');
    adminPort = await listen(admin, config.adminPort, config.bindAddress, 'admin-port');
  } catch (err) {
    await teardown();
    throw err;
  }

  let closed: Promise<void> | undefined;
  return {
    outboundPort,
    inboundPort,
    adminPort,
    config,
    registry: metrics.registry,
    flush: () => telemetry.forceFlush(),
    close() {
      closed ??= teardown();
      return closed;
    },
  };
}
