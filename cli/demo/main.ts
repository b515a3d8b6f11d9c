// `tracemesh demo`: a whole local mesh in one process. ClickHouse (embedded by default), the
// collector and the query API, then 4 services × 2 pods, each pod an app behind its own
// sidecar on one of 3 simulated nodes, and steady traffic of which a known fraction fails
// deep in the call graph. It reports the root causes it sees until Ctrl-C.

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bootstrapTokenAuthenticator, type BootstrapGrant } from '../../controlplane/ca/authn/bootstrap-token.ts';
import { clientCertificateAuthenticator } from '../../controlplane/ca/authn/client-cert.ts';
import { createCertificateAuthority, type CertificateAuthority } from '../../controlplane/ca/pki/authority.ts';
import { startControlPlane, type ControlPlane } from '../../controlplane/controlplane.ts';
import { PolicyWatcher } from '../../common/policy/load.ts';
import { ConfigError } from '../../common/errors.ts';
import { helpText, parseFlags, type FlagSpec } from '../../common/flags.ts';
import { createLogger, type Logger } from '../../common/logger.ts';
import { startSidecar, type Sidecar } from '../../sidecar/sidecar.ts';
import type { ServerHandle } from '../../outcomes/prometheus-servers.ts';
import { startBackend, type Backend } from '../stack.ts';
import { activeAlerts, failingPathLines, startDemoAlertmanager, startDemoPrometheus } from './alerting.ts';
import { startDemoApp, type DemoApp } from './app.ts';
import { startLoad, type LoadGenerator, type LoadResult } from './loadgen.ts';
import { createAppTracing, type AppTracing } from './tracing.ts';
import { CALLS, CANARY, CANARY_LABELS, CANARY_WEIGHT, expectedFailureFraction, INGRESS, NAMESPACE, PODS, POLICIES_YAML, ROUTES_YAML, type PodSpec } from './topology.ts';

export const DEMO_FLAGS = [
  { name: 'query-host', kind: 'string', default: '127.0.0.1', description: 'Address the query API listens on' },
  { name: 'query-port', kind: 'int', default: '16686', description: 'Query API port (Jaeger query API, /api/v1/traces/{id}/path); 0 picks a free port' },
  { name: 'otlp-grpc-port', env: 'TRACEMESH_DEMO_OTLP_GRPC_PORT', kind: 'int', default: '4317', description: 'Collector OTLP/gRPC port; 0 picks a free port' },
  { name: 'otlp-http-port', env: 'TRACEMESH_DEMO_OTLP_HTTP_PORT', kind: 'int', default: '4318', description: 'Collector OTLP/HTTP port; 0 picks a free port' },
  { name: 'collector-admin-port', env: 'TRACEMESH_DEMO_COLLECTOR_ADMIN_PORT', kind: 'int', default: '13133', description: 'Collector /metrics and /ready port; 0 picks a free port' },
  {
    name: 'clickhouse-url',
    kind: 'string',
    default: '',
    env: 'TRACEMESH_CLICKHOUSE_URL',
    description: 'Use this ClickHouse (HTTP interface) instead of starting an embedded one',
  },
  { name: 'clickhouse-data-dir', kind: 'string', default: '.tracemesh/clickhouse', description: 'Data directory of the embedded ClickHouse (kept between runs)' },
  { name: 'clickhouse-database', kind: 'string', default: 'tracemesh', description: 'Database that holds the tracemesh tables' },
  { name: 'state-dir', env: 'TRACEMESH_DEMO_STATE_DIR', kind: 'string', default: '.tracemesh/demo', description: "The demo CA's root (reused between runs) and its policy files" },
  { name: 'rps', env: 'TRACEMESH_DEMO_RPS', kind: 'int', default: '20', description: 'Requests per second sent to the frontend pods' },
  { name: 'duration', env: 'TRACEMESH_DEMO_DURATION', kind: 'duration', default: '0', description: 'Stop after this long (e.g. 60s); 0 runs until Ctrl-C' },
  { name: 'report-interval', env: 'TRACEMESH_DEMO_REPORT_INTERVAL', kind: 'duration', default: '10s', description: 'How often to print traffic and root-cause figures' },
  { name: 'controlplane-debug-port', env: 'TRACEMESH_DEMO_CONTROLPLANE_DEBUG_PORT', kind: 'int', default: '15014', description: 'Control plane debug port (tracemesh proxy-status reads it); 0 picks a free port' },
  { name: 'outcomes-admin-port', env: 'TRACEMESH_DEMO_OUTCOMES_ADMIN_PORT', kind: 'int', default: '16688', description: 'Outcomes component /metrics and /debug/alerts port; 0 picks a free port' },
  {
    name: 'alerting',
    env: 'TRACEMESH_DEMO_ALERTING',
    kind: 'string',
    default: 'auto',
    description: 'auto: start Prometheus and Alertmanager (free ports, private configs) when they are installed, and send the outcome alerts there; off: evaluate alerts only',
  },
  { name: 'access-log', env: 'TRACEMESH_DEMO_ACCESS_LOG', kind: 'string', default: 'off', description: 'Sidecar access-log lines on stdout (stdout) or not (off)' },
] as const satisfies readonly FlagSpec[];

export interface DemoOptions {
  readonly queryHost: string;
  readonly queryPort: number;
  readonly otlpGrpcPort: number;
  readonly otlpHttpPort: number;
  readonly collectorAdminPort: number;
  readonly clickhouseUrl: string;
  /** undefined = a temp directory (tests). */
  readonly clickhouseDataDir: string | undefined;
  readonly database: string;
  readonly rps: number;
  readonly accessLog: 'stdout' | 'off';
  readonly logger: Logger;
  /** The pods to run; default PODS (tests shorten the crash loop). */
  readonly pods?: readonly PodSpec[];
  /**
   * Where the demo keeps its CA (`ca/`, reused between runs) and writes its policy files;
   * undefined = a temp directory removed on close.
   */
  readonly stateDir: string | undefined;
  /** Control plane debug port (`/debug/syncz`); default 0 (a free port). */
  readonly controlPlaneDebugPort?: number;
  /** Outcomes admin port; default 0 (a free one). */
  readonly outcomesAdminPort?: number;
  /** Start Prometheus and Alertmanager when installed; default false. */
  readonly alerting?: boolean;
}

export interface RootCauseTally {
  readonly pod: string;
  readonly node: string;
  readonly reason: string;
  count: number;
}

export interface DemoStats {
  sent: number;
  failed: number;
  /** Failed requests whose path was looked up, and what it named as the root cause. */
  readonly rootCauses: Map<string, RootCauseTally>;
  /** In the same failed requests: failures the mesh recovered from (a retried try), by pod and reason. */
  readonly recovered: Map<string, RootCauseTally>;
  /** A failed trace whose root cause the query API has already named. */
  exampleTraceId: string | undefined;
}

export interface Demo {
  readonly backend: Backend;
  /** Started when alerting is on and both are installed. */
  readonly alertmanager: ServerHandle | undefined;
  readonly prometheus: ServerHandle | undefined;
  /** `host:port` of the demo's control plane (CA and xDS). */
  readonly caAddress: string;
  /** Base URL of the control plane's debug port, for `tracemesh proxy-status`. */
  readonly controlPlaneDebugUrl: string;
  readonly queryUrl: string;
  readonly stats: DemoStats;
  /** Looks up the root cause of failed requests that have had time to reach storage. */
  sampleRootCauses(max: number): Promise<void>;
  close(): Promise<void>;
}

interface Pod {
  readonly spec: PodSpec;
  readonly app: DemoApp;
  readonly sidecar: Sidecar;
  crashTimer?: NodeJS.Timeout;
}

/** How long after a request its spans are expected to be queryable (export + batch delays). */
const SETTLE_MS = 4_000;
/**
 * A failed trace whose path still has hops with an unreported peer is looked at again later,
 * until this age: on a loaded machine a sidecar's span can reach storage after SETTLE_MS, and
 * a path read without the callee's side names the caller's view (a bare HTTP 502) instead of
 * the callee's own reason.
 */
const MAX_SETTLE_MS = 30_000;

export async function startDemo(options: DemoOptions): Promise<Demo> {
  const logger = options.logger;
  const alertmanager = await startDemoAlertmanager(options.alerting ?? false, logger);
  const backend = await startBackend({
    clickhouseUrl: options.clickhouseUrl,
    ...(options.clickhouseDataDir !== undefined ? { clickhouseDataDir: options.clickhouseDataDir } : {}),
    database: options.database,
    collector: {
      grpcPort: options.otlpGrpcPort,
      httpPort: options.otlpHttpPort,
      adminPort: options.collectorAdminPort,
      batchTimeoutMs: 500,
      servicegraph: { waitMs: 5_000, flushIntervalMs: 5_000 },
    },
    queryHost: options.queryHost,
    queryPort: options.queryPort,
    logger: logger.child({ component: 'backend' }),
    outcomes: { adminPort: options.outcomesAdminPort ?? 0, evaluate: true, alertmanagerUrls: alertmanager ? [alertmanager.url] : [] },
  }).catch(async (err: unknown) => {
    await alertmanager?.stop();
    throw err;
  });
  let prometheus: ServerHandle | undefined;
  const pods: Pod[] = [];
  let load: LoadGenerator | undefined;
  const tracings: AppTracing[] = [];
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), 'tracemesh-demo-'));
  let ca: CertificateAuthority | undefined;
  let controlPlane: ControlPlane | undefined;
  let policyWatcher: PolicyWatcher | undefined;
  const close = async (): Promise<void> => {
    await load?.stop();
    await Promise.all(tracings.map((t) => t.shutdown()));
    for (const p of pods) clearTimeout(p.crashTimer);
    await Promise.all(pods.map((p) => p.sidecar.close()));
    await Promise.all(pods.map((p) => p.app.close()));
    await controlPlane?.close();
    policyWatcher?.close();
    ca?.close();
    await prometheus?.stop();
    await backend.close();
    await alertmanager?.stop();
    if (options.stateDir === undefined) rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    // The control plane's CA: every sidecar gets a SPIFFE certificate for the service account
    // named after its service, proven by a bootstrap token, and all sidecar hops are mTLS.
    const trustDomain = 'cluster.local';
    ca = await createCertificateAuthority({ trustDomain, source: { kind: 'self-signed', dir: join(stateDir, 'ca') }, logger });
    const tokens: Record<string, BootstrapGrant> = {};
    const tokenOf = new Map<string, string>();
    for (const service of new Set([...(options.pods ?? PODS).map((p) => p.service), INGRESS.service, CANARY.service])) {
      const token = randomBytes(16).toString('hex');
      tokens[token] = { namespace: NAMESPACE, serviceAccount: service };
      tokenOf.set(service, token);
    }
    mkdirSync(join(stateDir, 'policies'), { recursive: true });
    const caRootCertFile = join(stateDir, 'ca-root.pem');
    writeFileSync(caRootCertFile, ca.trustBundle().pem);
    const policyFile = join(stateDir, 'policies', 'payments-callers.yaml');
    writeFileSync(policyFile, POLICIES_YAML);
    mkdirSync(join(stateDir, 'routes'), { recursive: true });
    const routeFile = join(stateDir, 'routes', 'demo-routes.yaml');
    writeFileSync(routeFile, ROUTES_YAML);
    policyWatcher = await PolicyWatcher.open([policyFile], { logger });

    // The control plane: CA and xDS on one port. Every sidecar registers itself over its xDS
    // stream and takes endpoints, peers' mTLS modes and the policies from it.
    controlPlane = await startControlPlane({
      ca,
      authenticators: [clientCertificateAuthenticator(trustDomain), bootstrapTokenAuthenticator(trustDomain, tokens)],
      host: '127.0.0.1',
      port: 0,
      debugPort: options.controlPlaneDebugPort ?? 0,
      policies: policyWatcher,
      registration: { graceMs: 10_000 },
      logger,
    });
    const cp = controlPlane;

    // The ingress pod: a sidecar with no app behind it that the load generator sends through,
    // as an ingress gateway would, so that even the first hop is mTLS.
    for (const spec of [...(options.pods ?? PODS), CANARY, INGRESS]) {
      // The payments app is instrumented with the OpenTelemetry SDK; its spans join the trace.
      let tracing: AppTracing | undefined;
      if (spec.service === 'payments') {
        tracing = createAppTracing(backend.otlpGrpcEndpoint, { 'service.name': spec.service, 'k8s.pod.name': spec.pod, 'k8s.namespace.name': NAMESPACE, 'k8s.node.name': spec.node });
        tracings.push(tracing);
      }
      const app = await startDemoApp({
        service: spec.service,
        pod: spec.pod,
        calls: CALLS[spec.service] ?? [],
        outboundPort: 0,
        failRate: spec.failRate,
        workMs: 2,
        ...(spec.policyViolation ? { sideCall: { service: 'payments', path: '/refund', probability: spec.policyViolation } } : {}),
        ...(tracing ? { tracer: tracing.tracer, operation: 'charge card' } : {}),
      });
      const sidecar = await startSidecar(
        {
          service: spec.service,
          pod: spec.pod,
          namespace: NAMESPACE,
          node: spec.node,
          appPort: app.port(),
          outboundPort: 0,
          inboundPort: 0,
          adminPort: 0,
          bindAddress: '127.0.0.1',
          collectorEndpoint: backend.otlpGrpcEndpoint,
          accessLog: options.accessLog,
          upstreamTimeoutMs: 5_000,
          caAddress: cp.address,
          caRootCertFile,
          caToken: tokenOf.get(spec.service) ?? '',
          trustDomain,
          controlPlane: cp.address,
          register: true,
          routeFiles: [routeFile],
          ...(spec === CANARY ? { workloadLabels: CANARY_LABELS } : {}),
        },
        { logger: logger.child({ component: 'sidecar', pod: spec.pod }), exportDelayMs: 500 },
      );
      app.options.outboundPort = sidecar.outboundPort;
      pods.push({ spec, app, sidecar });
    }
    // Traffic starts once every sidecar has ACKed the configuration that names all pods.
    cp.xds.flush();
    const synced = Date.now() + 5_000;
    while (Date.now() < synced && !cp.xds.status().every((c) => c.types.every((t) => t.state === 'SYNCED'))) await new Promise((r) => setTimeout(r, 20));

    // Crash loops: the app stops listening for a while, then comes back on the same port.
    for (const p of pods) {
      const loop = p.spec.crashLoop;
      if (!loop) continue;
      const cycle = (): void => {
        p.crashTimer = setTimeout(() => {
          void p.app.crash().then(() => {
            p.crashTimer = setTimeout(() => {
              void p.app.recover().then(cycle, (err: unknown) => logger.error('demo app did not restart', { pod: p.spec.pod, err }));
            }, loop.downMs);
          });
        }, loop.periodMs - loop.downMs);
      };
      cycle();
    }

    const stats: DemoStats = { sent: 0, failed: 0, rootCauses: new Map(), recovered: new Map(), exampleTraceId: undefined };
    const pending: { traceId: string; at: number }[] = [];
    const ingress = pods.filter((p) => p.spec === INGRESS).map((p) => p.sidecar.outboundPort);
    const loadTracing = createAppTracing(backend.otlpGrpcEndpoint, { 'service.name': 'loadgen' });
    tracings.push(loadTracing);
    load = startLoad(loadTracing.tracer, ingress, options.rps, (r: LoadResult) => {
      stats.sent++;
      if (r.status >= 500 || r.status === 0) {
        stats.failed++;
        if (pending.length < 1000) pending.push({ traceId: r.traceId, at: Date.now() });
      }
    });

    if (alertmanager) {
      const host = (url: string | undefined): string[] => (url ? [new URL(url).host] : []);
      prometheus = await startDemoPrometheus(
        alertmanager,
        { 'tracemesh-outcomes': host(backend.outcomes?.adminUrl), 'tracemesh-collector': [`127.0.0.1:${backend.collector.adminPort}`] },
        logger,
      );
    }

    const queryUrl = backend.queryApi.url;
    const sampleRootCauses = async (max: number): Promise<void> => {
      let looked = 0;
      while (looked < max && pending.length > 0 && Date.now() - (pending[0]?.at ?? 0) > SETTLE_MS) {
        const item = pending.shift();
        if (!item) break;
        looked++;
        try {
          const res = await fetch(`${queryUrl}/api/v1/traces/${item.traceId}/path`);
          if (!res.ok) continue;
          const body = (await res.json()) as {
            rootCause: FailureSummary | null;
            recoveredErrors?: FailureSummary[];
            completeness?: { unreportedPeers?: unknown[] };
          };
          if ((body.completeness?.unreportedPeers?.length ?? 0) > 0 && Date.now() - item.at < MAX_SETTLE_MS) {
            pending.push(item);
            continue;
          }
          for (const r of body.recoveredErrors ?? []) countFailure(stats.recovered, r);
          const rc = body.rootCause;
          if (!rc) continue;
          countFailure(stats.rootCauses, rc);
          stats.exampleTraceId ??= item.traceId;
        } catch (err) {
          logger.debug('root-cause lookup failed', { traceId: item.traceId, err });
        }
      }
    };
    return { backend, alertmanager, prometheus, caAddress: cp.address, controlPlaneDebugUrl: cp.debugUrl ?? '', queryUrl, stats, sampleRootCauses, close };
  } catch (err) {
    await close();
    throw err;
  }
}

interface FailureSummary {
  readonly pod?: string | null;
  readonly node?: string | null;
  readonly reason?: string;
  readonly meshErrorCode?: string | null;
}

function countFailure(tallies: Map<string, RootCauseTally>, f: FailureSummary): void {
  const pod = f.pod ?? '?';
  const reason = f.meshErrorCode ?? f.reason ?? 'error';
  const key = `${pod}|${reason}`;
  const tally = tallies.get(key) ?? { pod, node: f.node ?? '?', reason, count: 0 };
  tally.count++;
  tallies.set(key, tally);
}

function pct(n: number, d: number): string {
  return d === 0 ? '0.0%' : `${((100 * n) / d).toFixed(1)}%`;
}

/** The `tracemesh demo` command. */
export async function runDemo(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(
      helpText(
        'tracemesh demo [flags]',
        'Runs a local demo mesh: an embedded ClickHouse, the collector, the query API and 4 services × 2 pods (each behind its own sidecar, on 3 simulated nodes) with steady traffic, part of which fails deep in the call graph. Ctrl-C stops everything.',
        DEMO_FLAGS,
      ),
    );
    return 0;
  }
  const flags = parseFlags(DEMO_FLAGS, argv);
  if (flags._.length > 0) throw new ConfigError(`unexpected argument "${flags._[0]}"; run with --help to list the flags`);
  if (flags.rps < 1 || flags.rps > 2000) throw new ConfigError(`--rps must be from 1 to 2000, got ${flags.rps}`);
  const accessLog = flags['access-log'];
  if (flags.alerting !== 'auto' && flags.alerting !== 'off') throw new ConfigError(`--alerting must be auto or off, got "${flags.alerting}"`);
  if (accessLog !== 'stdout' && accessLog !== 'off') throw new ConfigError(`--access-log must be stdout or off, got "${accessLog}"`);
  const logger = createLogger({ component: 'demo' }, (process.env['TRACEMESH_LOG_LEVEL'] as 'info' | undefined) ?? 'warn');
  const out = (s: string): void => void process.stdout.write(s + '\n');

  out('tracemesh demo: starting ClickHouse, collector, query API and 8 pods ...');
  const demo = await startDemo({
    queryHost: flags['query-host'],
    queryPort: flags['query-port'],
    otlpGrpcPort: flags['otlp-grpc-port'],
    otlpHttpPort: flags['otlp-http-port'],
    collectorAdminPort: flags['collector-admin-port'],
    clickhouseUrl: flags['clickhouse-url'],
    clickhouseDataDir: resolve(flags['clickhouse-data-dir']),
    stateDir: resolve(flags['state-dir']),
    database: flags['clickhouse-database'],
    rps: flags.rps,
    controlPlaneDebugPort: flags['controlplane-debug-port'],
    accessLog,
    logger,
    outcomesAdminPort: flags['outcomes-admin-port'],
    alerting: flags.alerting === 'auto',
  });
  const { backend, queryUrl, stats } = demo;
  const expected = expectedFailureFraction();
  out('');
  out(`  ClickHouse      ${backend.clickhouse.url}${backend.clickhouse.embedded ? ` (embedded, data in ${backend.clickhouse.dataDir})` : ''}`);
  out(`  OTLP gRPC       http://127.0.0.1:${backend.collector.grpcPort}     OTLP HTTP  http://127.0.0.1:${backend.collector.httpPort}`);
  out(`  Web UI          ${queryUrl}/   (service graph; failing paths: ${queryUrl}/paths; search: ${queryUrl}/search)`);
  out(`  Query API       ${queryUrl}   (Jaeger API: ${queryUrl}/api/services, OpenAPI: ${queryUrl}/openapi.json)`);
  out(`  Collector       http://127.0.0.1:${backend.collector.adminPort}/metrics`);
  out(`  Outcomes        ${backend.outcomes?.adminUrl ?? ''}/metrics   failing paths: ${queryUrl}/api/v1/paths   alerts: ${backend.outcomes?.adminUrl ?? ''}/debug/alerts`);
  if (demo.alertmanager && demo.prometheus) {
    out(`  Alertmanager    ${demo.alertmanager.url}/#/alerts   (the outcome rules' alerts, with exemplar trace ids; API: ${demo.alertmanager.url}/api/v2/alerts)`);
    out(`  Prometheus      ${demo.prometheus.url}/alerts   (deploy/prometheus rules over the outcomes metrics)`);
  } else if (flags.alerting === 'auto') {
    out('  Alerting        Prometheus/Alertmanager not installed (apt-get install prometheus prometheus-alertmanager): alerts are evaluated only');
  }
  out('');
  out('  frontend ─▶ checkout ─┬─▶ inventory   inventory-2 (node-2) crashes 4 s in every 20 s: connection refused,');
  out('     │                  │                retried on inventory-1 and ejected by outlier detection (recovered failures);');
  out('     │                  │                5% of these calls aborted (503) by FaultInjection demo/inventory-chaos');
  out('     │                  └─▶ payments    payments-2 (node-3) answers 500 to 30% of its requests; peak-EWMA');
  out('     │                                  balancing counts failures as slow and sends it few calls;');
  out(`     │                                  canary split (HTTPRoute demo/payments-canary): ${CANARY_WEIGHT}% to payments-v2 (pod payments-v2-1)`);
  out('     └╌╌ 5%: payments /refund          denied by AuthorizationPolicy demo/payments-callers (only checkout may call)');
  out(`  control plane ${demo.caAddress}: CA (mTLS between all sidecars), self-registration and xDS; policies in ${resolve(flags['state-dir'], 'policies')}, routes in ${resolve(flags['state-dir'], 'routes')}`);
  out(`    npm run tracemesh -- proxy-status --control-plane-debug ${demo.controlPlaneDebugUrl}`);
  out(`  ${flags.rps} req/s; expected failures ≈ ${pct(expected.total - expected.payments, 1)} (policy ${pct(expected.policy, 1)}, fault ${pct(expected.fault, 1)}, inventory-2 ${pct(expected.inventory, 1)}) + payments-2's 500s (at most ${pct(expected.payments, 1)}; under round robin)`);
  out('');

  let printedExample = false;
  const report = async (): Promise<void> => {
    await demo.sampleRootCauses(60);
    const list = (m: Map<string, RootCauseTally>): string[] => [...m.values()].sort((a, b) => b.count - a.count).map((t) => `${t.pod}@${t.node} ${t.reason} ×${t.count}`);
    const causes = list(stats.rootCauses);
    out(`[${new Date().toISOString().slice(11, 19)}] sent ${stats.sent}, failed ${stats.failed} (${pct(stats.failed, stats.sent)}); root causes named by the path API: ${causes.join(', ') || '(waiting for spans)'}`);
    const recovered = list(stats.recovered);
    if (recovered.length > 0) out(`  recovered by the mesh in those requests (retried tries): ${recovered.join(', ')}`);
    const paths = await failingPathLines(queryUrl);
    if (paths.length > 0) {
      out('  top failing paths (last 5 min, from the trace outcomes):');
      for (const l of paths) out(`    ${l}`);
    }
    if (demo.alertmanager) {
      const firing = await activeAlerts(demo.alertmanager.url);
      out(`  alerts in Alertmanager: ${firing.join(', ') || '(none yet)'}`);
    }
    if (!printedExample && stats.exampleTraceId) {
      printedExample = true;
      out('');
      out('  A failed request, and where its failure began:');
      out(`    ${queryUrl}/trace/${stats.exampleTraceId}   (in the browser)`);
      out(`    curl -s ${queryUrl}/api/v1/traces/${stats.exampleTraceId}/path`);
      out(`    npm run tracemesh -- path ${stats.exampleTraceId} --query-url ${queryUrl}`);
      out('');
    }
  };
  const timer = setInterval(() => void report(), flags['report-interval']);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    if (flags.duration > 0) setTimeout(stop, flags.duration).unref();
  });
  clearInterval(timer);
  out('tracemesh demo: stopping (flushing spans) ...');
  await report();
  await demo.close();
  out('tracemesh demo: stopped.');
  return 0;
}
