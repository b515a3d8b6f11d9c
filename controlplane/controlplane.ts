// Assembles the control plane: the CA and xDS on one gRPC server (mTLS with the mesh
// identity), an optional plaintext xDS port for proxyless clients (Istio's 15010), the
// service registry fed by self-registration (and Kubernetes, when configured), policies
// from YAML files (or CRDs), and a debug HTTP port for `tracemesh proxy-status`.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Logger } from '../common/logger.ts';
import { silentLogger } from '../common/logger.ts';
import { EMPTY_POLICY_SET, type PolicySet } from '../common/policy/load.ts';
import { DEFAULT_ROOT_NAMESPACE } from '../common/policy/selection.ts';
import type { EffectiveMtlsMode } from '../common/policy/mtls-mode.ts';
import { preloadXdsProtos } from '../common/xds/protos.ts';
import type { Authenticator } from './ca/authn/authenticator.ts';
import type { CertificateAuthority } from './ca/pki/authority.ts';
import { startCaServer, type CaServer, type CaServerTransport } from './ca/server/server.ts';
import type { SigningRateLimiter } from './ca/server/rate-limit.ts';
import { ServiceRegistry, type ServiceKey } from './discovery/model.ts';
import { SelfRegistration } from './discovery/registration.ts';
import type { MeshSnapshot } from './xds/generators.ts';
import { XdsServer, type XdsServerHooks } from './xds/server.ts';
import { adsServerDefinition } from './xds/wire.ts';
import { startInjectionWebhook, type AdmissionOptions, type InjectionWebhook } from './inject/webhook.ts';

/** Policies as the control plane reads them: YAML files (PolicyWatcher) or CRDs. */
export interface PolicyFeed {
  current(): PolicySet;
  subscribe(listener: (set: PolicySet) => void): () => void;
}

export interface ControlPlaneOptions {
  readonly ca: CertificateAuthority;
  readonly authenticators: readonly Authenticator[];
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** CA + xDS port. Default 15012; 0 picks one. */
  readonly port?: number;
  readonly transport?: CaServerTransport;
  /** Per-identity signing rate limit and TLS handshake timeout of the CA port (controlplane/ca/flags.ts). */
  readonly rateLimiter?: SigningRateLimiter;
  readonly tlsHandshakeTimeoutMs?: number;
  /** A CA/xDS connection with no open call for this long is closed (--ca-idle-timeout). Default 60 s. */
  readonly idleTimeoutMs?: number;
  /** Open connections of the CA/xDS port at most (--ca-max-connections). Default 4096. */
  readonly maxConnections?: number;
  /** Prometheus registry behind the debug port's `/metrics`. Default: a fresh one with process metrics. */
  readonly metricsRegistry?: Registry;
  /** Plaintext xDS only (no CA, no registration), for proxyless gRPC clients. Undefined: off. */
  readonly xdsPlaintextPort?: number;
  /** Host of the plaintext xDS and debug listeners. Default 127.0.0.1. */
  readonly localHost?: string;
  /** Debug HTTP port (`/debug/syncz`, `/debug/registry`, `/ready`, `/metrics`). Undefined: off. */
  readonly debugPort?: number;
  readonly policies?: PolicyFeed;
  /** Self-registration; false turns it off. */
  readonly registration?: false | { readonly graceMs?: number; readonly warmupMs?: number };
  readonly debounceMs?: number;
  readonly debounceMaxMs?: number;
  readonly defaultMtlsMode?: EffectiveMtlsMode;
  readonly rootNamespace?: string;
  /** The registry to use (e.g. one a Kubernetes source also feeds). Default: a new one. */
  readonly registry?: ServiceRegistry;
  /** What the discovery sources report of themselves (informers, rejected objects), shown on /debug/registry. */
  readonly discoveryStatus?: () => unknown;
  /** The sidecar injection webhook (HTTPS, certificate from the mesh CA). Undefined: off. */
  readonly injectionWebhook?: AdmissionOptions & { readonly port: number; readonly host?: string; readonly dnsNames?: readonly string[] };
  readonly logger?: Logger;
}

export interface ControlPlane {
  readonly caServer: CaServer;
  /** `host:port` of CA + xDS. */
  readonly address: string;
  readonly port: number;
  /** `host:port` of plaintext xDS, when on. */
  readonly plaintextXdsAddress: string | undefined;
  /** `http://host:port` of the debug listener, when on. */
  readonly debugUrl: string | undefined;
  readonly registry: ServiceRegistry;
  readonly xds: XdsServer;
  readonly plaintextXds: XdsServer | undefined;
  readonly registration: SelfRegistration | undefined;
  /** The injection webhook, when on. */
  readonly injectionWebhook: InjectionWebhook | undefined;
  /** Ends the xDS streams, then stops the servers. Safe to call twice. */
  close(): Promise<void>;
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const logger = (options.logger ?? silentLogger).child({ component: 'controlplane' });
  preloadXdsProtos();
  const transport = options.transport ?? { kind: 'tls' };
  const registry = options.registry ?? new ServiceRegistry();
  const policies = options.policies;
  const makeSnapshot = (): MeshSnapshot => ({
    services: registry.services(),
    policies: policies?.current() ?? EMPTY_POLICY_SET,
    trustDomain: options.ca.trustDomain,
    rootNamespace: options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE,
    defaultMtlsMode: options.defaultMtlsMode ?? 'STRICT',
  });
  const mtls = transport.kind === 'tls';
  const registration =
    options.registration === false ? undefined : new SelfRegistration({ registry, graceMs: options.registration?.graceMs, requireIdentity: mtls, logger });
  const warmupMs = options.registration === false ? 0 : (options.registration?.warmupMs ?? 0);
  const common = { logger, trustDomain: options.ca.trustDomain, debounceMs: options.debounceMs, debounceMaxMs: options.debounceMaxMs, holdUntil: Date.now() + warmupMs };
  const hooks: XdsServerHooks | undefined = registration;
  const xds = new XdsServer(makeSnapshot(), { ...common, requireClientCertificate: mtls, identifier: 'tracemesh-controlplane', ...(hooks ? { hooks } : {}) });
  const plaintextXds = options.xdsPlaintextPort === undefined ? undefined : new XdsServer(makeSnapshot(), { ...common, requireClientCertificate: false, identifier: 'tracemesh-controlplane (plaintext)' });

  const publish = (services: ReadonlySet<ServiceKey>, policiesChanged: boolean): void => {
    const snapshot = makeSnapshot();
    const change = { services, policies: policiesChanged };
    xds.update(snapshot, change);
    plaintextXds?.update(snapshot, change);
  };
  const unsubscribe = [registry.subscribe((keys) => publish(keys, false))];
  if (policies !== undefined) unsubscribe.push(policies.subscribe(() => publish(new Set(), true)));

  const service = { definition: adsServerDefinition(), implementation: xds.implementation };
  const metrics = options.metricsRegistry ?? defaultRegistry();
  const caServer = await startCaServer({
    ca: options.ca,
    authenticators: options.authenticators,
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 15012,
    transport,
    // xDS requests carry many resource names; the CA's own limit is far smaller.
    maxRequestBytes: 4 * 1024 * 1024,
    services: [service],
    ...(options.rateLimiter !== undefined ? { rateLimiter: options.rateLimiter } : {}),
    ...(options.tlsHandshakeTimeoutMs !== undefined ? { tlsHandshakeTimeoutMs: options.tlsHandshakeTimeoutMs } : {}),
    ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
    ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
    registry: metrics,
    logger,
  });
  const localHost = options.localHost ?? '127.0.0.1';
  let plainServer: grpc.Server | undefined;
  let plaintextXdsAddress: string | undefined;
  let debugServer: Server | undefined;
  let debugUrl: string | undefined;
  let webhook: InjectionWebhook | undefined;
  try {
    if (options.injectionWebhook !== undefined) {
      const w = options.injectionWebhook;
      webhook = await startInjectionWebhook({ ...w, ca: options.ca, host: w.host ?? options.host ?? '127.0.0.1', metrics, logger });
    }
    if (plaintextXds !== undefined) {
      plainServer = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
      plainServer.addService(adsServerDefinition(), plaintextXds.implementation);
      const srv = plainServer;
      const port = await new Promise<number>((resolve, reject) =>
        srv.bindAsync(`${localHost}:${options.xdsPlaintextPort}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
      plaintextXdsAddress = `${localHost}:${port}`;
      logger.info('plaintext xDS listening (no authentication: keep it on loopback or behind a NetworkPolicy)', { address: plaintextXdsAddress });
    }
    if (options.debugPort !== undefined) {
      const ds = createDebugServer(metrics, () => ({
        syncz: [...xds.status(), ...(plaintextXds?.status() ?? [])],
        registry: [...registry.services().values()],
        registrations: registration?.snapshot() ?? [],
        discovery: options.discoveryStatus?.() ?? {},
      }));
      debugServer = ds;
      await new Promise<void>((resolve, reject) => {
        ds.once('error', reject);
        ds.listen(options.debugPort, localHost, () => resolve());
      });
      debugUrl = `http://${localHost}:${(ds.address() as AddressInfo).port}`;
    }
  } catch (err) {
    xds.close();
    plaintextXds?.close();
    plainServer?.forceShutdown();
    debugServer?.close();
    await webhook?.close();
    await caServer.close();
    throw err;
  }
  logger.info('control plane ready', { address: caServer.address, identity: caServer.serverSpiffeId, plaintextXds: plaintextXdsAddress, debug: debugUrl, injectionWebhook: webhook?.url });

  let closing: Promise<void> | undefined;
  return {
    caServer,
    address: caServer.address,
    port: caServer.port,
    plaintextXdsAddress,
    debugUrl,
    registry,
    xds,
    plaintextXds,
    registration,
    injectionWebhook: webhook,
    close() {
      closing ??= (async () => {
        for (const u of unsubscribe) u();
        registration?.close();
        xds.close();
        plaintextXds?.close();
        plainServer?.forceShutdown();
        debugServer?.closeAllConnections();
        debugServer?.close();
        await webhook?.close();
        await caServer.close();
      })();
      return closing;
    },
  };
}

function defaultRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tracemesh_controlplane_' });
  return registry;
}

/** `/debug/syncz` (what `tracemesh proxy-status` reads), `/debug/registry`, `/ready`, `/metrics` (Prometheus; Istio's 15014 serves istiod's there too). */
function createDebugServer(metrics: Registry, state: () => { syncz: unknown; registry: unknown; registrations: unknown; discovery: unknown }): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (body: unknown): void => {
      const text = JSON.stringify(body, null, 2) + '\n';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/debug/syncz') json(state().syncz);
    else if (path === '/debug/registry') {
      const s = state();
      json({ services: s.registry, registrations: s.registrations, discovery: s.discovery });
    }
    else if (path === '/ready') res.writeHead(200, { 'content-type': 'text/plain' }).end('ready\n');
    else if (path === '/metrics') {
      metrics.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(err)}\n`),
      );
    } else res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /debug/syncz, /debug/registry, /ready or /metrics\n');
  });
}
