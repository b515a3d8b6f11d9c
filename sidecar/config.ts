// The sidecar's configuration: what startSidecar accepts, its defaults, and validation.

import { hostname } from 'node:os';
import { ConfigError } from '../common/errors.ts';

export type AccessLogMode = 'stdout' | 'off';

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
  /** How long an upstream may take to start answering; default 15 000 ms. */
  readonly upstreamTimeoutMs?: number;
  /** Root sampling probability in [0, 1]; default 1. Parent decisions are always followed. */
  readonly samplingRatio?: number;
  /** Access-log line on stdout (`stdout`, default) or none (`off`). */
  readonly accessLog?: AccessLogMode;
  /** How long close() lets in-flight requests, then telemetry export, finish; default 5 000 ms. */
  readonly drainTimeoutMs?: number;
}

export type SidecarConfig = Required<SidecarOptions>;

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
  const drainTimeoutMs = o.drainTimeoutMs ?? 5_000;
  if (!(drainTimeoutMs >= 0)) throw new ConfigError(`drain timeout must not be negative; set --drain-timeout`);
  const accessLog = o.accessLog ?? 'stdout';
  if (accessLog !== 'stdout' && accessLog !== 'off') {
    throw new ConfigError(`access log must be "stdout" or "off", got "${String(accessLog)}"; set --access-log`);
  }
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
    outboundPort: port(o.outboundPort ?? 15001, 'outbound port', 'outbound-port'),
    inboundPort: port(o.inboundPort ?? 15006, 'inbound port', 'inbound-port'),
    adminPort: port(o.adminPort ?? 15000, 'admin port', 'admin-port'),
    bindAddress: o.bindAddress ?? '0.0.0.0',
    collectorEndpoint,
    endpointsFile: o.endpointsFile ?? '',
    upstreamTimeoutMs,
    samplingRatio,
    accessLog,
    drainTimeoutMs,
  };
}
