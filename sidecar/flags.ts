// Command-line flags of `tracemesh sidecar`, each with its TRACEMESH_* environment twin.

import { ConfigError } from '../common/errors.ts';
import type { FlagSpec, FlagValues } from '../common/flags.ts';
import type { AccessLogMode, SidecarOptions } from './config.ts';

export const sidecarFlags = [
  { name: 'service', kind: 'string', default: undefined, description: 'Service this workload belongs to: service.name on spans, and the Host other apps use to call it.' },
  { name: 'pod', kind: 'string', default: '', description: 'Pod name recorded as k8s.pod.name; empty means the host name.' },
  { name: 'namespace', kind: 'string', default: 'default', description: 'Kubernetes namespace recorded as k8s.namespace.name.' },
  { name: 'node', kind: 'string', default: '', description: 'Node name recorded as k8s.node.name; empty omits it.' },
  { name: 'app-port', kind: 'int', default: undefined, description: 'Port of the local app on 127.0.0.1; inbound requests are forwarded there.' },
  { name: 'outbound-port', kind: 'int', default: '15001', description: 'Port (on 127.0.0.1) where the app sends requests for other services, naming them in the Host header.' },
  { name: 'inbound-port', kind: 'int', default: '15006', description: 'Port where peer sidecars send requests for this workload.' },
  { name: 'admin-port', kind: 'int', default: '15000', description: 'Port serving /ready, /live, /metrics (Prometheus) and /debug/endpoints.' },
  { name: 'bind-address', kind: 'string', default: '0.0.0.0', description: 'Address the inbound and admin listeners bind; the outbound one always binds 127.0.0.1.' },
  { name: 'collector-endpoint', kind: 'string', default: 'http://127.0.0.1:4317', description: 'OTLP/gRPC endpoint for spans and access-log records; "none" (or an empty --collector-endpoint=) disables export.' },
  { name: 'endpoints-file', kind: 'string', default: '', description: 'JSON file {"services":{"b":[{"address":"10.0.0.7:15006","pod":"b-1","node":"n2"}]}}; reloaded when it changes.' },
  { name: 'upstream-timeout', kind: 'duration', default: '15s', description: 'How long an upstream may take to start answering before the sidecar answers 504.' },
  { name: 'sampling-ratio', kind: 'string', default: '1.0', description: 'Fraction of new traces to sample, 0 to 1; an incoming sampling decision is always followed.' },
  { name: 'access-log', kind: 'string', default: 'stdout', description: 'Where the JSON access-log line goes: stdout or off. OTLP log records follow --collector-endpoint.' },
  { name: 'drain-timeout', kind: 'duration', default: '5s', description: 'On shutdown, how long in-flight requests (then telemetry export) may take to finish.' },
] as const satisfies readonly FlagSpec[];

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
  return {
    service: v.service,
    appPort: v['app-port'],
    pod: v.pod,
    namespace: v.namespace,
    node: v.node,
    outboundPort: v['outbound-port'],
    inboundPort: v['inbound-port'],
    adminPort: v['admin-port'],
    bindAddress: v['bind-address'],
    collectorEndpoint: collector === 'none' || collector === 'off' ? '' : collector,
    endpointsFile: v['endpoints-file'],
    upstreamTimeoutMs: v['upstream-timeout'],
    samplingRatio: ratio,
    accessLog: accessLog satisfies AccessLogMode,
    drainTimeoutMs: v['drain-timeout'],
  };
}
