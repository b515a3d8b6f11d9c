// Service discovery as the sidecar sees it: immutable snapshots of service → endpoints, from
// a source that may change them over time (a static map, a watched file, later xDS).

/** One instance of a service; for the outbound path this is the peer sidecar's inbound port. */
export interface Endpoint {
  /** `host:port` as configured; recorded as `mesh.endpoint`. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly pod: string | undefined;
  readonly node: string | undefined;
  readonly namespace: string | undefined;
  /** Zone of the endpoint's node (`topology.kubernetes.io/zone`), for locality-aware balancing. */
  readonly zone: string | undefined;
  /** Relative share of traffic for weighted policies (default 1; 0 takes none unless all are 0). */
  readonly weight: number;
  /**
   * SPIFFE ID the endpoint's sidecar must present over mTLS; undefined accepts any identity
   * in the trust domain. Ignored when mTLS is off.
   */
  readonly identity: string | undefined;
  /**
   * The peer's mTLS mode is DISABLE (PeerAuthentication, from the control plane's cluster):
   * dialled without TLS even when this sidecar has mTLS on, as Istio's auto-mTLS does.
   */
  readonly plaintext?: boolean;
}

/** Service name → its endpoints. Never mutated; a change produces a new snapshot. */
export type EndpointSnapshot = ReadonlyMap<string, readonly Endpoint[]>;

export type SnapshotListener = (snapshot: EndpointSnapshot) => void;

export interface EndpointSource {
  /** The latest valid snapshot. Cheap; callers may call it per change, not per request. */
  current(): EndpointSnapshot;
  /**
   * Calls `listener` with every later valid snapshot (never with an invalid one, and never
   * synchronously from `subscribe`). Returns a function that removes the listener.
   */
  subscribe(listener: SnapshotListener): () => void;
  /** Stops watching for changes. Safe to call twice. */
  close(): void;
}

/** Builds an Endpoint from `host:port` (IPv6 hosts in brackets). Undefined when malformed. */
export function parseAddress(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(address);
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? m[2] ?? '', port };
}

export interface EndpointSpec {
  readonly address: string;
  readonly pod?: string | undefined;
  readonly node?: string | undefined;
  readonly namespace?: string | undefined;
  readonly zone?: string | undefined;
  readonly weight?: number | undefined;
  readonly identity?: string | undefined;
}

/** Turns plain service → endpoint specs into a snapshot; throws on a malformed address. */
export function snapshotOf(services: Readonly<Record<string, readonly EndpointSpec[]>>): EndpointSnapshot {
  const out = new Map<string, readonly Endpoint[]>();
  for (const [name, specs] of Object.entries(services)) {
    out.set(
      name,
      specs.map((s) => {
        const hp = parseAddress(s.address);
        if (hp === undefined) throw new TypeError(`endpoint address "${s.address}" of service "${name}" is not host:port`);
        return Object.freeze({ address: s.address, host: hp.host, port: hp.port, pod: s.pod, node: s.node, namespace: s.namespace, zone: s.zone, weight: s.weight ?? 1, identity: s.identity });
      }),
    );
  }
  return out;
}

/** A source whose snapshot changes only when `set` is called; for tests and embedding. */
export class StaticEndpointSource implements EndpointSource {
  private snapshot: EndpointSnapshot;
  private readonly listeners = new Set<SnapshotListener>();

  constructor(snapshot: EndpointSnapshot = new Map()) {
    this.snapshot = snapshot;
  }

  current(): EndpointSnapshot {
    return this.snapshot;
  }

  /** Replaces the snapshot; listeners hear about it on a later tick. */
  set(snapshot: EndpointSnapshot): void {
    this.snapshot = snapshot;
    queueMicrotask(() => {
      for (const l of this.listeners) l(snapshot);
    });
  }

  subscribe(listener: SnapshotListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.listeners.clear();
  }
}
