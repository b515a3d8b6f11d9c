// Assembles one sidecar: endpoints → balancer → outbound listener (→ HTTP/2 over mTLS to peer
// sidecars when the workload has an identity); inbound listener (TLS/plaintext by mode,
// peer verification, authorization) → local app; span, access log and metrics observers on
// both; admin listener; orderly shutdown.

import { X509Certificate } from 'node:crypto';
import { Agent } from 'node:http';
import { ClusterManager } from './balancer/cluster.ts';
import { AppHealth, parseHealthCheck } from './resilience/app-health.ts';
import { EndpointHealthChecker, parseEndpointHealthCheck } from './resilience/health-check.ts';
import { OutlierDetector } from './resilience/outlier.ts';
import { parseRetryOn, type RetryBudget } from './resilience/retry-policy.ts';
import type { HopScope } from './chain/hop.ts';
import { InFlight } from './chain/layers/telemetry.ts';
import { inboundStack, outboundStack } from './chain/stacks.ts';
import { createProxyHandler } from './proxy/handler.ts';
import type { Http2SecureServer } from 'node:http2';
import type { AddressInfo, Server } from 'node:net';
import type { Registry } from 'prom-client';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { LogRecordExporter } from '@opentelemetry/sdk-logs';
import { createLogger, type Logger } from '../common/logger.ts';
import { createAdminServer } from './admin/admin.ts';
import { ADMIN_LIMITS, capConnections, concurrencyLayer, limitH2Idle, Refusals, RequestGate } from './limits/limits.ts';
import { resolveConfig, type SidecarConfig, type SidecarOptions } from './config.ts';
import { StaticEndpointSource, type EndpointSource } from './endpoints/endpoints.ts';
import { FileEndpointSource } from './endpoints/file-source.ts';
import { ListenError, type Hop } from './errors.ts';
import { caClientFromFlags, CaIdentitySource } from './identity/ca-source.ts';
import { FileIdentitySource } from './identity/file-source.ts';
import type { IdentitySource } from './identity/identity.ts';
import { InboundPolicy, type PolicySetSource } from './inbound/authorization.ts';
import { createInboundListener } from './inbound/inbound.ts';
import { createOutboundListener } from './outbound/outbound.ts';
import { PolicyWatcher } from '../common/policy/load.ts';
import { watchRoutes, type LoadedRoutes } from '../common/routes/load.ts';
import type { WatchedSource } from '../common/watched-source.ts';
import type { ProxyContext } from './proxy/exchange.ts';
import { ProxyListener } from './proxy/listener.ts';
import { AccessLog, FdLineSink, type AccessLogSink } from './telemetry/access-log.ts';
import { SidecarMetrics } from './telemetry/metrics.ts';
import { SpanRecorder } from './telemetry/spans.ts';
import { createTelemetry } from './telemetry/telemetry.ts';
import { HandshakeFailureRecorder } from './telemetry/tls-failures.ts';
import { MeshTls } from './transport/credentials.ts';
import { H2Pool } from './transport/h2-pool.ts';
import { MeshInboundListener } from './transport/inbound-listener.ts';
import { ConfigError } from '../common/errors.ts';
import { H1Listener, type DownstreamSecurity } from './h1/engine.ts';
import { TcpOutboundListener } from './tcp/outbound.ts';
import { UpstreamPool } from './h1/pool.ts';
import type { HopObserver } from './telemetry/hop.ts';
import type { Socket } from 'node:net';
import { controlPlaneSpiffeId } from './identity/ca-source.ts';
import { XdsClient } from './xds/client.ts';

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
  /**
   * Workload identity instead of the CA or files the options name (turns mTLS on): e.g. a
   * CaIdentitySource over a test CA, or a StaticIdentitySource. The caller keeps ownership.
   */
  readonly identity?: IdentitySource;
  /** Policy sets instead of `policyFiles` (turns authorization on). The caller keeps ownership. */
  readonly policies?: PolicySetSource;
}

export interface Sidecar {
  /** Actual ports (useful when 0 was configured). */
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly adminPort: number;
  /** The bound port of each `--tcp-listeners` entry, in their order. */
  readonly tcpPorts: readonly number[];
  readonly config: SidecarConfig;
  /** This sidecar's Prometheus registry. */
  readonly registry: Registry;
  /** mTLS state; undefined for a plaintext mesh. */
  readonly tls: MeshTls | undefined;
  /**
   * The inbound TLS server when mTLS is on (for diagnostics and tests: one `secureConnection`
   * per peer connection). Never call listen() on it: the inbound port hands sockets to it.
   */
  readonly inboundTlsServer: Http2SecureServer | undefined;
  /** Outbound HTTP/2 connection pool when mTLS is on (HTTP/2 and gRPC requests). */
  readonly outboundPool: H2Pool | undefined;
  /** Outbound HTTP/1.1 keep-alive connections to peer sidecars (mTLS when on). */
  readonly outboundH1Pool: UpstreamPool;
  /** The inbound policy state (authorizer, mTLS mode). */
  readonly policy: InboundPolicy;
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

/** The body of /debug/identity. */
function identityReport(tls: MeshTls | undefined, policy: InboundPolicy, pool: H2Pool | undefined, h1Pool: UpstreamPool): unknown {
  const policies = policy.authorizer === undefined ? null : policy.authorizer.applicable;
  if (tls === undefined) return { mtls: false, inboundMtlsMode: null, policies };
  const id = tls.identity;
  return {
    mtls: true,
    spiffeId: id.spiffeId,
    trustDomain: tls.trustDomain,
    serialNumber: id.serialNumber,
    notBefore: id.notBefore.toISOString(),
    notAfter: id.notAfter.toISOString(),
    generation: tls.generation,
    trustBundle: id.trustBundlePem.map((pem) => {
      const x = new X509Certificate(pem);
      return { subject: x.subject, fingerprintSha256: x.fingerprint256, notAfter: x.validToDate.toISOString() };
    }),
    inboundMtlsMode: policy.mode,
    peerAuthentication: policy.modes?.sources ?? null,
    policies,
    // HTTP/2 connections (HTTP/2 and gRPC traffic), then HTTP/1.1 keep-alive connections.
    outboundConnections: [...(pool?.snapshot() ?? []).map((c) => ({ protocol: 'h2', ...c })), ...h1Pool.snapshot().map((c) => ({ protocol: 'http/1.1', ...c }))],
  };
}

/** The xDS client of a sidecar given --control-plane; the stream opens in start(). */
function createXdsClient(config: SidecarConfig, logger: Logger, tls: () => MeshTls | undefined): XdsClient {
  const trustDomain = config.trustDomain !== '' ? config.trustDomain : 'cluster.local';
  return new XdsClient({
    address: config.controlPlane,
    transport: config.controlPlanePlaintext
      ? { kind: 'plaintext' }
      : {
          kind: 'mtls',
          identity: () => {
            const t = tls();
            if (t === undefined) throw new ConfigError('xDS over mTLS needs the workload identity');
            return t.identity;
          },
          serverSpiffeId: controlPlaneSpiffeId(trustDomain),
        },
    nodeId: `sidecar~${config.pod}.${config.namespace}`,
    namespace: config.namespace,
    metadata: {
      TRACEMESH_REGISTER: config.register ? 'true' : 'false',
      TRACEMESH_SERVICE: config.service,
      TRACEMESH_NAMESPACE: config.namespace,
      TRACEMESH_POD: config.pod,
      ...(config.node !== '' ? { TRACEMESH_NODE: config.node } : {}),
      TRACEMESH_LABELS: config.workloadLabels,
    },
    logger,
  });
}

/** The body of /debug/clusters. */
function clustersReport(clusters: ClusterManager, outliers: OutlierDetector, health: EndpointHealthChecker | undefined): unknown {
  // Keyed by service names from the endpoint source: no prototype.
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const c of clusters.all()) {
    out[c.name] = {
      policy: c.policy,
      panic: c.panic,
      active: c.active,
      pending: c.pending,
      retriesActive: c.retriesActive,
      retryBudget: (c.state.get('retry-budget') as RetryBudget | undefined)?.totals() ?? null,
      endpoints: c.endpoints.map((e) => ({ address: e.address, pod: e.pod ?? null, node: e.node ?? null, zone: e.zone ?? null, weight: e.weight, ejected: outliers.ejected(c, e), health: health?.status(e) ?? null, healthError: health?.lastError(e) ?? null })),
    };
  }
  return { clusters: out };
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

/** Starts a sidecar. Rejects with ConfigError, ListenError or IdentityError, leaving nothing running. */
export async function startSidecar(options: SidecarOptions, deps: SidecarDeps = {}): Promise<Sidecar> {
  const config = resolveConfig(options);
  const logger = (deps.logger ?? createLogger({ component: 'sidecar' })).child({ service: config.service, pod: config.pod });
  const hop: Hop = { service: config.service, pod: config.pod };
  const metrics = new SidecarMetrics();
  // Undone in reverse order by teardown, also when startup fails half way.
  const cleanups: Array<() => void | Promise<void>> = [];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) await c();
  };

  try {
    return await assemble(config, deps, logger, hop, metrics, cleanups, cleanup);
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function assemble(
  config: SidecarConfig,
  deps: SidecarDeps,
  logger: Logger,
  hop: Hop,
  metrics: SidecarMetrics,
  cleanups: Array<() => void | Promise<void>>,
  cleanup: () => Promise<void>,
): Promise<Sidecar> {
  // With a control plane, endpoints and policies come over xDS. The stream opens once the
  // identity is known and the listeners are bound (registration advertises the port).
  let tls: MeshTls | undefined;
  const xds = config.controlPlane === '' ? undefined : createXdsClient(config, logger, () => tls);
  if (xds !== undefined) cleanups.push(() => xds.close());
  let endpoints: EndpointSource;
  if (deps.endpoints !== undefined) {
    endpoints = deps.endpoints;
  } else if (xds !== undefined) {
    endpoints = xds.endpoints;
  } else if (config.endpointsFile !== '') {
    endpoints = await FileEndpointSource.open(config.endpointsFile, { logger, onReload: (result) => metrics.reloads.inc({ result }) });
    const owned = endpoints;
    cleanups.push(() => owned.close());
  } else {
    endpoints = new StaticEndpointSource();
  }
  const onCircuitOpen = (service: string, breaker: string): void => metrics.circuitOpen.inc({ destination_service: service, breaker });
  const clusters = new ClusterManager(endpoints, {
    policy: config.lbPolicy,
    config: { hashKey: config.lbHashKey, childPolicy: config.lbLocalityChild },
    locality: { node: config.node, zone: config.zone },
    maxPending: config.maxPendingRequests,
    onCircuitOpen,
  });
  cleanups.push(() => clusters.close());
  const outliers = new OutlierDetector(
    clusters,
    {
      consecutive5xx: config.outlierConsecutive5xx,
      consecutiveGatewayErrors: config.outlierConsecutiveGatewayErrors,
      intervalMs: config.outlierIntervalMs,
      baseEjectionMs: config.outlierBaseEjectionMs,
      maxEjectionPercent: config.outlierMaxEjectionPercent,
      successRateMinimumHosts: config.outlierSuccessRateMinimumHosts,
      successRateRequestVolume: config.outlierSuccessRateRequestVolume,
      successRateStdevFactor: config.outlierSuccessRateStdevFactor,
    },
    {
      onEject: (e) => {
        metrics.ejections.inc({ destination_service: e.cluster, reason: e.reason });
        logger.warn('endpoint ejected by outlier detection', { service: e.cluster, endpoint: e.endpoint.address, pod: e.endpoint.pod, reason: e.reason, forMs: Math.round(e.untilMs - performance.now()) });
      },
      onChange: (c, n) => metrics.ejected.set({ destination_service: c.name }, n),
    },
  );
  cleanups.push(() => outliers.close());
  const healthSpec = parseHealthCheck(config.appHealthCheck);
  const appHealth =
    healthSpec === undefined
      ? undefined
      : new AppHealth({
          spec: healthSpec,
          host: '127.0.0.1',
          port: config.appPort,
          intervalMs: config.appHealthIntervalMs,
          timeoutMs: config.appHealthTimeoutMs,
          healthyThreshold: config.appHealthHealthyThreshold,
          unhealthyThreshold: config.appHealthUnhealthyThreshold,
          onChange: (status) => {
            metrics.appHealthy.set(status === 'healthy' ? 1 : 0);
            logger.info('local app health changed', { status, check: config.appHealthCheck });
          },
        });
  if (appHealth !== undefined) cleanups.push(() => appHealth.close());

  // Security policies (local mode: YAML files, watched).
  let policies: PolicySetSource | undefined = deps.policies ?? xds?.policySource;
  if (policies === undefined && config.policyFiles.length > 0) {
    let watcher: PolicyWatcher;
    try {
      watcher = await PolicyWatcher.open(config.policyFiles, {
        logger,
        onChange: () => metrics.policyReloads.inc({ result: 'ok' }),
        onError: () => metrics.policyReloads.inc({ result: 'invalid' }),
      });
    } catch (err) {
      throw err instanceof ConfigError ? new ConfigError(`${err.message}; check --policy-files`, { cause: err }) : err;
    }
    cleanups.push(() => watcher.close());
    policies = watcher;
  }
  // Routes (local mode: YAML files, watched; a broken edit keeps the last good table).
  let routes: WatchedSource<LoadedRoutes> | undefined;
  if (config.routeFiles.length > 0) {
    try {
      routes = await watchRoutes(config.routeFiles, { logger });
    } catch (err) {
      throw err instanceof ConfigError ? new ConfigError(`${err.message}; check --route-files`, { cause: err }) : err;
    }
    const watched = routes;
    cleanups.push(() => watched.close());
  }
  const policy = new InboundPolicy(policies, {
    workload: { namespace: config.namespace, labels: config.workloadLabels },
    rootNamespace: config.policyRootNamespace,
    defaultMode: config.mtlsMode,
    appPort: config.appPort,
    logger,
  });
  cleanups.push(() => policy.close());

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
  metrics.watchTelemetry(() => telemetry.lost());
  cleanups.push(async () => {
    if (!(await withDeadline(telemetry.shutdown(), config.drainTimeoutMs))) {
      logger.warn('telemetry export did not finish before the deadline; some spans may be lost', { collector: config.collectorEndpoint });
    }
  });
  const failures = new HandshakeFailureRecorder(telemetry.tracer, metrics, config.service, logger);

  // Workload identity: injected, from the CA, or from files. None: plaintext mesh.
  let identity: IdentitySource | undefined = deps.identity;
  let hint = 'check the identity source passed to startSidecar';
  if (identity === undefined && config.caAddress !== '') {
    const client = await caClientFromFlags({
      address: config.caAddress,
      rootCertFile: config.caRootCertFile,
      plaintext: config.caPlaintext,
      token: config.caToken,
      tokenFile: config.caTokenFile,
      trustDomain: config.trustDomain === '' ? 'cluster.local' : config.trustDomain,
    });
    const source = new CaIdentitySource({ client, ownsClient: true, ttlMs: config.certTtlMs, logger });
    cleanups.push(() => source.close());
    identity = source;
    hint = `check that the CA at --ca-address ${config.caAddress} is reachable, --ca-root-cert verifies it, and the token is accepted`;
  } else if (identity === undefined && config.tlsCertFile !== '') {
    const source = await FileIdentitySource.open({ certFile: config.tlsCertFile, keyFile: config.tlsKeyFile, trustBundleFile: config.trustBundleFile }, logger);
    cleanups.push(() => source.close());
    identity = source;
  }
  if (identity !== undefined) {
    tls = await MeshTls.start(identity, {
      trustDomain: config.trustDomain,
      timeoutMs: config.identityTimeoutMs,
      hint,
      logger,
      onIdentity: (id) => {
        metrics.certificates.inc();
        metrics.certificateExpiry.set(id.notAfter.getTime() / 1000);
      },
    });
    const t = tls;
    cleanups.push(() => t.close());
  }
  const peerHealthSpec = parseEndpointHealthCheck(config.healthCheck);
  const peerHealth =
    peerHealthSpec === undefined
      ? undefined
      : new EndpointHealthChecker(clusters, {
          path: peerHealthSpec.path,
          intervalMs: config.healthCheckIntervalMs,
          timeoutMs: config.healthCheckTimeoutMs,
          healthyThreshold: config.healthCheckHealthyThreshold,
          unhealthyThreshold: config.healthCheckUnhealthyThreshold,
          tls,
          onCheck: (_e, ok) => metrics.healthChecks.inc({ result: ok ? 'passed' : 'failed' }),
          onChange: (e, healthy, error) => {
            if (healthy) logger.info('endpoint passes its health checks again', { endpoint: e.address, pod: e.pod });
            else logger.warn('endpoint failed its health checks', { endpoint: e.address, pod: e.pod, error });
            for (const c of clusters.all()) metrics.unhealthy.set({ destination_service: c.name }, c.endpoints.filter((x) => peerHealth?.status(x) === 'unhealthy').length);
          },
        });
  if (peerHealth !== undefined) cleanups.push(() => peerHealth.close());

  const stdoutSink = deps.accessLogSink === undefined && config.accessLog === 'stdout' ? new FdLineSink(1) : undefined;
  if (stdoutSink !== undefined) cleanups.push(() => withDeadline(stdoutSink.drain(), config.drainTimeoutMs).then(() => undefined));
  const observers: readonly HopObserver[] = [
    new SpanRecorder(telemetry.tracer),
    new AccessLog({ sink: deps.accessLogSink ?? stdoutSink?.write, logger: telemetry.logger }),
    metrics,
  ];

  const inFlight = new InFlight();
  const outboundScope: HopScope = { direction: 'outbound', mtls: tls !== undefined };
  const inboundScope: HopScope = { direction: 'inbound', mtls: tls !== undefined };
  const limits = config.limits;
  const refusals = new Refusals(metrics.registry, logger);
  const outboundChain = outboundStack({
    clusters,
    observers,
    inFlight,
    ...(routes === undefined ? {} : { routes: { table: () => routes.current().table, namespace: config.namespace } }),
    maxRequests: config.maxRequests,
    maxConnections: config.maxConnections,
    outliers,
    onCircuitOpen,
    // Installed with --retry-attempts 0 too: a route rule's own `retry` still applies.
    retry: {
      attempts: config.retryAttempts,
      on: parseRetryOn(config.retryOn),
      perTryTimeout: config.perTryTimeoutMs > 0,
      budgetRatio: config.retryBudgetRatio,
      budgetMinPerSecond: config.retryBudgetMinPerSecond,
      backoffBaseMs: config.retryBackoffBaseMs,
      backoffMaxMs: config.retryBackoffMaxMs,
      maxRetries: config.maxRetries,
      onRetry: (service, reason) => metrics.retries.inc({ destination_service: service, reason }),
      onRefused: onCircuitOpen,
    },
    concurrency: concurrencyLayer(new RequestGate(limits.maxConcurrentRequests), 'outbound', refusals),
  });
  const inboundChain = inboundStack({
    service: config.service,
    policy,
    mtls: tls !== undefined,
    appHost: '127.0.0.1',
    appPort: config.appPort,
    observers,
    inFlight,
    concurrency: concurrencyLayer(new RequestGate(limits.maxConcurrentRequests), 'inbound', refusals),
    opaquePorts: new Set(config.opaquePorts),
  });
  const inboundAgent = new Agent({ keepAlive: true, scheduling: 'lifo', maxFreeSockets: 256 });
  cleanups.push(() => inboundAgent.destroy());
  const pool = tls === undefined ? undefined : new H2Pool({ tls, logger, onHandshakeFailure: (kind) => failures.outbound(kind) });
  const base = { hop, tracer: telemetry.tracer };
  const outboundTiming = { upstreamTimeoutMs: config.outboundTimeoutMs, perTryTimeoutMs: config.perTryTimeoutMs, timeoutFlag: '--outbound-timeout' };
  const inboundTiming = { upstreamTimeoutMs: config.appTimeoutMs, timeoutFlag: '--app-timeout' };
  // h2c (HTTP/2 without TLS): HTTP/2 and gRPC to the local app, and to peers when mTLS is off.
  const h2c = new H2Pool({ tls: undefined, logger });
  cleanups.push(() => h2c.close(0));
  const ownTls = tls;
  const localIdentity = ownTls === undefined ? undefined : () => ownTls.identity.spiffeId;
  const outboundCtx: ProxyContext = { ...base, ...outboundTiming, scope: outboundScope, chain: outboundChain, h2: pool, h2c: tls === undefined ? h2c : undefined };
  const inboundCtx: ProxyContext = { ...base, ...inboundTiming, scope: inboundScope, chain: inboundChain, agent: inboundAgent, h2c, appProtocol: config.appProtocol, localIdentity };
  const appH2c = config.appProtocol === 'h2c';

  // HTTP/1.1 goes through the raw-socket engine (sidecar/h1), HTTP/1.1 on the hop as well.
  const h1Pool = new UpstreamPool({ tls, onHandshakeFailure: (kind) => failures.outbound(kind), idleTimeoutMs: limits.upstreamIdleTimeoutMs });
  const appPool = new UpstreamPool({ idleTimeoutMs: limits.appIdleTimeoutMs });
  cleanups.push(() => {
    h1Pool.close();
    appPool.close();
  });
  const downstreamLimits = (listener: 'outbound' | 'inbound') => ({
    requestHeadersTimeoutMs: limits.requestHeadersTimeoutMs,
    idleTimeoutMs: limits.idleTimeoutMs,
    onHeadersTimeout: () => refusals.refused(listener, 'request-headers-timeout', 'request head'),
    onIdleTimeout: () => refusals.refused(listener, 'idle-timeout', 'HTTP/1.1 connection'),
  });
  const tunnelIdleTimeoutMs = config.tunnelIdleTimeoutMs;
  const h1Outbound = new H1Listener({ ...base, ...outboundTiming, scope: outboundScope, chain: outboundChain, pool: h1Pool, downstreamLimits: downstreamLimits('outbound'), tunnelIdleTimeoutMs });
  const h1Inbound = new H1Listener({ ...base, ...inboundTiming, scope: inboundScope, chain: inboundChain, pool: appPool, localIdentity, downstreamLimits: downstreamLimits('inbound'), tunnelIdleTimeoutMs });
  const outbound = createOutboundListener(outboundCtx, (socket: Socket) => h1Outbound.serve(socket));
  // Raw TCP to opaque ports of mesh services: one local listener per --tcp-listeners entry.
  const tcpContext = { ...base, scope: outboundScope, chain: outboundChain, pool: h1Pool, upstreamTimeoutMs: config.outboundTimeoutMs, perTryTimeoutMs: config.perTryTimeoutMs, tunnelIdleTimeoutMs };
  const tcpListeners = config.tcpListeners.map((spec) => new TcpOutboundListener(tcpContext, spec));
  let inbound: Server;
  let meshInbound: MeshInboundListener | undefined;
  if (tls === undefined) {
    // --app-protocol h2c: HTTP/1.1 callers go through node:http, which converts to h2c.
    inbound = createInboundListener(inboundCtx, appH2c ? undefined : (socket: Socket) => h1Inbound.serve(socket));
  } else {
    meshInbound = new MeshInboundListener({
      tls,
      http1: appH2c ? undefined : (socket: Socket, sec: DownstreamSecurity) => h1Inbound.serve(socket, sec),
      handler: createProxyHandler(inboundCtx),
      mode: () => policy.mode,
      onHandshakeFailure: (f) => failures.inbound(f),
      handshakeTimeoutMs: limits.tlsHandshakeTimeoutMs,
      idleTimeoutMs: limits.idleTimeoutMs,
      onHandshakeTimeout: () => refusals.refused('inbound', 'tls-handshake-timeout', 'TLS handshake'),
      onIdleTimeout: () => refusals.refused('inbound', 'idle-timeout', 'mTLS inbound connection'),
      logger,
    });
    inbound = meshInbound.server;
  }
  let closing = false;
  let configured = xds === undefined;
  const admin = createAdminServer({
    registry: metrics.registry,
    ready: () => !closing && configured && (appHealth === undefined || appHealth.status === 'healthy'),
    appHealth: () => appHealth,
    clusters: () => clustersReport(clusters, outliers, peerHealth),
    endpoints: () => endpoints.current(),
    identity: () => identityReport(tls, policy, pool, h1Pool),
    ...(xds !== undefined ? { xds: () => xds.status() } : {}),
    limits: { requestHeadersTimeoutMs: limits.requestHeadersTimeoutMs, idleTimeoutMs: limits.idleTimeoutMs, maxConcurrentRequests: ADMIN_LIMITS.maxConcurrentRequests },
    refusals,
  });
  capConnections(outbound, limits.maxConnections, 'outbound', refusals);
  for (const t of tcpListeners) capConnections(t.server, limits.maxConnections, 'outbound', refusals);
  capConnections(inbound, limits.maxConnections, 'inbound', refusals);
  capConnections(admin, ADMIN_LIMITS.maxConnections, 'admin', refusals);
  limitH2Idle(outbound, limits.idleTimeoutMs, 'outbound', refusals);
  if (inbound instanceof ProxyListener) limitH2Idle(inbound, limits.idleTimeoutMs, 'inbound', refusals);

  // Listeners go down first (cleanups run in reverse): stop accepting, drain, cut the rest.
  cleanups.push(async () => {
    closing = true;
    // Deregister first, so peers stop picking this sidecar while it drains.
    xds?.close();
    const stopped = Promise.all([closeServer(outbound), meshInbound === undefined ? closeServer(inbound) : meshInbound.stopAccepting(), ...tcpListeners.map((t) => closeServer(t.server))]);
    h1Outbound.closeIdle();
    h1Inbound.closeIdle();
    if (!(await inFlight.drained(config.drainTimeoutMs))) {
      logger.warn('shutdown deadline passed; cutting in-flight requests', { inFlight: inFlight.count });
    }
    // Finished HTTP/1.1 responses are flushed before the raw sockets (under TLS) are cut.
    await Promise.all([h1Outbound.closeAll(), h1Inbound.closeAll()]);
    for (const t of tcpListeners) t.closeAll();
    outbound.closeAllConnections();
    if (meshInbound !== undefined) meshInbound.closeAllConnections();
    else (inbound as ProxyListener).closeAllConnections();
    await pool?.close(0);
    await stopped;
    // Cut exchanges finish their span and access log on the close events just triggered.
    await inFlight.drained(100);
  });
  // …and the admin listener last of all, so /ready says 503 throughout shutdown.
  cleanups.unshift(async () => {
    const adminClosed = closeServer(admin);
    admin.closeAllConnections();
    await adminClosed;
  });

  const outboundPort = await listen(outbound, config.outboundPort, '127.0.0.1', 'outbound-port');
  const inboundPort = await listen(inbound, config.inboundPort, config.bindAddress, 'inbound-port');
  const adminPort = await listen(admin, config.adminPort, config.bindAddress, 'admin-port');
  const tcpPorts: number[] = [];
  for (const t of tcpListeners) tcpPorts.push(await listen(t.server, t.spec.listenPort, '127.0.0.1', 'tcp-listeners'));
  if (xds !== undefined) {
    const host = config.bindAddress === '0.0.0.0' || config.bindAddress === '::' ? '127.0.0.1' : config.bindAddress;
    xds.start({ TRACEMESH_INBOUND_ADDRESS: config.advertiseAddress === '' ? `${host.includes(':') ? `[${host}]` : host}:${inboundPort}` : config.advertiseAddress });
    if (!(await withDeadline(xds.ready(), config.controlPlaneTimeoutMs))) {
      logger.warn('no configuration from the control plane yet; serving with none and waiting for it', { controlPlane: config.controlPlane });
    }
    configured = true;
  }
  if (tls !== undefined) {
    logger.info('mTLS on', { spiffeId: tls.identity.spiffeId, trustDomain: tls.trustDomain, notAfter: tls.identity.notAfter.toISOString(), mtlsMode: policy.mode });
  }

  let closed: Promise<void> | undefined;
  return {
    outboundPort,
    inboundPort,
    adminPort,
    tcpPorts,
    config,
    registry: metrics.registry,
    tls,
    inboundTlsServer: meshInbound?.tlsServer,
    outboundPool: pool,
    outboundH1Pool: h1Pool,
    policy,
    flush: () => telemetry.forceFlush(),
    close() {
      closed ??= cleanup();
      return closed;
    },
  };
}
