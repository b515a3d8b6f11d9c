// The one model of services and endpoints that the rest of the control plane reads. Each
// discovery source (Kubernetes informers, sidecar self-registration) owns a partition of it;
// the model merges the partitions and tells listeners which services changed.

/** `<namespace>/<name>`. */
export type ServiceKey = string;

export function serviceKey(namespace: string, name: string): ServiceKey {
  return `${namespace}/${name}`;
}

/** One instance of a service, as the mesh dials it. */
export interface WorkloadEndpoint {
  /** IP address or host name. */
  readonly host: string;
  /** The port peers dial: the sidecar's inbound port, or the app's own for proxyless workloads. */
  readonly port: number;
  readonly pod: string | undefined;
  readonly node: string | undefined;
  readonly namespace: string;
  /** The identity: with the trust domain it gives the SPIFFE ID the endpoint must prove. */
  readonly serviceAccount: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
  /** EndpointSlice `ready`: take new requests. */
  readonly ready: boolean;
  /** EndpointSlice `serving`: able to answer, even while terminating. */
  readonly serving: boolean;
  /** EndpointSlice `terminating`. */
  readonly terminating: boolean;
  /** Which source reported it: `kubernetes`, `registration`. */
  readonly source: string;
}

export interface MeshService {
  readonly name: string;
  readonly namespace: string;
  readonly key: ServiceKey;
  /** Merged from every source, sorted by host:port for stable output. */
  readonly endpoints: readonly WorkloadEndpoint[];
}

export type ServicesListener = (changed: ReadonlySet<ServiceKey>) => void;

/** Services and endpoints merged from every source; see the module comment. */
export class ServiceRegistry {
  /** source → service → that source's endpoints for it (an empty list: the service exists). */
  private readonly partitions = new Map<string, Map<ServiceKey, readonly WorkloadEndpoint[]>>();
  private merged = new Map<ServiceKey, MeshService>();
  private readonly listeners = new Set<ServicesListener>();

  /** The merged services. A new map after every change; never mutated. */
  services(): ReadonlyMap<ServiceKey, MeshService> {
    return this.merged;
  }

  /**
   * Sets what `source` knows about one service; `undefined` withdraws it. Listeners hear about
   * the change synchronously, with the key, when the merged result differs.
   */
  set(source: string, key: ServiceKey, endpoints: readonly WorkloadEndpoint[] | undefined): void {
    let partition = this.partitions.get(source);
    if (endpoints === undefined) {
      if (partition?.delete(key) !== true) return;
    } else {
      if (partition === undefined) this.partitions.set(source, (partition = new Map()));
      partition.set(key, endpoints);
    }
    this.recompute(new Set([key]));
  }

  /** Replaces everything `source` knows at once (a relist): one notification for all changes. */
  replaceSource(source: string, services: ReadonlyMap<ServiceKey, readonly WorkloadEndpoint[]>): void {
    const before = this.partitions.get(source) ?? new Map<ServiceKey, readonly WorkloadEndpoint[]>();
    const keys = new Set<ServiceKey>([...before.keys(), ...services.keys()]);
    this.partitions.set(source, new Map(services));
    this.recompute(keys);
  }

  /** Registers a listener for changed service keys; returns its unsubscribe function. */
  subscribe(listener: ServicesListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private recompute(keys: ReadonlySet<ServiceKey>): void {
    const next = new Map(this.merged);
    const changed = new Set<ServiceKey>();
    for (const key of keys) {
      const prev = next.get(key);
      const merged = this.mergeOne(key);
      if (merged === undefined) {
        if (prev !== undefined) {
          next.delete(key);
          changed.add(key);
        }
      } else if (prev === undefined || !sameEndpoints(prev.endpoints, merged.endpoints)) {
        next.set(key, merged);
        changed.add(key);
      }
    }
    if (changed.size === 0) return;
    this.merged = next;
    for (const l of this.listeners) l(changed);
  }

  private mergeOne(key: ServiceKey): MeshService | undefined {
    let found = false;
    const byAddress = new Map<string, WorkloadEndpoint>();
    for (const partition of this.partitions.values()) {
      const eps = partition.get(key);
      if (eps === undefined) continue;
      found = true;
      // The same address from two sources: the first source registered wins.
      for (const ep of eps) if (!byAddress.has(`${ep.host}:${ep.port}`)) byAddress.set(`${ep.host}:${ep.port}`, ep);
    }
    if (!found) return undefined;
    const slash = key.indexOf('/');
    const endpoints = [...byAddress.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, ep]) => ep);
    return { key, namespace: key.slice(0, slash), name: key.slice(slash + 1), endpoints };
  }
}

function sameEndpoints(a: readonly WorkloadEndpoint[], b: readonly WorkloadEndpoint[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (endpointSignature(a[i]!) !== endpointSignature(b[i]!)) return false;
  return true;
}

export function endpointSignature(ep: WorkloadEndpoint): string {
  const labels = Object.keys(ep.labels)
    .sort()
    .map((k) => `${k}=${ep.labels[k]}`)
    .join(',');
  return `${ep.host}|${ep.port}|${ep.pod}|${ep.node}|${ep.namespace}|${ep.serviceAccount}|${ep.ready}|${ep.serving}|${ep.terminating}|${labels}`;
}
