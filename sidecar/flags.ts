// Command-line flags of `tracemesh sidecar`, each with its TRACEMESH_* environment twin.

import { ConfigError } from '../common/errors.ts';
import type { FlagSpec, FlagValues } from '../common/flags.ts';
import { APP_PROTOCOLS, MTLS_MODES, parseOpaquePorts, parseTcpListeners, type AccessLogMode, type AppProtocol, type MtlsMode, type SidecarOptions } from './config.ts';

export const sidecarFlags = [
  { name: 'service', kind: 'string', default: undefined, description: 'Service this workload belongs to: service.name on spans, and the Host other apps use to call it.' },
  { name: 'pod', kind: 'string', default: '', description: 'Pod name recorded as k8s.pod.name; empty means the host name.' },
  { name: 'namespace', kind: 'string', default: 'default', description: 'Kubernetes namespace recorded as k8s.namespace.name.' },
  { name: 'node', kind: 'string', default: '', description: 'Node name recorded as k8s.node.name; empty omits it.' },
  { name: 'zone', kind: 'string', default: '', description: 'Zone of this node (topology.kubernetes.io/zone), for --lb-policy locality; empty: unknown.' },
  { name: 'lb-policy', kind: 'string', default: 'peak_ewma', description: 'Load-balancing policy for every destination service: peak_ewma (latency-aware, Linkerd\'s), least_request (power of two choices), round_robin (weighted), ring_hash, maglev (consistent hashing on --lb-hash-key), locality (same node, then zone, then anywhere).' },
  { name: 'lb-hash-key', kind: 'string', default: 'source', description: 'What ring_hash and maglev hash: header:<name>, cookie:<name> or source (the client address).' },
  { name: 'lb-locality-child', kind: 'string', default: 'peak_ewma', description: 'Policy used inside the chosen locality by --lb-policy locality.' },
  { name: 'app-port', kind: 'int', default: undefined, description: 'Port of the local app on 127.0.0.1; inbound requests are forwarded there.' },
  { name: 'outbound-port', kind: 'int', default: '15001', description: 'Port (on 127.0.0.1) where the app sends requests for other services, naming them in the Host header.' },
  { name: 'inbound-port', kind: 'int', default: '15006', description: 'Port where peer sidecars send requests for this workload.' },
  { name: 'admin-port', kind: 'int', default: '15000', description: 'Port serving /ready, /live, /metrics (Prometheus) and /debug/endpoints.' },
  { name: 'bind-address', kind: 'string', default: '0.0.0.0', description: 'Address the inbound and admin listeners bind; the outbound one always binds 127.0.0.1.' },
  { name: 'collector-endpoint', kind: 'string', default: 'http://127.0.0.1:4317', description: 'OTLP/gRPC endpoint for spans and access-log records; "none" (or an empty --collector-endpoint=) disables export.' },
  { name: 'endpoints-file', kind: 'string', default: '', description: 'JSON file {"services":{"b":[{"address":"10.0.0.7:15006","pod":"b-1","node":"n2"}]}}; reloaded when it changes.' },
  { name: 'upstream-timeout', kind: 'duration', default: '15s', description: 'Sets both --app-timeout and --outbound-timeout (kept for compatibility; each of those wins when given).' },
  { name: 'app-timeout', kind: 'duration', default: '0s', description: 'Inbound: how long the local app may take to start answering before the sidecar answers 504 naming the app. 0 (default): --upstream-timeout. A caller\'s remaining time (x-tracemesh-timeout-ms) shortens it.' },
  { name: 'outbound-timeout', kind: 'duration', default: '0s', description: 'Outbound: how long a call to another service may take to start answering, retries included, before 504. 0 (default): --upstream-timeout.' },
  { name: 'per-try-timeout', kind: 'duration', default: '0s', description: 'Outbound: the time of one try (a timed-out idempotent try is retried); 0: only --outbound-timeout.' },
  { name: 'retry-attempts', kind: 'int', default: '2', description: 'Outbound: retries after the first try for the cases --retry-on names (Istio\'s default 2); 0 turns policy retries off.' },
  { name: 'retry-on', kind: 'list', default: 'connect-failure,refused-stream,reset,unavailable,cancelled,503', description: 'What is retried: connect-failure, refused-stream, reset (idempotent), gateway-error (502/503/504, idempotent), 5xx (idempotent), HTTP status codes (idempotent), gRPC statuses by name (unavailable, cancelled, deadline-exceeded, resource-exhausted, internal).' },
  { name: 'retry-budget-percent', kind: 'string', default: '20', description: 'Retries may be at most this percentage of the requests of the last 10 s, per destination service (plus --retry-budget-min-per-second).' },
  { name: 'retry-budget-min-per-second', kind: 'int', default: '10', description: 'Retries allowed per second in any case (the budget\'s floor, for low traffic).' },
  { name: 'retry-backoff-base', kind: 'duration', default: '25ms', description: 'Retry backoff: full jitter in [0, min(max, base × 2^retry)].' },
  { name: 'retry-backoff-max', kind: 'duration', default: '250ms', description: 'Retry backoff cap.' },
  { name: 'max-requests', kind: 'int', default: '1024', description: 'Circuit breaker per destination service: requests in flight; past it, 503 CIRCUIT_OPEN.' },
  { name: 'max-connections', kind: 'int', default: '1024', description: 'Circuit breaker per destination service: upstream connections in use (HTTP/1.1 requests in flight; HTTP/2 shares connections); past it, 503 CIRCUIT_OPEN.' },
  { name: 'max-pending-requests', kind: 'int', default: '1024', description: 'Circuit breaker: requests waiting for an endpoint of a service that has none yet.' },
  { name: 'max-retries', kind: 'int', default: '3', description: 'Circuit breaker: retries in flight per destination service.' },
  { name: 'outlier-consecutive-5xx', kind: 'int', default: '5', description: 'Outlier detection: eject an endpoint after this many 5xx or failed tries in a row; 0 off.' },
  { name: 'outlier-consecutive-gateway-errors', kind: 'int', default: '5', description: 'Outlier detection: eject after this many gateway errors (502, 503, 504, connection failures) in a row; 0 off.' },
  { name: 'outlier-interval', kind: 'duration', default: '10s', description: 'Outlier detection: how often success rates are judged and ejections reviewed.' },
  { name: 'outlier-base-ejection-time', kind: 'duration', default: '30s', description: 'Outlier detection: an ejection lasts this × the number of times the endpoint was ejected.' },
  { name: 'outlier-max-ejection-percent', kind: 'int', default: '10', description: 'Outlier detection: most endpoints of a service ejected at once, in percent (at least one may always be ejected).' },
  { name: 'outlier-success-rate-minimum-hosts', kind: 'int', default: '5', description: 'Success-rate ejection: endpoints with enough requests needed to judge; 0 turns it off.' },
  { name: 'outlier-success-rate-request-volume', kind: 'int', default: '100', description: 'Success-rate ejection: requests an endpoint needs in an interval to be judged.' },
  { name: 'outlier-success-rate-stdev-factor', kind: 'int', default: '1900', description: 'Success-rate ejection: eject below mean − stdev × factor/1000.' },
  { name: 'app-health-check', kind: 'string', default: '', description: 'Active health check of the local app, served on the admin port at /health/app: http:<path> (2xx healthy), grpc or grpc:<service> (grpc.health.v1). Empty: off.' },
  { name: 'app-health-interval', kind: 'duration', default: '5s', description: 'Time between app health checks.' },
  { name: 'app-health-timeout', kind: 'duration', default: '1s', description: 'A health check that takes longer fails.' },
  { name: 'app-health-healthy-threshold', kind: 'int', default: '1', description: 'Passing checks in a row that make an unhealthy app healthy.' },
  { name: 'app-health-unhealthy-threshold', kind: 'int', default: '3', description: 'Failing checks in a row that make a healthy app unhealthy.' },
  { name: 'health-check', kind: 'string', default: '', description: 'Active health checks of peer endpoints: http:<path> (GET over the mesh hop, 2xx healthy); unhealthy endpoints take no traffic. Empty: off.' },
  { name: 'health-check-interval', kind: 'duration', default: '5s', description: 'Time between two health checks of one endpoint.' },
  { name: 'health-check-timeout', kind: 'duration', default: '1s', description: 'A peer health check that takes longer fails.' },
  { name: 'health-check-healthy-threshold', kind: 'int', default: '2', description: 'Passing checks in a row that make an unhealthy endpoint healthy again.' },
  { name: 'health-check-unhealthy-threshold', kind: 'int', default: '3', description: 'Failing checks in a row that make a healthy endpoint unhealthy.' },
  { name: 'sampling-ratio', kind: 'string', default: '1.0', description: 'Fraction of new traces to sample, 0 to 1; an incoming sampling decision is always followed.' },
  { name: 'access-log', kind: 'string', default: 'stdout', description: 'Where the JSON access-log line goes: stdout or off. OTLP log records follow --collector-endpoint.' },
  { name: 'drain-timeout', kind: 'duration', default: '5s', description: 'On shutdown, how long in-flight requests (then telemetry export) may take to finish.' },
  { name: 'app-protocol', kind: 'string', default: 'auto', description: 'How the inbound side talks to the local app: auto (gRPC and requests the caller made over HTTP/2 as h2c, the rest as HTTP/1.1), http1, or h2c.' },
  { name: 'ca-address', kind: 'string', default: '', description: 'Mesh CA host:port (the control plane, e.g. tracemesh-controlplane.tracemesh-system.svc:15012). Turns on mTLS between sidecars. Empty: no CA; without --tls-cert-file too, the mesh is plaintext.' },
  { name: 'ca-root-cert', kind: 'string', default: '', description: 'PEM file with the mesh root that verifies the CA server (which must present spiffe://<trust-domain>/ns/tracemesh-system/sa/tracemesh-controlplane).' },
  { name: 'ca-plaintext', kind: 'bool', default: 'false', description: 'Talk to the CA without TLS (local development only; the token then travels in clear).' },
  { name: 'ca-token', kind: 'string', default: '', description: 'Bootstrap token the CA authenticates this workload by. Prefer --ca-token-file.' },
  { name: 'ca-token-file', kind: 'string', default: '', description: 'File holding the CA token (e.g. a projected Kubernetes service-account token); re-read on every renewal.' },
  { name: 'trust-domain', kind: 'string', default: '', description: 'Trust domain peers must belong to (spiffe://<trust-domain>/...). Empty: the one in this workload\'s own certificate (cluster.local for the CA server\'s identity).' },
  { name: 'cert-ttl', kind: 'duration', default: '24h', description: 'Lifetime of the workload certificate to ask the CA for; it is renewed at about half of it.' },
  { name: 'tls-cert-file', kind: 'string', default: '', description: 'Workload identity from files instead of a CA: PEM certificate chain (leaf first, SPIFFE ID as URI SAN). Watched; needs --tls-key-file and --trust-bundle-file.' },
  { name: 'tls-key-file', kind: 'string', default: '', description: 'PEM private key of --tls-cert-file.' },
  { name: 'trust-bundle-file', kind: 'string', default: '', description: 'PEM roots that peers\' certificates must chain to (identity from files).' },
  { name: 'mtls-mode', kind: 'string', default: 'STRICT', description: 'Inbound mTLS mode when no PeerAuthentication sets one: STRICT (mTLS only), PERMISSIVE (mTLS or plaintext) or DISABLE (plaintext only).' },
  { name: 'policy-files', kind: 'list', default: '', description: 'Comma-separated AuthorizationPolicy/PeerAuthentication YAML files or directories (local mode); reloaded when they change.' },
  { name: 'policy-root-namespace', kind: 'string', default: 'tracemesh-system', description: 'Namespace whose policies apply to every workload (Istio\'s root namespace).' },
  { name: 'workload-labels', kind: 'list', default: '', description: 'Pod labels that policy selectors match, as key=value pairs separated by commas. Empty: app=<service>.' },
  { name: 'route-files', kind: 'list', default: '', description: 'Comma-separated HTTPRoute/GRPCRoute/FaultInjection YAML files or directories (local mode; Gateway API, GAMMA profile); reloaded when they change, a broken edit keeps the last good routes.' },
  { name: 'intercept', kind: 'bool', default: 'false', description: "Transparent interception: install iptables rules (nat OUTPUT) that send the app's outbound TCP to --intercept-ports to the outbound listener, and remove them on shutdown. Needs root or CAP_NET_ADMIN; the app must run under another uid than the sidecar." },
  { name: 'intercept-ports', kind: 'list', default: '80', description: 'Destination ports whose traffic --intercept redirects to the outbound listener as HTTP (the Host header names the Service).' },
  { name: 'intercept-exclude', kind: 'list', default: '', description: 'IPv4 destinations (CIDRs) that --intercept never redirects; loopback is always excluded.' },
  { name: 'control-plane', kind: 'string', default: '', description: 'Control plane xDS host:port (the CA port, e.g. tracemesh-controlplane.tracemesh-system.svc:15012): endpoints, per-peer mTLS modes and policies come from it over mTLS. Empty: use --endpoints-file and --policy-files.' },
  { name: 'control-plane-plaintext', kind: 'bool', default: 'false', description: 'Dial xDS without TLS (only for a control plane run with --ca-plaintext on loopback).' },
  { name: 'register', kind: 'bool', default: 'false', description: 'Register this workload (service, pod, node, namespace, labels, --advertise-address) with the control plane while connected; for workloads outside Kubernetes.' },
  { name: 'advertise-address', kind: 'string', default: '', description: 'host:port other sidecars dial to reach this one\'s inbound port; empty: the bind address (127.0.0.1 for 0.0.0.0) and --inbound-port.' },
  { name: 'control-plane-timeout', kind: 'duration', default: '10s', description: 'How long startup waits for the first configuration from the control plane before serving with what it has.' },
  { name: 'request-headers-timeout', kind: 'duration', default: '10s', description: 'A request head must be complete this long after its first byte, on every listener (Envoy\'s request_headers_timeout); then 408 and the connection closes.' },
  { name: 'idle-timeout', kind: 'duration', default: '60s', description: 'A downstream connection (HTTP/1.1 or HTTP/2) with no request in flight for this long is closed (Envoy\'s idle_timeout).' },
  { name: 'tls-handshake-timeout', kind: 'duration', default: '10s', description: 'A TLS handshake on the mTLS inbound port must finish this long after the connection\'s first byte; then the connection is closed and counted (reason="deadline").' },
  { name: 'upstream-idle-timeout', kind: 'duration', default: '60s', description: 'A pooled HTTP/1.1 connection to a peer sidecar unused for this long is closed.' },
  { name: 'app-idle-timeout', kind: 'duration', default: '4s', description: 'A pooled HTTP/1.1 connection to the local app unused for this long is closed; keep it below the app\'s keep-alive timeout (Node: 5 s), so the sidecar closes first.' },
  { name: 'max-downstream-connections', kind: 'int', default: '4096', description: 'Open connections per listener (outbound, inbound); more are closed at accept and counted. The admin port allows 64.' },
  { name: 'tunnel-idle-timeout', kind: 'duration', default: '1h', description: 'An established tunnel (WebSocket or other HTTP/1.1 upgrade, raw TCP) with no byte either way for this long is closed (Envoy\'s tcp_proxy idle_timeout).' },
  { name: 'opaque-ports', kind: 'list', default: '', description: 'Inbound: app ports that peer sidecars may reach with raw TCP (opaque: not parsed as HTTP), carried as an HTTP/1.1 CONNECT over mTLS, e.g. 5432,6379. Other ports are refused (403 PORT_NOT_OPAQUE).' },
  { name: 'tcp-listeners', kind: 'list', default: '', description: 'Outbound raw TCP: <listen-port>=<service>:<port> entries; the app connects to 127.0.0.1:<listen-port> and the bytes go, over mTLS, to <port> (declared in the peer\'s --opaque-ports) of a pod of <service>. Listen port 0 picks a free one.' },
  { name: 'max-concurrent-requests', kind: 'int', default: '1024', description: 'Requests in flight per direction (Envoy\'s max_requests); more are answered 503 OVERLOADED (gRPC: UNAVAILABLE) and counted. The admin port allows 16.' },
] as const satisfies readonly FlagSpec[];

/** What `--intercept` asks for; undefined when it is off. */
export interface InterceptFlags {
  readonly httpPorts: readonly number[];
  readonly exclude: readonly string[];
}

/** The interception flags; throws ConfigError on a bad port. */
export function interceptFromFlags(v: SidecarFlagValues): InterceptFlags | undefined {
  if (!v.intercept) return undefined;
  const httpPorts = v['intercept-ports'].map((p) => {
    const n = Number(p);
    if (!/^\d{1,5}$/.test(p) || n < 1 || n > 65535) throw new ConfigError(`--intercept-ports (or TRACEMESH_INTERCEPT_PORTS) must be ports from 1 to 65535, got "${p}"`);
    return n;
  });
  return { httpPorts, exclude: v['intercept-exclude'] };
}

export type SidecarFlagValues = FlagValues<typeof sidecarFlags>;

/** Turns parsed flags into startSidecar options; throws ConfigError on values flags cannot type. */
export function optionsFromFlags(v: SidecarFlagValues): SidecarOptions {
  const ratio = Number(v['sampling-ratio']);
  if (v['sampling-ratio'].trim() === '' || !Number.isFinite(ratio)) {
    throw new ConfigError(`--sampling-ratio (or TRACEMESH_SAMPLING_RATIO) must be a number from 0 to 1, got "${v['sampling-ratio']}"`);
  }
  const accessLog = v['access-log'];
  if (accessLog !== 'stdout' && accessLog !== 'off') {
    throw new ConfigError(`--access-log (or TRACEMESH_ACCESS_LOG) must be stdout or off, got "${accessLog}"`);
  }
  const collector = v['collector-endpoint'];
  const mode = v['mtls-mode'].toUpperCase();
  if (!MTLS_MODES.includes(mode as MtlsMode)) {
    throw new ConfigError(`--mtls-mode (or TRACEMESH_MTLS_MODE) must be STRICT, PERMISSIVE or DISABLE, got "${v['mtls-mode']}"`);
  }
  const appProtocol = v['app-protocol'].toLowerCase();
  if (!APP_PROTOCOLS.includes(appProtocol as AppProtocol)) {
    throw new ConfigError(`--app-protocol (or TRACEMESH_APP_PROTOCOL) must be auto, http1 or h2c, got "${v['app-protocol']}"`);
  }
  const budgetPercent = Number(v['retry-budget-percent']);
  if (!(v['retry-budget-percent'].trim() !== '' && budgetPercent >= 0 && budgetPercent <= 100)) {
    throw new ConfigError(`--retry-budget-percent (or TRACEMESH_RETRY_BUDGET_PERCENT) must be a number from 0 to 100, got "${v['retry-budget-percent']}"`);
  }
  // Prototype-free: a label named `__proto__` or `constructor` is a label like any other.
  const labels = Object.create(null) as Record<string, string>;
  for (const pair of v['workload-labels']) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--workload-labels (or TRACEMESH_WORKLOAD_LABELS) must be key=value pairs, got "${pair}"`);
    labels[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return {
    service: v.service,
    appPort: v['app-port'],
    pod: v.pod,
    namespace: v.namespace,
    node: v.node,
    zone: v.zone,
    lbPolicy: v['lb-policy'],
    lbHashKey: v['lb-hash-key'],
    lbLocalityChild: v['lb-locality-child'],
    outboundPort: v['outbound-port'],
    inboundPort: v['inbound-port'],
    adminPort: v['admin-port'],
    bindAddress: v['bind-address'],
    collectorEndpoint: collector === 'none' || collector === 'off' ? '' : collector,
    endpointsFile: v['endpoints-file'],
    upstreamTimeoutMs: v['upstream-timeout'],
    ...(v['app-timeout'] === undefined || v['app-timeout'] === 0 ? {} : { appTimeoutMs: v['app-timeout'] }),
    ...(v['outbound-timeout'] === undefined || v['outbound-timeout'] === 0 ? {} : { outboundTimeoutMs: v['outbound-timeout'] }),
    perTryTimeoutMs: v['per-try-timeout'],
    retryAttempts: v['retry-attempts'],
    retryOn: v['retry-on'],
    retryBudgetRatio: budgetPercent / 100,
    retryBudgetMinPerSecond: v['retry-budget-min-per-second'],
    retryBackoffBaseMs: v['retry-backoff-base'],
    retryBackoffMaxMs: v['retry-backoff-max'],
    maxRequests: v['max-requests'],
    maxConnections: v['max-connections'],
    maxPendingRequests: v['max-pending-requests'],
    maxRetries: v['max-retries'],
    outlierConsecutive5xx: v['outlier-consecutive-5xx'],
    outlierConsecutiveGatewayErrors: v['outlier-consecutive-gateway-errors'],
    outlierIntervalMs: v['outlier-interval'],
    outlierBaseEjectionMs: v['outlier-base-ejection-time'],
    outlierMaxEjectionPercent: v['outlier-max-ejection-percent'],
    outlierSuccessRateMinimumHosts: v['outlier-success-rate-minimum-hosts'],
    outlierSuccessRateRequestVolume: v['outlier-success-rate-request-volume'],
    outlierSuccessRateStdevFactor: v['outlier-success-rate-stdev-factor'],
    appHealthCheck: v['app-health-check'],
    appHealthIntervalMs: v['app-health-interval'],
    appHealthTimeoutMs: v['app-health-timeout'],
    appHealthHealthyThreshold: v['app-health-healthy-threshold'],
    appHealthUnhealthyThreshold: v['app-health-unhealthy-threshold'],
    healthCheck: v['health-check'],
    healthCheckIntervalMs: v['health-check-interval'],
    healthCheckTimeoutMs: v['health-check-timeout'],
    healthCheckHealthyThreshold: v['health-check-healthy-threshold'],
    healthCheckUnhealthyThreshold: v['health-check-unhealthy-threshold'],
    samplingRatio: ratio,
    accessLog: accessLog satisfies AccessLogMode,
    drainTimeoutMs: v['drain-timeout'],
    appProtocol: appProtocol as AppProtocol,
    caAddress: v['ca-address'],
    caRootCertFile: v['ca-root-cert'],
    caPlaintext: v['ca-plaintext'],
    caToken: v['ca-token'],
    caTokenFile: v['ca-token-file'],
    trustDomain: v['trust-domain'],
    certTtlMs: v['cert-ttl'],
    tlsCertFile: v['tls-cert-file'],
    tlsKeyFile: v['tls-key-file'],
    trustBundleFile: v['trust-bundle-file'],
    mtlsMode: mode as MtlsMode,
    policyFiles: v['policy-files'],
    routeFiles: v['route-files'],
    policyRootNamespace: v['policy-root-namespace'],
    ...(Object.keys(labels).length > 0 ? { workloadLabels: labels } : {}),
    controlPlane: v['control-plane'],
    controlPlanePlaintext: v['control-plane-plaintext'],
    register: v.register,
    advertiseAddress: v['advertise-address'],
    controlPlaneTimeoutMs: v['control-plane-timeout'],
    tunnelIdleTimeoutMs: v['tunnel-idle-timeout'],
    opaquePorts: parseOpaquePorts(v['opaque-ports']),
    tcpListeners: parseTcpListeners(v['tcp-listeners']),
    limits: {
      requestHeadersTimeoutMs: v['request-headers-timeout'],
      idleTimeoutMs: v['idle-timeout'],
      tlsHandshakeTimeoutMs: v['tls-handshake-timeout'],
      upstreamIdleTimeoutMs: v['upstream-idle-timeout'],
      appIdleTimeoutMs: v['app-idle-timeout'],
      maxConnections: v['max-downstream-connections'],
      maxConcurrentRequests: v['max-concurrent-requests'],
    },
  };
}
