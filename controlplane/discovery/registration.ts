// Self-registration for workloads outside Kubernetes (a laptop, VMs, the demo), in the way of
// Istio's WorkloadEntry auto-registration: a sidecar says who it is in the xDS node metadata;
// the open ADS stream is its lease. When the stream closes cleanly (the sidecar shut down)
// the endpoint leaves at once; when it is cut, the endpoint stays for a grace period so a
// reconnect (or a control plane restart) does not flap it, then expires.

import type { Logger } from '../../common/logger.ts';
import { isValidNamespace, isValidServiceAccount, tryParseSpiffeId } from '../../common/spiffe.ts';
import type { XdsPeer, XdsServerHooks } from '../xds/server.ts';
import { serviceKey, type ServiceKey, type ServiceRegistry, type WorkloadEndpoint } from './model.ts';

/** Node metadata keys a registering sidecar sets (documented in controlplane/README.md). */
export const REGISTRATION_METADATA = {
  register: 'TRACEMESH_REGISTER',
  service: 'TRACEMESH_SERVICE',
  namespace: 'TRACEMESH_NAMESPACE',
  pod: 'TRACEMESH_POD',
  node: 'TRACEMESH_NODE',
  serviceAccount: 'TRACEMESH_SERVICE_ACCOUNT',
  /** `host:port` peers dial: the sidecar's inbound listener. */
  address: 'TRACEMESH_INBOUND_ADDRESS',
  /** Struct of string labels. */
  labels: 'TRACEMESH_LABELS',
} as const;

export const REGISTRATION_SOURCE = 'registration';
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface SelfRegistrationOptions {
  readonly registry: ServiceRegistry;
  /** How long a cut stream's endpoint stays. Default 10 s. */
  readonly graceMs?: number | undefined;
  /**
   * Whether the stream's identity is proven (mTLS): then the registration must be for the
   * namespace and service account of the client certificate. On a plaintext control plane
   * (local development) the metadata is trusted as it is.
   */
  readonly requireIdentity: boolean;
  readonly logger: Logger;
}

interface Lease {
  readonly connectionId: string;
  readonly key: ServiceKey;
  readonly endpoint: WorkloadEndpoint;
  expiry: NodeJS.Timeout | undefined;
}

export class SelfRegistration implements XdsServerHooks {
  private readonly options: SelfRegistrationOptions;
  /** `host:port` → lease. */
  private readonly leases = new Map<string, Lease>();
  private readonly logger: Logger;

  constructor(options: SelfRegistrationOptions) {
    this.options = options;
    this.logger = options.logger.child({ component: 'registration' });
  }

  onConnect(peer: XdsPeer): void {
    const m = peer.metadata;
    if (m[REGISTRATION_METADATA.register] !== true && m[REGISTRATION_METADATA.register] !== 'true') return;
    let endpoint: { key: ServiceKey; endpoint: WorkloadEndpoint };
    try {
      endpoint = this.parse(peer);
    } catch (err) {
      this.logger.warn('self-registration refused', { connection: peer.connectionId, reason: (err as Error).message });
      return;
    }
    const address = `${endpoint.endpoint.host}:${endpoint.endpoint.port}`;
    const previous = this.leases.get(address);
    if (previous !== undefined) {
      clearTimeout(previous.expiry);
      if (previous.key !== endpoint.key) this.publish(previous.key);
    }
    this.leases.set(address, { connectionId: peer.connectionId, key: endpoint.key, endpoint: endpoint.endpoint, expiry: undefined });
    this.publish(endpoint.key);
    this.logger.info('workload registered', { service: endpoint.key, address, pod: endpoint.endpoint.pod });
  }

  onDisconnect(peer: XdsPeer, graceful: boolean): void {
    for (const [address, lease] of this.leases) {
      if (lease.connectionId !== peer.connectionId) continue;
      if (graceful) {
        this.expire(address, lease, 'the sidecar closed its stream');
      } else {
        lease.expiry = setTimeout(() => this.expire(address, lease, 'the lease expired'), this.options.graceMs ?? 10_000);
        lease.expiry.unref();
      }
    }
  }

  /** Registered endpoints right now (for the debug endpoint). */
  snapshot(): { address: string; service: ServiceKey; pod: string | undefined; connectionId: string; expiring: boolean }[] {
    return [...this.leases].map(([address, l]) => ({ address, service: l.key, pod: l.endpoint.pod, connectionId: l.connectionId, expiring: l.expiry !== undefined }));
  }

  /** Cancels the expiry timers. */
  close(): void {
    for (const l of this.leases.values()) clearTimeout(l.expiry);
  }

  private expire(address: string, lease: Lease, why: string): void {
    if (this.leases.get(address) !== lease) return; // re-registered meanwhile
    this.leases.delete(address);
    this.publish(lease.key);
    this.logger.info('workload deregistered', { service: lease.key, address, pod: lease.endpoint.pod, why });
  }

  private publish(key: ServiceKey): void {
    const eps: WorkloadEndpoint[] = [];
    for (const l of this.leases.values()) if (l.key === key) eps.push(l.endpoint);
    this.options.registry.set(REGISTRATION_SOURCE, key, eps.length === 0 ? undefined : eps);
  }

  private parse(peer: XdsPeer): { key: ServiceKey; endpoint: WorkloadEndpoint } {
    const m = peer.metadata;
    const str = (k: string): string | undefined => {
      const v = m[k];
      return typeof v === 'string' && v !== '' ? v : undefined;
    };
    const service = str(REGISTRATION_METADATA.service);
    const namespace = str(REGISTRATION_METADATA.namespace) ?? 'default';
    const address = str(REGISTRATION_METADATA.address);
    let serviceAccount = str(REGISTRATION_METADATA.serviceAccount);
    if (service === undefined || !DNS_LABEL.test(service)) throw new Error(`${REGISTRATION_METADATA.service} must be a DNS label, got ${JSON.stringify(service ?? null)}`);
    if (!isValidNamespace(namespace)) throw new Error(`${REGISTRATION_METADATA.namespace} "${namespace}" is not a namespace name`);
    if (serviceAccount !== undefined && !isValidServiceAccount(serviceAccount)) throw new Error(`${REGISTRATION_METADATA.serviceAccount} "${serviceAccount}" is not a service account name`);
    const hp = address === undefined ? undefined : /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(address);
    const port = Number(hp?.[3]);
    if (hp === undefined || hp === null || !(port >= 1 && port <= 65535)) throw new Error(`${REGISTRATION_METADATA.address} must be host:port, got ${JSON.stringify(address ?? null)}`);
    if (this.options.requireIdentity) {
      const id = peer.spiffeId === undefined ? undefined : tryParseSpiffeId(peer.spiffeId);
      if (id === undefined) throw new Error('the stream has no verified identity');
      if (id.namespace !== namespace) throw new Error(`identity ${peer.spiffeId} may not register in namespace ${namespace}`);
      if (serviceAccount !== undefined && serviceAccount !== id.serviceAccount) throw new Error(`identity ${peer.spiffeId} may not register as service account ${serviceAccount}`);
      serviceAccount = id.serviceAccount;
    }
    const labels: Record<string, string> = Object.create(null) as Record<string, string>;
    const rawLabels = m[REGISTRATION_METADATA.labels];
    if (typeof rawLabels === 'object' && rawLabels !== null) {
      for (const [k, v] of Object.entries(rawLabels)) if (typeof v === 'string' && k.length <= 317 && v.length <= 63) labels[k] = v;
    }
    return {
      key: serviceKey(namespace, service),
      endpoint: {
        host: hp[1] ?? hp[2] ?? '',
        port,
        pod: str(REGISTRATION_METADATA.pod),
        node: str(REGISTRATION_METADATA.node),
        namespace,
        serviceAccount,
        labels,
        ready: true,
        serving: true,
        terminating: false,
        source: REGISTRATION_SOURCE,
      },
    };
  }
}
