// Kubernetes discovery: informers on Services, EndpointSlices, Pods and Namespaces, joined into
// the ServiceRegistry's `kubernetes` partition. A service's endpoints are its EndpointSlices'
// endpoints with their conditions; each pod behind one gives the pod name, node, namespace,
// service account (the identity) and labels. A pod that runs an injected sidecar is dialled on
// the sidecar's inbound port (its annotation), any other endpoint on the slice's first port.

import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../../common/logger.ts';
import { serviceKey, type ServiceKey, type ServiceRegistry, type WorkloadEndpoint } from '../model.ts';
import { startInformer, type Informer, type InformerHandlers } from './informer.ts';
import {
  DISCOVERY_LABEL,
  describeObject,
  MalformedObjectError,
  objectName,
  parseEndpointSlice,
  parseNamespace,
  parsePod,
  parseService,
  type EndpointSliceRecord,
  type NamespaceRecord,
  type PodRecord,
  type ServiceRecord,
} from './objects.ts';

export const KUBERNETES_SOURCE = 'kubernetes';

/** The cluster-wide list/watch paths discovery uses (the RBAC in deploy/ grants exactly these). */
export const DISCOVERY_PATHS = {
  services: '/api/v1/services',
  endpointSlices: '/apis/discovery.k8s.io/v1/endpointslices',
  pods: '/api/v1/pods',
  namespaces: '/api/v1/namespaces',
} as const;

export interface KubernetesDiscoveryOptions {
  readonly kubeConfig: KubeConfig;
  readonly registry: ServiceRegistry;
  readonly logger: Logger;
}

export interface RejectedObject {
  readonly object: string;
  readonly reason: string;
  readonly at: string;
}

const MAX_REJECTED = 100;

/** Feeds the registry from the cluster; see the module comment. */
export class KubernetesDiscovery {
  private readonly options: KubernetesDiscoveryOptions;
  private readonly logger: Logger;
  private readonly services = new Map<ServiceKey, ServiceRecord>();
  /** `<ns>/<slice>` → slice. */
  private readonly slices = new Map<string, EndpointSliceRecord>();
  /** service → its slices' keys. */
  private readonly slicesOf = new Map<ServiceKey, Set<string>>();
  /** `<ns>/<pod>` → pod. */
  private readonly pods = new Map<string, PodRecord>();
  /** pod key → services whose endpoints name it, and the reverse (rebuilt as services are computed). */
  private readonly servicesOfPod = new Map<string, Set<ServiceKey>>();
  private readonly podsOfService = new Map<ServiceKey, Set<string>>();
  private readonly namespaces = new Map<string, NamespaceRecord>();
  private readonly informers: Informer[] = [];
  private readonly rejectedLog: RejectedObject[] = [];
  private unsynced = 4;
  private syncWaiters: Array<() => void> = [];
  private publishing = false;

  constructor(options: KubernetesDiscoveryOptions) {
    this.options = options;
    this.logger = options.logger.child({ component: 'kubernetes-discovery' });
  }

  /** Starts the four informers. `synced()` resolves once each has delivered its first list. */
  start(): void {
    const kc = this.options.kubeConfig;
    const add = (path: string, handlers: Omit<InformerHandlers, 'synced'>): void => {
      this.informers.push(startInformer(kc, path, { ...handlers, synced: () => this.onSynced() }, this.logger));
    };
    add(DISCOVERY_PATHS.namespaces, {
      upsert: (o) => this.guard('Namespace', o, () => this.namespaceChanged(parseNamespace(o).name, parseNamespace(o))),
      remove: (o) => this.guard('Namespace', o, () => this.namespaceChanged(objectName('Namespace', o, false).name, undefined)),
    });
    add(DISCOVERY_PATHS.services, {
      upsert: (o) => this.guard('Service', o, () => this.serviceChanged(parseService(o))),
      remove: (o) => this.guard('Service', o, () => this.serviceRemoved(objectName('Service', o))),
    });
    add(DISCOVERY_PATHS.endpointSlices, {
      upsert: (o) => this.guard('EndpointSlice', o, () => this.sliceChanged(parseEndpointSlice(o))),
      remove: (o) => this.guard('EndpointSlice', o, () => this.sliceRemoved(`${objectName('EndpointSlice', o).namespace}/${objectName('EndpointSlice', o).name}`)),
    });
    add(DISCOVERY_PATHS.pods, {
      upsert: (o) => this.guard('Pod', o, () => this.podChanged(parsePod(o))),
      remove: (o) => this.guard('Pod', o, () => this.podRemoved(objectName('Pod', o))),
    });
  }

  /** Resolves when every informer has listed once (the registry then holds the cluster). */
  synced(): Promise<void> {
    if (this.unsynced === 0) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  /** The last objects refused as malformed (newest last), for /debug/registry. */
  /** A namespace's labels, or undefined when it is not known (yet). The injection webhook reads them. */
  namespaceLabels(name: string): Readonly<Record<string, string>> | undefined {
    return this.namespaces.get(name)?.labels;
  }

  rejected(): readonly RejectedObject[] {
    return this.rejectedLog;
  }

  /** The informers (for tests and the debug endpoint). */
  informerStatus(): { path: string; resourceVersion: string; lists: number }[] {
    return this.informers.map((i) => ({ path: i.path, resourceVersion: i.resourceVersion(), lists: i.lists() }));
  }

  async close(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  /** Runs one event; a malformed object is reported by name and skipped (its last good version stays). */
  private guard(kind: string, obj: unknown, f: () => void): void {
    try {
      f();
    } catch (err) {
      if (!(err instanceof MalformedObjectError)) {
        // A bug of ours must not stop the informer (client-node would swallow it silently).
        this.logger.error('Kubernetes event handling failed', { kind, object: describeObject(kind, obj), error: String((err as Error)?.stack ?? err) });
        return;
      }
      this.logger.warn('malformed Kubernetes object skipped', { kind, object: err.object, reason: err.message });
      this.rejectedLog.push({ object: err.object, reason: err.message, at: new Date().toISOString() });
      if (this.rejectedLog.length > MAX_REJECTED) this.rejectedLog.shift();
    }
  }

  private onSynced(): void {
    if (--this.unsynced !== 0) return;
    // Publish the whole cluster at once, then incrementally.
    this.publishing = true;
    const all = new Map<ServiceKey, readonly WorkloadEndpoint[]>();
    this.servicesOfPod.clear();
    this.podsOfService.clear();
    for (const key of this.services.keys()) {
      const eps = this.compute(key);
      if (eps !== undefined) all.set(key, eps);
    }
    this.options.registry.replaceSource(KUBERNETES_SOURCE, all);
    this.logger.info('Kubernetes discovery synced', { services: all.size, endpointSlices: this.slices.size, pods: this.pods.size });
    const w = this.syncWaiters;
    this.syncWaiters = [];
    for (const f of w) f();
  }

  private namespaceChanged(name: string, ns: NamespaceRecord | undefined): void {
    if (ns === undefined) this.namespaces.delete(name);
    else this.namespaces.set(name, ns);
    for (const key of this.services.keys()) if (key.startsWith(`${name}/`)) this.publish(key);
  }

  private serviceChanged(s: ServiceRecord): void {
    const key = serviceKey(s.namespace, s.name);
    this.services.set(key, s);
    this.publish(key);
  }

  private serviceRemoved(n: { namespace: string; name: string }): void {
    const key = serviceKey(n.namespace, n.name);
    if (this.services.delete(key)) this.publish(key);
  }

  private sliceChanged(s: EndpointSliceRecord): void {
    const key = `${s.namespace}/${s.name}`;
    const before = this.slices.get(key);
    this.slices.set(key, s);
    const service = serviceKey(s.namespace, s.service);
    if (before !== undefined && before.service !== s.service) {
      const old = serviceKey(before.namespace, before.service);
      this.slicesOf.get(old)?.delete(key);
      this.publish(old);
    }
    let set = this.slicesOf.get(service);
    if (set === undefined) this.slicesOf.set(service, (set = new Set()));
    set.add(key);
    this.publish(service);
  }

  private sliceRemoved(key: string): void {
    const s = this.slices.get(key);
    if (s === undefined) return;
    this.slices.delete(key);
    const service = serviceKey(s.namespace, s.service);
    const set = this.slicesOf.get(service);
    set?.delete(key);
    if (set?.size === 0) this.slicesOf.delete(service);
    this.publish(service);
  }

  private podChanged(p: PodRecord): void {
    const key = `${p.namespace}/${p.name}`;
    this.pods.set(key, p);
    for (const s of [...(this.servicesOfPod.get(key) ?? [])]) this.publish(s);
  }

  private podRemoved(n: { namespace: string; name: string }): void {
    const key = `${n.namespace}/${n.name}`;
    if (!this.pods.delete(key)) return;
    for (const s of [...(this.servicesOfPod.get(key) ?? [])]) this.publish(s);
  }

  private publish(key: ServiceKey): void {
    if (!this.publishing) return; // before the first full sync everything goes at once
    this.options.registry.set(KUBERNETES_SOURCE, key, this.compute(key));
  }

  /** The endpoints of one service, or undefined when it is not (or no longer) in the mesh. */
  private compute(key: ServiceKey): readonly WorkloadEndpoint[] | undefined {
    for (const podKey of this.podsOfService.get(key) ?? []) {
      const set = this.servicesOfPod.get(podKey);
      set?.delete(key);
      if (set?.size === 0) this.servicesOfPod.delete(podKey);
    }
    this.podsOfService.delete(key);
    const svc = this.services.get(key);
    if (svc === undefined || svc.externalName) return undefined;
    if (this.namespaces.get(svc.namespace)?.labels[DISCOVERY_LABEL] === 'disabled') return undefined;
    const byAddress = new Map<string, WorkloadEndpoint>();
    for (const sliceKey of this.slicesOf.get(key) ?? []) {
      const slice = this.slices.get(sliceKey);
      if (slice === undefined) continue;
      for (const e of slice.endpoints) {
        let pod: PodRecord | undefined;
        if (e.pod !== undefined) {
          const podKey = `${slice.namespace}/${e.pod}`;
          let set = this.servicesOfPod.get(podKey);
          if (set === undefined) this.servicesOfPod.set(podKey, (set = new Set()));
          set.add(key);
          let pods = this.podsOfService.get(key);
          if (pods === undefined) this.podsOfService.set(key, (pods = new Set()));
          pods.add(podKey);
          pod = this.pods.get(podKey);
          // Without its pod we know neither the identity nor the port: wait for the pod event.
          if (pod === undefined) continue;
        }
        const ep: WorkloadEndpoint = {
          host: e.address,
          port: pod?.inboundPort ?? slice.port,
          pod: e.pod,
          node: e.nodeName ?? pod?.node,
          namespace: slice.namespace,
          serviceAccount: pod?.serviceAccount,
          labels: pod?.labels ?? (Object.create(null) as Record<string, string>),
          ready: e.ready,
          serving: e.serving,
          terminating: e.terminating,
          source: KUBERNETES_SOURCE,
        };
        const address = `${ep.host}:${ep.port}`;
        const prev = byAddress.get(address);
        // The same address in two slices (during a slice handover): the readier one counts.
        if (prev === undefined || (!prev.ready && ep.ready)) byAddress.set(address, ep);
      }
    }
    return [...byAddress.values()];
  }
}
