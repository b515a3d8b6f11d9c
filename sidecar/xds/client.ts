// The sidecar's xDS client (ADS, state of the world): clusters (CDS, with each peer's mTLS
// mode), their endpoints (EDS) and mesh policy (our MeshPolicy type) from the control plane.
// It feeds the sidecar's existing sources: an EndpointSource for the balancer and a policy
// set source for the inbound side. A response that does not validate is NACKed with the
// resource's name and the reason; the last good configuration stays. When the control plane
// is unreachable everything already held stays in force and the stream is reopened with
// backoff, sending the versions it holds.

import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../common/logger.ts';
import { EMPTY_POLICY_SET, type PolicySet } from '../../common/policy/load.ts';
import { authorizationPolicySchema, parseWith, peerAuthenticationSchema, type AuthorizationPolicy, type PeerAuthentication } from '../../common/policy/resources.ts';
import { uriSans } from '../../common/spiffe.ts';
import {
  AggregatedDiscoveryServiceClient,
  jsonToStruct,
  TYPE_URL,
  unpackAny,
  type DiscoveryRequest,
  type DiscoveryResponse,
} from '../../common/xds/protos.ts';
import type { Endpoint, EndpointSnapshot, EndpointSource, SnapshotListener } from '../endpoints/endpoints.ts';
import type { IdentityMaterial } from '../identity/identity.ts';

export type XdsTransport =
  | { readonly kind: 'plaintext' }
  | {
      readonly kind: 'mtls';
      /** The workload's current certificate; read at each (re)connect, so rotations apply. */
      readonly identity: () => IdentityMaterial;
      /** SPIFFE ID the control plane must present. */
      readonly serverSpiffeId: string;
    };

export interface XdsClientOptions {
  /** `host:port` of the control plane. */
  readonly address: string;
  readonly transport: XdsTransport;
  /** `node.id`, e.g. `sidecar~<pod>.<namespace>`. */
  readonly nodeId: string;
  /** `node.metadata` (self-registration keys, see controlplane/discovery/registration.ts). */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** This workload's namespace: a bare service name resolves here first. */
  readonly namespace: string;
  readonly logger: Logger;
  /** First reconnect delay; doubles (with jitter) up to `maxBackoffMs`. Default 200 ms. */
  readonly initialBackoffMs?: number;
  /** Default 10 s. */
  readonly maxBackoffMs?: number;
}

export type PeerMtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/** One cluster as the control plane sent it. */
export interface XdsCluster {
  readonly name: string;
  readonly service: string;
  readonly namespace: string;
  /** The peer's PeerAuthentication mode. */
  readonly mtlsMode: PeerMtlsMode;
}

interface TypeState {
  version: string;
  nonce: string;
  /** resource name → the version of the response that last changed it. */
  readonly resources: Map<string, string>;
  lastNack: string | undefined;
  lastUpdate: number | undefined;
}

/** What `/debug/xds` on the admin port shows. */
export interface XdsClientStatus {
  readonly controlPlane: string;
  readonly connected: boolean;
  readonly lastError: string | undefined;
  readonly types: Readonly<Record<string, { version: string; lastNack: string | undefined; lastUpdate: string | undefined; resources: Record<string, string> }>>;
  readonly clusters: readonly XdsCluster[];
}

type RawCluster = { name?: string; metadata?: { filter_metadata?: Record<string, { fields?: Record<string, { stringValue?: string }> }> } };
type RawCla = {
  cluster_name?: string;
  endpoints?: {
    locality?: { zone?: string };
    lb_endpoints?: {
      endpoint?: { address?: { socket_address?: { address?: string; port_value?: number } } };
      health_status?: string;
      load_balancing_weight?: { value?: number };
      metadata?: { filter_metadata?: Record<string, { fields?: Record<string, { stringValue?: string }> }> };
    }[];
  }[];
};

const META = 'tracemesh';

export class XdsClient {
  private readonly options: XdsClientOptions;
  private readonly logger: Logger;
  private readonly state = new Map<string, TypeState>();
  private clusters = new Map<string, XdsCluster>();
  /** cluster → endpoints (usable ones only). */
  private readonly assignments = new Map<string, readonly Endpoint[]>();
  private readonly plaintextEndpoints = new WeakMap<readonly Endpoint[], readonly Endpoint[]>();
  private policies: PolicySet = EMPTY_POLICY_SET;
  private snapshot: EndpointSnapshot = new Map();
  private readonly endpointListeners = new Set<SnapshotListener>();
  private readonly policyListeners = new Set<(set: PolicySet) => void>();
  private client: grpc.Client | undefined;
  private call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> | undefined;
  private connected = false;
  private lastError: string | undefined;
  private backoffMs: number;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private firstConfig: { promise: Promise<void>; resolve: () => void };
  private haveClusters = false;
  private haveEndpoints = false;
  private havePolicies = false;

  constructor(options: XdsClientOptions) {
    this.options = options;
    this.logger = options.logger.child({ component: 'xds-client' });
    this.backoffMs = options.initialBackoffMs ?? 200;
    let resolve = (): void => {};
    const promise = new Promise<void>((r) => (resolve = r));
    this.firstConfig = { promise, resolve };
    for (const t of [TYPE_URL.cluster, TYPE_URL.endpoint, TYPE_URL.policy]) {
      this.state.set(t, { version: '', nonce: '', resources: new Map(), lastNack: undefined, lastUpdate: undefined });
    }
  }

  private metadata: Readonly<Record<string, unknown>> = {};

  /** Opens the stream (and keeps reopening it until close()); `metadata` joins the node metadata. */
  start(metadata: Readonly<Record<string, unknown>> = {}): void {
    this.metadata = { ...this.options.metadata, ...metadata };
    this.connect();
  }

  /** Resolves once clusters, their endpoints and policies have all arrived once. */
  ready(): Promise<void> {
    return this.firstConfig.promise;
  }

  /** The balancer's view: service name (bare, `name.namespace`, FQDN) → endpoints. */
  readonly endpoints: EndpointSource = {
    current: () => this.snapshot,
    subscribe: (l) => {
      this.endpointListeners.add(l);
      return () => this.endpointListeners.delete(l);
    },
    close: () => {},
  };

  /** The inbound side's policies. */
  readonly policySource = {
    current: (): PolicySet => this.policies,
    subscribe: (l: (set: PolicySet) => void): (() => void) => {
      this.policyListeners.add(l);
      return () => this.policyListeners.delete(l);
    },
  };

  /** The mTLS mode of the peer behind `service` (as the app names it), when known. */
  peerMtlsMode(service: string): PeerMtlsMode | undefined {
    const c = this.clusterFor(service);
    return c?.mtlsMode;
  }

  status(): XdsClientStatus {
    const types: Record<string, { version: string; lastNack: string | undefined; lastUpdate: string | undefined; resources: Record<string, string> }> = {};
    for (const [t, s] of this.state) {
      types[t] = {
        version: s.version,
        lastNack: s.lastNack,
        lastUpdate: s.lastUpdate === undefined ? undefined : new Date(s.lastUpdate).toISOString(),
        resources: Object.fromEntries(s.resources),
      };
    }
    return { controlPlane: this.options.address, connected: this.connected, lastError: this.lastError, types, clusters: [...this.clusters.values()] };
  }

  /**
   * Half-closes the stream (the control plane then drops this workload's registration at
   * once) and stops reconnecting. Safe to call twice.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    const call = this.call;
    this.call = undefined;
    if (call !== undefined) {
      call.end();
      // Give the half-close a moment to reach the server, then let the channel go.
      setTimeout(() => {
        call.cancel();
        this.client?.close();
      }, 200).unref();
    } else {
      this.client?.close();
    }
  }

  private connect(): void {
    if (this.closed) return;
    let client: grpc.Client;
    try {
      client = this.makeClient();
    } catch (err) {
      this.fail(`cannot build the xDS channel: ${(err as Error).message}`);
      return;
    }
    this.client?.close();
    this.client = client;
    const stub = client as unknown as { StreamAggregatedResources(): grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> };
    const call = stub.StreamAggregatedResources();
    this.call = call;
    let failed = false;
    const broken = (why: string): void => {
      if (failed || this.call !== call) return;
      failed = true;
      this.call = undefined;
      this.connected = false;
      this.fail(why);
    };
    call.on('data', (response: DiscoveryResponse) => {
      if (!this.connected) {
        this.connected = true;
        this.backoffMs = this.options.initialBackoffMs ?? 200;
        this.lastError = undefined;
        this.logger.info('connected to the control plane', { address: this.options.address });
      }
      try {
        this.onResponse(call, response);
      } catch (err) {
        this.logger.error('xDS response handling failed', { typeUrl: response.type_url, err });
      }
    });
    call.on('error', (err: grpc.ServiceError) => broken(`${grpc.status[err.code] ?? err.code}: ${err.details}`));
    call.on('end', () => broken('the control plane ended the stream'));
    call.on('status', () => {});
    // A new stream: versions are kept (the server learns what we hold), nonces are not.
    for (const st of this.state.values()) st.nonce = '';
    // Subscriptions: clusters and policies as wildcards, endpoints by the clusters we hold.
    const node = { id: this.options.nodeId, cluster: 'tracemesh', metadata: jsonToStruct(this.metadata), user_agent_name: 'tracemesh-sidecar' };
    this.request(call, TYPE_URL.cluster, [], node);
    this.request(call, TYPE_URL.policy, []);
    if (this.clusters.size > 0) this.request(call, TYPE_URL.endpoint, [...this.clusters.keys()]);
  }

  private fail(why: string): void {
    this.lastError = why;
    if (this.closed) return;
    const delay = this.backoffMs * (0.5 + Math.random() / 2);
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 10_000);
    this.logger.warn('control plane stream lost; keeping the last configuration and reconnecting', { address: this.options.address, why, retryInMs: Math.round(delay) });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
    this.timer.unref();
  }

  private makeClient(): grpc.Client {
    const t = this.options.transport;
    if (t.kind === 'plaintext') return new AggregatedDiscoveryServiceClient(this.options.address, grpc.credentials.createInsecure());
    const id = t.identity();
    const creds = grpc.credentials.createSsl(Buffer.from(id.trustBundlePem.join('\n')), Buffer.from(id.privateKeyPem), Buffer.from(id.certChainPem), {
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const uris = cert.raw ? uriSans(new X509Certificate(cert.raw)) : [];
        return uris.includes(t.serverSpiffeId) ? undefined : new Error(`the control plane is not ${t.serverSpiffeId} (it presents ${uris.join(', ') || 'no URI SAN'})`);
      },
    });
    const host = this.options.address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    const channelOptions: grpc.ChannelOptions = isIP(host) ? { 'grpc.ssl_target_name_override': 'tracemesh-controlplane.invalid' } : {};
    return new AggregatedDiscoveryServiceClient(this.options.address, creds, channelOptions);
  }

  private request(call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>, typeUrl: string, names: string[], node?: object, errorDetail?: string): void {
    const s = this.state.get(typeUrl);
    const req: Record<string, unknown> = { type_url: typeUrl, resource_names: names, version_info: s?.version ?? '', response_nonce: s?.nonce ?? '' };
    if (node !== undefined) req['node'] = node;
    if (errorDetail !== undefined) req['error_detail'] = { code: grpc.status.INVALID_ARGUMENT, message: errorDetail };
    call.write(req as unknown as DiscoveryRequest);
  }

  private onResponse(call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>, response: DiscoveryResponse): void {
    const s = this.state.get(response.type_url);
    if (s === undefined) {
      // Not asked for: NACK it so the server stops.
      call.write({ type_url: response.type_url, resource_names: [], version_info: '', response_nonce: response.nonce, error_detail: { code: grpc.status.UNIMPLEMENTED, message: `tracemesh sidecar does not use ${response.type_url}` } } as unknown as DiscoveryRequest);
      return;
    }
    let apply: () => void;
    let names: string[];
    try {
      ({ apply, names } = this.validate(response));
    } catch (err) {
      const detail = (err as Error).message;
      s.lastNack = detail;
      s.nonce = response.nonce;
      this.logger.warn('xDS response rejected (NACK); keeping the previous configuration', { typeUrl: response.type_url, version: response.version_info, reason: detail });
      this.request(call, response.type_url, this.subscribedNames(response.type_url), undefined, detail);
      return;
    }
    s.version = response.version_info;
    s.nonce = response.nonce;
    s.lastNack = undefined;
    s.lastUpdate = Date.now();
    if (response.type_url === TYPE_URL.endpoint) for (const n of names) s.resources.set(n, response.version_info);
    else {
      s.resources.clear();
      for (const n of names) s.resources.set(n, response.version_info);
    }
    const clustersBefore = [...this.clusters.keys()].join('\n');
    apply();
    this.request(call, response.type_url, this.subscribedNames(response.type_url));
    if (response.type_url === TYPE_URL.cluster && [...this.clusters.keys()].join('\n') !== clustersBefore) {
      // The endpoint subscription follows the clusters.
      this.request(call, TYPE_URL.endpoint, [...this.clusters.keys()]);
    }
    if (response.type_url === TYPE_URL.cluster && this.clusters.size === 0) this.haveEndpoints = true;
    this.rebuild(response.type_url);
  }

  private subscribedNames(typeUrl: string): string[] {
    return typeUrl === TYPE_URL.endpoint ? [...this.clusters.keys()] : [];
  }

  /** Decodes and checks every resource; throws naming the first bad one. Nothing changes until `apply`. */
  private validate(response: DiscoveryResponse): { apply: () => void; names: string[] } {
    const decoded = response.resources.map((any, i) => {
      if (any.type_url !== response.type_url) throw new Error(`resource ${i} is a ${any.type_url}, not a ${response.type_url}`);
      try {
        return unpackAny(any);
      } catch (err) {
        throw new Error(`resource ${i} does not decode: ${(err as Error).message}`, { cause: err });
      }
    });
    if (response.type_url === TYPE_URL.cluster) {
      const next = new Map<string, XdsCluster>();
      for (const raw of decoded as RawCluster[]) {
        const name = raw.name ?? '';
        const meta = raw.metadata?.filter_metadata?.[META]?.fields ?? {};
        const service = meta['service']?.stringValue;
        const namespace = meta['namespace']?.stringValue;
        const mode = meta['mtls_mode']?.stringValue;
        if (name === '' || service === undefined || namespace === undefined) throw new Error(`cluster "${name}" has no ${META} service/namespace metadata`);
        if (mode !== 'STRICT' && mode !== 'PERMISSIVE' && mode !== 'DISABLE') throw new Error(`cluster "${name}": mtls_mode ${JSON.stringify(mode ?? null)} is not STRICT, PERMISSIVE or DISABLE`);
        next.set(name, { name, service, namespace, mtlsMode: mode });
      }
      return {
        names: [...next.keys()],
        apply: () => {
          this.clusters = next;
          for (const c of [...this.assignments.keys()]) if (!next.has(c)) this.assignments.delete(c);
          this.haveClusters = true;
        },
      };
    }
    if (response.type_url === TYPE_URL.endpoint) {
      const next = new Map<string, readonly Endpoint[]>();
      for (const raw of decoded as RawCla[]) {
        const name = raw.cluster_name ?? '';
        if (name === '') throw new Error('a ClusterLoadAssignment has no cluster_name');
        const healthy: Endpoint[] = [];
        const draining: Endpoint[] = [];
        for (const locality of raw.endpoints ?? []) {
          for (const lb of locality.lb_endpoints ?? []) {
            const sa = lb.endpoint?.address?.socket_address;
            const host = sa?.address ?? '';
            const port = sa?.port_value ?? 0;
            if (host === '' || !(port >= 1 && port <= 65535)) throw new Error(`ClusterLoadAssignment "${name}": an endpoint has no address or port`);
            const meta = lb.metadata?.filter_metadata?.[META]?.fields ?? {};
            const ep: Endpoint = Object.freeze({
              address: `${isIP(host) === 6 ? `[${host}]` : host}:${port}`,
              host,
              port,
              pod: meta['pod']?.stringValue,
              node: meta['node']?.stringValue,
              namespace: meta['namespace']?.stringValue,
              zone: locality.locality?.zone === undefined || locality.locality.zone === '' ? undefined : locality.locality.zone,
              weight: lb.load_balancing_weight?.value ?? 1,
              identity: meta['identity']?.stringValue,
            });
            const health = lb.health_status ?? 'UNKNOWN';
            if (health === 'HEALTHY' || health === 'UNKNOWN') healthy.push(ep);
            else if (health === 'DRAINING') draining.push(ep);
          }
        }
        // Terminating-but-serving endpoints only when nothing else is left (Kubernetes' rule).
        next.set(name, healthy.length > 0 ? healthy : draining);
      }
      return {
        names: [...next.keys()],
        apply: () => {
          for (const [k, v] of next) if (this.clusters.has(k)) this.assignments.set(k, v);
          if ([...this.clusters.keys()].every((c) => this.assignments.has(c))) this.haveEndpoints = true;
        },
      };
    }
    // MeshPolicy: the resource's JSON is validated exactly as a policy file would be.
    const authorizationPolicies: AuthorizationPolicy[] = [];
    const peerAuthentications: PeerAuthentication[] = [];
    const names: string[] = [];
    for (const raw of decoded as { kind?: string; namespace?: string; name?: string; json?: string }[]) {
      const where = `${raw.kind ?? '?'} ${raw.namespace ?? '?'}/${raw.name ?? '?'} from the control plane`;
      let doc: unknown;
      try {
        doc = JSON.parse(raw.json ?? '');
      } catch {
        throw new Error(`${where}: not JSON`);
      }
      if (raw.kind === 'AuthorizationPolicy') authorizationPolicies.push(parseWith(authorizationPolicySchema, doc, where));
      else if (raw.kind === 'PeerAuthentication') peerAuthentications.push(parseWith(peerAuthenticationSchema, doc, where));
      else throw new Error(`${where}: unknown kind`);
      names.push(`${raw.kind}/${raw.namespace}/${raw.name}`);
    }
    return {
      names,
      apply: () => {
        this.policies = { authorizationPolicies, peerAuthentications };
        this.havePolicies = true;
      },
    };
  }

  private clusterFor(service: string): XdsCluster | undefined {
    for (const c of this.clusters.values()) {
      if (c.name === service || `${c.service}.${c.namespace}` === service) return c;
    }
    let found: XdsCluster | undefined;
    for (const c of this.clusters.values()) {
      if (c.service !== service) continue;
      if (c.namespace === this.options.namespace) return c;
      found ??= c;
    }
    return found;
  }

  /** The endpoints of a cluster in mTLS mode DISABLE, marked to be dialled without TLS (one array per assignment, so balancers see stable objects). */
  private plaintextOf(eps: readonly Endpoint[]): readonly Endpoint[] {
    let out = this.plaintextEndpoints.get(eps);
    if (out === undefined) {
      out = eps.map((e) => Object.freeze({ ...e, plaintext: true }));
      this.plaintextEndpoints.set(eps, out);
    }
    return out;
  }

  private rebuild(typeUrl: string): void {
    if (typeUrl === TYPE_URL.policy) {
      for (const l of this.policyListeners) {
        try {
          l(this.policies);
        } catch (err) {
          this.logger.error('policy listener failed', { err });
        }
      }
    } else {
      const next = new Map<string, readonly Endpoint[]>();
      // Bare names: this namespace first, then the first other namespace (sorted by name).
      const clusters = [...this.clusters.values()].sort((a, b) => (a.namespace === this.options.namespace ? -1 : b.namespace === this.options.namespace ? 1 : a.name < b.name ? -1 : 1));
      for (const c of clusters) {
        const assigned = this.assignments.get(c.name) ?? [];
        const eps = c.mtlsMode === 'DISABLE' ? this.plaintextOf(assigned) : assigned;
        next.set(c.name, eps);
        next.set(`${c.service}.${c.namespace}`, eps);
        if (!next.has(c.service)) next.set(c.service, eps);
      }
      this.snapshot = next;
      const snapshot = next;
      queueMicrotask(() => {
        for (const l of this.endpointListeners) l(snapshot);
      });
    }
    if (this.haveClusters && this.haveEndpoints && this.havePolicies) this.firstConfig.resolve();
  }
}
