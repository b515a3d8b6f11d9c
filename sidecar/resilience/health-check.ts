// Active health checks of peer endpoints (`--health-check http:<path>`), with Envoy's
// threshold semantics: every `interval` each endpoint of every cluster gets `GET <path>` the
// way a request would reach it (mTLS to the peer sidecar when this sidecar has an identity,
// plaintext otherwise); 2xx within `timeout` passes. An endpoint turns unhealthy after
// `unhealthyThreshold` failed checks in a row and healthy again after `healthyThreshold`
// passing ones; its first check decides from "unknown" (until then it takes traffic). An
// unhealthy endpoint is not usable: the cluster rebalances without it, next to outlier
// detection's ejections (sidecar/balancer/cluster.ts combines both, with the panic threshold).
//
// The check carries a `traceparent` whose sampled flag is off, so the peer's sidecar follows
// that decision and records no trace of it; its user agent is `tracemesh-health-check`.

import { randomBytes } from 'node:crypto';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions as HttpsRequestOptions } from 'node:https';
import { isIP } from 'node:net';
import type { PeerCertificate, SecureContext } from 'node:tls';
import { ConfigError } from '../../common/errors.ts';
import type { Cluster, ClusterManager, EndpointFilter } from '../balancer/cluster.ts';
import type { Endpoint } from '../endpoints/endpoints.ts';
import { checkServerPeer } from '../identity/peer.ts';
import type { MeshTls } from '../transport/credentials.ts';

/** Parses `--health-check`; undefined for '' (off). */
export function parseEndpointHealthCheck(spec: string): { readonly path: string } | undefined {
  if (spec === '') return undefined;
  if (spec.startsWith('http:/')) return { path: spec.slice(5) };
  throw new ConfigError(`--health-check must be http:<path> (e.g. http:/healthz) or empty (off), got "${spec}"`);
}

export interface HealthCheckOptions {
  /** The request path, e.g. `/healthz`. */
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
  /** mTLS to peer sidecars; undefined: plaintext. */
  readonly tls: MeshTls | undefined;
  /** An endpoint changed between healthy and unhealthy. */
  readonly onChange?: (endpoint: Endpoint, healthy: boolean, error: string | undefined) => void;
  /** Every check's outcome (for the metric). */
  readonly onCheck?: (endpoint: Endpoint, ok: boolean) => void;
}

export type EndpointHealthStatus = 'unknown' | 'healthy' | 'unhealthy';

/** One endpoint address's checks. Keyed by address: an endpoint shared by several services is checked once. */
class Target {
  status: EndpointHealthStatus = 'unknown';
  passes = 0;
  failures = 0;
  lastError: string | undefined = undefined;
  inFlight: ClientRequest | undefined = undefined;
  /** The sweep that last saw the endpoint in a cluster. */
  seen = 0;
  endpoint: Endpoint;
  constructor(endpoint: Endpoint) {
    this.endpoint = endpoint;
  }
}

export class EndpointHealthChecker implements EndpointFilter {
  private readonly o: HealthCheckOptions;
  private readonly clusters: ClusterManager;
  private readonly targets = new Map<string, Target>();
  private readonly timer: NodeJS.Timeout;
  private sweepNo = 0;
  private closed = false;

  constructor(clusters: ClusterManager, o: HealthCheckOptions) {
    this.o = o;
    this.clusters = clusters;
    clusters.addFilter(this);
    this.timer = setInterval(() => this.sweep(), o.intervalMs);
    this.timer.unref();
    setImmediate(() => this.sweep());
  }

  usable(_cluster: Cluster, endpoint: Endpoint): boolean {
    return this.targets.get(endpoint.address)?.status !== 'unhealthy';
  }

  /** The endpoint's health as the checks see it (for /debug/clusters). */
  status(endpoint: Endpoint): EndpointHealthStatus {
    return this.targets.get(endpoint.address)?.status ?? 'unknown';
  }

  lastError(endpoint: Endpoint): string | undefined {
    return this.targets.get(endpoint.address)?.lastError;
  }

  /** Starts one check per endpoint (skipping one whose last check is still running) and forgets endpoints that left. */
  private sweep(): void {
    if (this.closed) return;
    const n = ++this.sweepNo;
    for (const c of this.clusters.all()) {
      for (const e of c.endpoints) {
        let t = this.targets.get(e.address);
        if (t === undefined) {
          t = new Target(e);
          this.targets.set(e.address, t);
        }
        t.endpoint = e;
        t.seen = n;
      }
    }
    for (const [address, t] of this.targets) {
      if (t.seen !== n) {
        t.inFlight?.destroy();
        this.targets.delete(address);
        continue;
      }
      if (t.inFlight === undefined) this.check(t);
    }
  }

  private check(t: Target): void {
    const e = t.endpoint;
    const o = this.o;
    const tls = o.tls;
    const headers = {
      host: e.pod ?? e.host,
      'user-agent': 'tracemesh-health-check',
      // Not sampled: the peer's sidecar follows this decision and records nothing.
      traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-00`,
    };
    let done = false;
    const finish = (ok: boolean, error: string | undefined): void => {
      if (done) return;
      done = true;
      t.inFlight = undefined;
      if (!this.closed && this.targets.get(e.address) === t) this.result(t, ok, error);
    };
    const onResponse = (res: IncomingMessage): void => {
      const s = res.statusCode ?? 0;
      res.resume();
      res.on('error', () => undefined);
      finish(s >= 200 && s < 300, s >= 200 && s < 300 ? undefined : `GET ${o.path} answered ${s}`);
      req.destroy();
    };
    const common = { host: e.host, port: e.port, path: o.path, method: 'GET', agent: false as const, headers, timeout: o.timeoutMs };
    let req: ClientRequest;
    if (tls === undefined) req = httpRequest(common, onResponse);
    else {
      // https hands these to tls.connect, which takes a ready SecureContext (the renewed one).
      const secure: HttpsRequestOptions & { secureContext: SecureContext; ALPNProtocols: string[] } = {
        ...common,
        secureContext: tls.clientContext,
        ALPNProtocols: ['http/1.1'],
        ...(isIP(e.host) === 0 ? { servername: e.host } : {}),
        rejectUnauthorized: true,
        checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
          try {
            checkServerPeer(cert, tls.trustDomain, e.identity);
            return undefined;
          } catch (err) {
            return err as Error;
          }
        },
      };
      req = httpsRequest(secure, onResponse);
    }
    t.inFlight = req;
    req.on('timeout', () => req.destroy(new Error(`GET ${o.path} took longer than ${o.timeoutMs} ms (--health-check-timeout)`)));
    req.on('error', (err) => finish(false, err.message));
    req.on('close', () => finish(false, 'the connection closed before an answer'));
    req.end();
  }

  private result(t: Target, ok: boolean, error: string | undefined): void {
    const o = this.o;
    const before = t.status;
    t.lastError = error;
    if (ok) {
      t.failures = 0;
      t.passes++;
      if (t.status === 'unknown' || (t.status === 'unhealthy' && t.passes >= o.healthyThreshold)) t.status = 'healthy';
    } else {
      t.passes = 0;
      t.failures++;
      if (t.status === 'unknown' || (t.status === 'healthy' && t.failures >= o.unhealthyThreshold)) t.status = 'unhealthy';
    }
    o.onCheck?.(t.endpoint, ok);
    if (t.status === before) return;
    // 'unknown' → 'healthy' changes nothing for the balancers (unknown endpoints take traffic).
    if (before !== 'unknown' || t.status === 'unhealthy') {
      o.onChange?.(t.endpoint, t.status === 'healthy', error);
      for (const c of this.clusters.all()) if (c.endpoints.some((x) => x.address === t.endpoint.address)) c.refresh();
    }
  }

  /** Stops checking. Safe to call twice. */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const t of this.targets.values()) t.inFlight?.destroy();
    this.targets.clear();
  }
}
