// The sidecar's configuration: what startSidecar accepts, its defaults, and validation.

import { DEFAULT_SIDECAR_LIMITS, type SidecarLimits } from './limits/limits.ts';
import { hostname } from 'node:os';
import { ConfigError } from '../common/errors.ts';
import { isValidTrustDomain } from '../common/spiffe.ts';
import { DEFAULT_LB_POLICY } from './balancer/cluster.ts';
import { parseHashKey } from './balancer/hash-key.ts';
import { loadBalancerFactory } from './balancer/load-balancer.ts';
import { parseAddress } from './endpoints/endpoints.ts';
import { parseHealthCheck } from './resilience/app-health.ts';
import { parseEndpointHealthCheck } from './resilience/health-check.ts';
import { DEFAULT_RETRY_ON, parseRetryOn } from './resilience/retry-policy.ts';

export type AccessLogMode = 'stdout' | 'off';

/** PeerAuthentication mTLS mode: mTLS only, mTLS or plaintext, plaintext only. */
export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';
export const MTLS_MODES: readonly MtlsMode[] = ['STRICT', 'PERMISSIVE', 'DISABLE'];

/**
 * How the inbound side talks to the local app (`--app-protocol`): `auto` sends gRPC and
 * requests the calling app made over HTTP/2 as h2c and the rest as HTTP/1.1; `http1` and
 * `h2c` send everything one way.
 */
export type AppProtocol = 'auto' | 'http1' | 'h2c';
export const APP_PROTOCOLS: readonly AppProtocol[] = ['auto', 'http1', 'h2c'];

/** Input to startSidecar. Only `service` and `appPort` are required. */
export interface SidecarOptions {
  /** Service this workload belongs to: `service.name`, and the Host peers use to call it. */
  readonly service: string;
  /** Port of the local app, on 127.0.0.1, that inbound requests go to. */
  readonly appPort: number;
  /** Pod name (`k8s.pod.name`); default: the host name. */
  readonly pod?: string;
  /** Default `default`. */
  readonly namespace?: string;
  /** Node name (`k8s.node.name`); default empty (omitted). */
  readonly node?: string;
  /** Zone of the node (`topology.kubernetes.io/zone`), for locality-aware balancing; default empty. */
  readonly zone?: string;
  /** Load-balancing policy of every cluster (`--lb-policy`); default `peak_ewma`. */
  readonly lbPolicy?: string;
  /** What ring_hash and maglev hash: `header:<name>`, `cookie:<name>` or `source` (default). */
  readonly lbHashKey?: string;
  /** The policy the `locality` policy uses inside the chosen locality; default `peak_ewma`. */
  readonly lbLocalityChild?: string;
  /** Outbound listener port, always on 127.0.0.1; default 15001; 0 picks a free port. */
  readonly outboundPort?: number;
  /** Inbound listener port; default 15006; 0 picks a free port. */
  readonly inboundPort?: number;
  /** Admin listener port (/ready, /metrics); default 15000; 0 picks a free port. */
  readonly adminPort?: number;
  /** Address the inbound and admin listeners bind; default `0.0.0.0`. */
  readonly bindAddress?: string;
  /** OTLP/gRPC collector, e.g. `http://127.0.0.1:4317` (the default); '' disables export. */
  readonly collectorEndpoint?: string;
  /** JSON endpoints file (see endpoints/file-source.ts); '' means no endpoints. */
  readonly endpointsFile?: string;
  /**
   * Sets both appTimeoutMs and outboundTimeoutMs (the flag `--upstream-timeout`, kept for
   * compatibility); each of those wins when it is given too.
   */
  readonly upstreamTimeoutMs?: number;
  /** Inbound: how long the local app may take to start answering; default 15 000 ms (`--app-timeout`). */
  readonly appTimeoutMs?: number;
  /** Outbound: how long a call to a peer may take to start answering, retries included; default 15 000 ms (`--outbound-timeout`). */
  readonly outboundTimeoutMs?: number;
  /** Outbound: the time of one try; 0 (default): no limit of its own, only the outbound timeout (`--per-try-timeout`). */
  readonly perTryTimeoutMs?: number;
  /** Retries per request after the first try (outbound); default 2 (Istio's); 0 turns policy retries off. */
  readonly retryAttempts?: number;
  /** What is retried (`--retry-on`), see sidecar/README.md. */
  readonly retryOn?: readonly string[];
  /** Retries may be at most this share of requests over 10 s (Linkerd's retry budget); default 0.2. */
  readonly retryBudgetRatio?: number;
  /** …plus this many retries per second in any case; default 10. */
  readonly retryBudgetMinPerSecond?: number;
  /** Backoff before a retry: full jitter in [0, min(max, base × 2^n)]; defaults 25 ms and 250 ms (Envoy's). */
  readonly retryBackoffBaseMs?: number;
  readonly retryBackoffMaxMs?: number;
  /** Circuit breakers per cluster (Envoy's defaults): requests in flight, requests waiting for an endpoint, retries in flight. */
  readonly maxRequests?: number;
  /** `max_connections`: upstream connections in use per cluster (HTTP/1.1 requests in flight); default 1024. */
  readonly maxConnections?: number;
  readonly maxPendingRequests?: number;
  readonly maxRetries?: number;
  /** Outlier detection (Envoy's semantics and defaults; see sidecar/README.md). 0 consecutive turns that check off. */
  readonly outlierConsecutive5xx?: number;
  readonly outlierConsecutiveGatewayErrors?: number;
  readonly outlierIntervalMs?: number;
  readonly outlierBaseEjectionMs?: number;
  readonly outlierMaxEjectionPercent?: number;
  /** Success-rate ejection: minimum endpoints with enough requests, the requests per interval, and the stdev factor (1900 = 1.9). */
  readonly outlierSuccessRateMinimumHosts?: number;
  readonly outlierSuccessRateRequestVolume?: number;
  readonly outlierSuccessRateStdevFactor?: number;
  /** Active health check of the local app (its health on the admin port): '' (default) off, `http:<path>` or `grpc[:<service>]`. */
  readonly appHealthCheck?: string;
  readonly appHealthIntervalMs?: number;
  readonly appHealthTimeoutMs?: number;
  readonly appHealthHealthyThreshold?: number;
  readonly appHealthUnhealthyThreshold?: number;
  /** Active health checks of peer endpoints: '' (default) off, or `http:<path>`; interval 5 s, timeout 1 s, healthy after 2 passes, unhealthy after 3 failures. */
  readonly healthCheck?: string;
  readonly healthCheckIntervalMs?: number;
  readonly healthCheckTimeoutMs?: number;
  readonly healthCheckHealthyThreshold?: number;
  readonly healthCheckUnhealthyThreshold?: number;
  /** Root sampling probability in [0, 1]; default 1. Parent decisions are always followed. */
  readonly samplingRatio?: number;
  /** Access-log line on stdout (`stdout`, default) or none (`off`). */
  readonly accessLog?: AccessLogMode;
  /** How long close() lets in-flight requests, then telemetry export, finish; default 5 000 ms. */
  readonly drainTimeoutMs?: number;
  /**
   * How the inbound side talks to the local app: `auto` (default: gRPC and requests the caller
   * made over HTTP/2 go as h2c, the rest as HTTP/1.1), `http1`, or `h2c` (everything).
   */
  readonly appProtocol?: AppProtocol;

  // Workload identity and mTLS. With none of caAddress, tlsCertFile or an injected identity
  // source, the sidecar runs a plaintext mesh (as before mTLS existed).
  /** Mesh CA `host:port` (the control plane, :15012); '' = no CA. */
  readonly caAddress?: string;
  /** PEM file with the root(s) that verify the CA server (its SPIFFE ID is checked too). */
  readonly caRootCertFile?: string;
  /** Talk to the CA without TLS (local development only). */
  readonly caPlaintext?: boolean;
  /** Bootstrap token sent to the CA. Prefer caTokenFile: it is re-read on every renewal. */
  readonly caToken?: string;
  readonly caTokenFile?: string;
  /** Trust domain of peers' SPIFFE IDs; '' = this workload's own (or `cluster.local` for the CA's identity). */
  readonly trustDomain?: string;
  /** Lifetime to ask the CA for; renewal at about half of it. Default 24 h. */
  readonly certTtlMs?: number;
  /** Identity from PEM files instead of a CA (all three or none); reloaded when they change. */
  readonly tlsCertFile?: string;
  readonly tlsKeyFile?: string;
  readonly trustBundleFile?: string;
  /** Inbound mTLS mode when no PeerAuthentication sets one. Default STRICT. */
  readonly mtlsMode?: MtlsMode;
  /** AuthorizationPolicy / PeerAuthentication YAML files or directories (local mode); watched. */
  readonly policyFiles?: readonly string[];
  /** HTTPRoute / GRPCRoute / FaultInjection YAML files or directories (local mode); watched. */
  readonly routeFiles?: readonly string[];
  /** Namespace whose policies apply mesh-wide. Default `tracemesh-system`. */
  readonly policyRootNamespace?: string;
  /** Labels policies select this workload by. Default `{ app: <service> }`. */
  readonly workloadLabels?: Readonly<Record<string, string>>;
  /** How long startup waits for the first workload certificate. Default 30 s. */
  readonly identityTimeoutMs?: number;

  // Control plane (xDS). With it, endpoints, per-peer mTLS modes and policy come from the
  // stream; --endpoints-file and --policy-files are for running without one.
  /** Control plane xDS `host:port` (the CA's port, 15012); '' = none. */
  readonly controlPlane?: string;
  /** Dial xDS without TLS (a control plane run with --ca-plaintext, local development only). */
  readonly controlPlanePlaintext?: boolean;
  /** Register this workload with the control plane (outside Kubernetes). Default false. */
  readonly register?: boolean;
  /** `host:port` peers dial to reach this sidecar's inbound port; default `<bind address or 127.0.0.1>:<inbound port>`. */
  readonly advertiseAddress?: string;
  /** How long startup waits for the first configuration from the control plane. Default 10 s. */
  readonly controlPlaneTimeoutMs?: number;
  /** Timeouts and caps of the listeners (sidecar/limits/); defaults in DEFAULT_SIDECAR_LIMITS. */
  readonly limits?: Partial<SidecarLimits>;
  /** An established tunnel (WebSocket, upgrade, raw TCP) with no byte either way this long is closed. Default 1 h (Envoy's tcp_proxy idle_timeout). */
  readonly tunnelIdleTimeoutMs?: number;
  /** Inbound: app ports peers may reach with raw TCP (opaque ports). Default none. */
  readonly opaquePorts?: readonly number[];
  /** Outbound: one local port per raw-TCP destination (`--tcp-listeners <port>=<service>:<port>`). Default none. */
  readonly tcpListeners?: readonly TcpListenerSpec[];
}

/** A raw-TCP outbound listener: connections to 127.0.0.1:`listenPort` go to port `port` of `service`'s pods. */
export interface TcpListenerSpec {
  /** 0 picks a free port. */
  readonly listenPort: number;
  /** The destination service, as a Host names it (`db`, `db.shop`, `db.shop.svc.cluster.local`). */
  readonly service: string;
  /** The app port on the destination pods; it must be in their sidecars' --opaque-ports. */
  readonly port: number;
}

/** Parses `--tcp-listeners` entries (`15101=db:5432`); throws ConfigError naming the flag. */
export function parseTcpListeners(entries: readonly string[]): TcpListenerSpec[] {
  return entries.map((e) => {
    const m = /^(\d{1,5})=([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?):(\d{1,5})$/.exec(e.trim());
    const listenPort = Number(m?.[1]);
    const port = Number(m?.[4]);
    if (m === null || listenPort > 65535 || port < 1 || port > 65535) {
      throw new ConfigError(`--tcp-listeners (or TRACEMESH_TCP_LISTENERS) entries must be <listen-port>=<service>:<port>, e.g. 15101=db:5432 (listen port 0 picks a free one), got "${e}"`);
    }
    return { listenPort, service: m[2] as string, port };
  });
}

/** Parses `--opaque-ports` (`5432,6379`); throws ConfigError naming the flag. */
export function parseOpaquePorts(entries: readonly string[]): number[] {
  return entries.map((e) => {
    const n = Number(e.trim());
    if (!/^\d{1,5}$/.test(e.trim()) || n < 1 || n > 65535) throw new ConfigError(`--opaque-ports (or TRACEMESH_OPAQUE_PORTS) must be ports from 1 to 65535, got "${e}"`);
    return n;
  });
}

export type SidecarConfig = Required<Omit<SidecarOptions, 'limits'>> & { readonly limits: SidecarLimits };

const LIMIT_FLAGS: Readonly<Record<keyof SidecarLimits, string>> = {
  requestHeadersTimeoutMs: 'request-headers-timeout',
  idleTimeoutMs: 'idle-timeout',
  tlsHandshakeTimeoutMs: 'tls-handshake-timeout',
  upstreamIdleTimeoutMs: 'upstream-idle-timeout',
  appIdleTimeoutMs: 'app-idle-timeout',
  maxConnections: 'max-downstream-connections',
  maxConcurrentRequests: 'max-concurrent-requests',
};

function resolveLimits(o: Partial<SidecarLimits> | undefined): SidecarLimits {
  const limits = { ...DEFAULT_SIDECAR_LIMITS, ...o };
  for (const [key, flag] of Object.entries(LIMIT_FLAGS) as [keyof SidecarLimits, string][]) {
    const v = limits[key];
    if (!Number.isInteger(v) || v < 1) throw new ConfigError(`--${flag} must be at least 1, got ${v}`);
  }
  return limits;
}

function port(value: number, name: string, flag: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 65535) {
    throw new ConfigError(`${name} must be a port number from 0 to 65535, got ${value}; set --${flag}`);
  }
  return value;
}

/** Applies defaults and validates; throws ConfigError naming the flag to fix. */
export function resolveConfig(o: SidecarOptions): SidecarConfig {
  if (o.service === '' || !/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/.test(o.service)) {
    throw new ConfigError(`service name "${o.service}" must be a lowercase DNS name such as "checkout"; set --service`);
  }
  const appPort = port(o.appPort, 'app port', 'app-port');
  if (appPort === 0) throw new ConfigError('app port must be the port the local app listens on, not 0; set --app-port');
  const samplingRatio = o.samplingRatio ?? 1;
  if (!(samplingRatio >= 0 && samplingRatio <= 1)) {
    throw new ConfigError(`sampling ratio must be between 0 and 1, got ${samplingRatio}; set --sampling-ratio`);
  }
  const upstreamTimeoutMs = o.upstreamTimeoutMs ?? 15_000;
  if (!(upstreamTimeoutMs > 0)) throw new ConfigError(`upstream timeout must be positive; set --upstream-timeout`);
  const positive = (v: number | undefined, def: number, flag: string, min = 1): number => {
    const x = v ?? def;
    if (!(Number.isFinite(x) && x >= min)) throw new ConfigError(`--${flag} must be at least ${min}, got ${x}`);
    return x;
  };
  const appTimeoutMs = positive(o.appTimeoutMs, upstreamTimeoutMs, 'app-timeout');
  const outboundTimeoutMs = positive(o.outboundTimeoutMs, upstreamTimeoutMs, 'outbound-timeout');
  const perTryTimeoutMs = positive(o.perTryTimeoutMs, 0, 'per-try-timeout', 0);
  const retryOn = o.retryOn ?? DEFAULT_RETRY_ON;
  parseRetryOn(retryOn);
  const appHealthCheck = o.appHealthCheck ?? '';
  parseHealthCheck(appHealthCheck);
  const healthCheck = o.healthCheck ?? '';
  parseEndpointHealthCheck(healthCheck);
  const drainTimeoutMs = o.drainTimeoutMs ?? 5_000;
  if (!(drainTimeoutMs >= 0)) throw new ConfigError(`drain timeout must not be negative; set --drain-timeout`);
  const accessLog = o.accessLog ?? 'stdout';
  if (accessLog !== 'stdout' && accessLog !== 'off') {
    throw new ConfigError(`access log must be "stdout" or "off", got "${String(accessLog)}"; set --access-log`);
  }
  const appProtocol = o.appProtocol ?? 'auto';
  if (!APP_PROTOCOLS.includes(appProtocol)) {
    throw new ConfigError(`app protocol must be one of ${APP_PROTOCOLS.join(', ')}, got "${String(appProtocol)}"; set --app-protocol`);
  }
  const caAddress = o.caAddress ?? '';
  const caRootCertFile = o.caRootCertFile ?? '';
  const caPlaintext = o.caPlaintext ?? false;
  const caToken = o.caToken ?? '';
  const caTokenFile = o.caTokenFile ?? '';
  const tlsCertFile = o.tlsCertFile ?? '';
  const tlsKeyFile = o.tlsKeyFile ?? '';
  const trustBundleFile = o.trustBundleFile ?? '';
  const files = [tlsCertFile, tlsKeyFile, trustBundleFile].filter((f) => f !== '').length;
  if (files !== 0 && files !== 3) {
    throw new ConfigError('an identity from files needs all three of --tls-cert-file, --tls-key-file and --trust-bundle-file');
  }
  if (caAddress !== '') {
    if (parseAddress(caAddress) === undefined) throw new ConfigError(`CA address "${caAddress}" must be host:port, e.g. tracemesh-controlplane.tracemesh-system.svc:15012; set --ca-address`);
    if (files !== 0) throw new ConfigError('choose one identity source: --ca-address or --tls-cert-file/--tls-key-file/--trust-bundle-file, not both');
    if (caRootCertFile === '' && !caPlaintext) {
      throw new ConfigError('talking to the CA needs its root certificate: set --ca-root-cert (or --ca-plaintext for local development)');
    }
    if (caToken === '' && caTokenFile === '') {
      throw new ConfigError('the CA needs a credential: set --ca-token-file (e.g. a projected service-account token) or --ca-token');
    }
  }
  const trustDomain = o.trustDomain ?? '';
  if (trustDomain !== '' && !isValidTrustDomain(trustDomain)) {
    throw new ConfigError(`trust domain "${trustDomain}" is not valid (lowercase letters, digits, '.', '-', '_'); set --trust-domain`);
  }
  const certTtlMs = o.certTtlMs ?? 24 * 3_600_000;
  if (!(certTtlMs >= 1000)) throw new ConfigError(`certificate lifetime must be at least 1s; set --cert-ttl`);
  const mtlsMode = o.mtlsMode ?? 'STRICT';
  if (!MTLS_MODES.includes(mtlsMode)) {
    throw new ConfigError(`mTLS mode must be one of ${MTLS_MODES.join(', ')}, got "${String(mtlsMode)}"; set --mtls-mode`);
  }
  const identityTimeoutMs = o.identityTimeoutMs ?? 30_000;
  if (!(identityTimeoutMs > 0)) throw new ConfigError('identity timeout must be positive');
  const lbPolicy = o.lbPolicy ?? DEFAULT_LB_POLICY;
  loadBalancerFactory(lbPolicy, '--lb-policy');
  const lbLocalityChild = o.lbLocalityChild ?? DEFAULT_LB_POLICY;
  loadBalancerFactory(lbLocalityChild, '--lb-locality-child');
  const lbHashKey = o.lbHashKey ?? 'source';
  parseHashKey(lbHashKey);
  const controlPlane = o.controlPlane ?? '';
  if (controlPlane !== '') {
    if (parseAddress(controlPlane) === undefined) throw new ConfigError(`control plane address "${controlPlane}" must be host:port, e.g. tracemesh-controlplane.tracemesh-system.svc:15012; set --control-plane`);
    if ((o.endpointsFile ?? '') !== '' || (o.policyFiles ?? []).length > 0) {
      throw new ConfigError('with --control-plane, endpoints and policies come from the control plane: drop --endpoints-file and --policy-files');
    }
    if (!(o.controlPlanePlaintext ?? false) && caAddress === '' && files === 0) {
      throw new ConfigError('xDS is served over mTLS: give the sidecar an identity (--ca-address or --tls-cert-file) or set --control-plane-plaintext for a plaintext control plane');
    }
  }
  const advertiseAddress = o.advertiseAddress ?? '';
  if (advertiseAddress !== '' && parseAddress(advertiseAddress) === undefined) throw new ConfigError(`advertise address "${advertiseAddress}" must be host:port; set --advertise-address`);
  if ((o.register ?? false) && controlPlane === '') throw new ConfigError('--register needs --control-plane');
  const controlPlaneTimeoutMs = o.controlPlaneTimeoutMs ?? 10_000;
  const collectorEndpoint = o.collectorEndpoint ?? 'http://127.0.0.1:4317';
  if (collectorEndpoint !== '' && !/^https?:\/\/[^/\s]+\/?$/.test(collectorEndpoint)) {
    throw new ConfigError(`collector endpoint "${collectorEndpoint}" must look like http://host:4317; set --collector-endpoint`);
  }
  return {
    service: o.service,
    appPort,
    pod: o.pod === undefined || o.pod === '' ? hostname() : o.pod,
    namespace: o.namespace === undefined || o.namespace === '' ? 'default' : o.namespace,
    node: o.node ?? '',
    zone: o.zone ?? '',
    lbPolicy,
    lbHashKey,
    lbLocalityChild,
    outboundPort: port(o.outboundPort ?? 15001, 'outbound port', 'outbound-port'),
    inboundPort: port(o.inboundPort ?? 15006, 'inbound port', 'inbound-port'),
    adminPort: port(o.adminPort ?? 15000, 'admin port', 'admin-port'),
    bindAddress: o.bindAddress ?? '0.0.0.0',
    collectorEndpoint,
    endpointsFile: o.endpointsFile ?? '',
    upstreamTimeoutMs,
    appTimeoutMs,
    outboundTimeoutMs,
    perTryTimeoutMs,
    retryAttempts: positive(o.retryAttempts, 2, 'retry-attempts', 0),
    retryOn,
    retryBudgetRatio: positive(o.retryBudgetRatio, 0.2, 'retry-budget-percent', 0),
    retryBudgetMinPerSecond: positive(o.retryBudgetMinPerSecond, 10, 'retry-budget-min-per-second', 0),
    retryBackoffBaseMs: positive(o.retryBackoffBaseMs, 25, 'retry-backoff-base', 0),
    retryBackoffMaxMs: positive(o.retryBackoffMaxMs, 250, 'retry-backoff-max', 0),
    maxRequests: positive(o.maxRequests, 1024, 'max-requests'),
    maxConnections: positive(o.maxConnections, 1024, 'max-connections'),
    maxPendingRequests: positive(o.maxPendingRequests, 1024, 'max-pending-requests', 0),
    maxRetries: positive(o.maxRetries, 3, 'max-retries', 0),
    outlierConsecutive5xx: positive(o.outlierConsecutive5xx, 5, 'outlier-consecutive-5xx', 0),
    outlierConsecutiveGatewayErrors: positive(o.outlierConsecutiveGatewayErrors, 5, 'outlier-consecutive-gateway-errors', 0),
    outlierIntervalMs: positive(o.outlierIntervalMs, 10_000, 'outlier-interval'),
    outlierBaseEjectionMs: positive(o.outlierBaseEjectionMs, 30_000, 'outlier-base-ejection-time'),
    outlierMaxEjectionPercent: positive(o.outlierMaxEjectionPercent, 10, 'outlier-max-ejection-percent', 0),
    outlierSuccessRateMinimumHosts: positive(o.outlierSuccessRateMinimumHosts, 5, 'outlier-success-rate-minimum-hosts', 0),
    outlierSuccessRateRequestVolume: positive(o.outlierSuccessRateRequestVolume, 100, 'outlier-success-rate-request-volume'),
    outlierSuccessRateStdevFactor: positive(o.outlierSuccessRateStdevFactor, 1900, 'outlier-success-rate-stdev-factor', 0),
    appHealthCheck,
    appHealthIntervalMs: positive(o.appHealthIntervalMs, 5_000, 'app-health-interval'),
    appHealthTimeoutMs: positive(o.appHealthTimeoutMs, 1_000, 'app-health-timeout'),
    appHealthHealthyThreshold: positive(o.appHealthHealthyThreshold, 1, 'app-health-healthy-threshold'),
    appHealthUnhealthyThreshold: positive(o.appHealthUnhealthyThreshold, 3, 'app-health-unhealthy-threshold'),
    healthCheck,
    healthCheckIntervalMs: positive(o.healthCheckIntervalMs, 5_000, 'health-check-interval'),
    healthCheckTimeoutMs: positive(o.healthCheckTimeoutMs, 1_000, 'health-check-timeout'),
    healthCheckHealthyThreshold: positive(o.healthCheckHealthyThreshold, 2, 'health-check-healthy-threshold'),
    healthCheckUnhealthyThreshold: positive(o.healthCheckUnhealthyThreshold, 3, 'health-check-unhealthy-threshold'),
    samplingRatio,
    accessLog,
    drainTimeoutMs,
    appProtocol,
    caAddress,
    caRootCertFile,
    caPlaintext,
    caToken,
    caTokenFile,
    trustDomain,
    certTtlMs,
    tlsCertFile,
    tlsKeyFile,
    trustBundleFile,
    mtlsMode,
    policyFiles: o.policyFiles ?? [],
    routeFiles: o.routeFiles ?? [],
    policyRootNamespace: o.policyRootNamespace === undefined || o.policyRootNamespace === '' ? 'tracemesh-system' : o.policyRootNamespace,
    workloadLabels: o.workloadLabels ?? { app: o.service },
    identityTimeoutMs,
    controlPlane,
    controlPlanePlaintext: o.controlPlanePlaintext ?? false,
    tunnelIdleTimeoutMs: positive(o.tunnelIdleTimeoutMs, 3_600_000, 'tunnel-idle-timeout'),
    opaquePorts: o.opaquePorts ?? [],
    tcpListeners: o.tcpListeners ?? [],
    register: o.register ?? false,
    advertiseAddress,
    controlPlaneTimeoutMs,
    limits: resolveLimits(o.limits),
  };
}
