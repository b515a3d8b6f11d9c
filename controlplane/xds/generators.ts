// One generator per xDS resource type, registered by type URL (istio's pilot/pkg/xds shape).
// A generator turns the mesh snapshot into resources by name; it knows nothing of streams,
// versions or nonces (server.ts does).
//
// Naming (documented in controlplane/README.md):
//   Cluster, ClusterLoadAssignment, RouteConfiguration: `<name>.<namespace>.svc.cluster.local`
//   Listener: that FQDN, `<name>.<namespace>`, and the bare `<name>` when only one namespace
//     has a service of that name (what `xds:///<service>` asks for)
//   MeshPolicy (ours): `<kind>/<namespace>/<name>`

import type { PolicySet } from '../../common/policy/load.ts';
import { mtlsModeFor, type EffectiveMtlsMode } from '../../common/policy/mtls-mode.ts';
import { TYPE_URL, packAny, type AnyMessage } from '../../common/xds/protos.ts';
import type { MeshService, ServiceKey, WorkloadEndpoint } from '../discovery/model.ts';

export const CLUSTER_DOMAIN = 'cluster.local';

/** Everything the generators read: immutable, replaced on every change. */
export interface MeshSnapshot {
  readonly services: ReadonlyMap<ServiceKey, MeshService>;
  readonly policies: PolicySet;
  readonly trustDomain: string;
  /** Root namespace of PeerAuthentication (mesh-wide policy). */
  readonly rootNamespace: string;
  /** mTLS mode when no PeerAuthentication applies. */
  readonly defaultMtlsMode: EffectiveMtlsMode;
}

/** What changed between two snapshots, for the generators to name the resources it touches. */
export interface MeshChange {
  /** Services whose endpoints changed, appeared or went away. */
  readonly services: ReadonlySet<ServiceKey>;
  /** Policies changed: mTLS modes (clusters) and policy resources may all differ. */
  readonly policies: boolean;
}

export interface Generator {
  readonly typeUrl: string;
  /**
   * LDS and CDS are "state of the world" in full: each response carries every subscribed
   * resource, and one left out is deleted. For the other types a response may carry only
   * the resources that changed.
   */
  readonly fullState: boolean;
  /** Every resource name, for a wildcard subscription. */
  allNames(snapshot: MeshSnapshot): Iterable<string>;
  /** The resource as a plain object (proto field names), or undefined when it does not exist. */
  generate(snapshot: MeshSnapshot, name: string): object | undefined;
  /** The names a change can touch, or `all`. */
  affected(snapshot: MeshSnapshot, change: MeshChange): Iterable<string> | 'all';
}

export function fqdn(service: { readonly name: string; readonly namespace: string }): string {
  return `${service.name}.${service.namespace}.svc.${CLUSTER_DOMAIN}`;
}

const FQDN_SUFFIX = `.svc.${CLUSTER_DOMAIN}`;

/** The service a cluster/route/CLA name (an FQDN) stands for. */
export function serviceOfFqdn(snapshot: MeshSnapshot, name: string): MeshService | undefined {
  if (!name.endsWith(FQDN_SUFFIX)) return undefined;
  const head = name.slice(0, -FQDN_SUFFIX.length);
  const dot = head.lastIndexOf('.');
  if (dot <= 0) return undefined;
  return snapshot.services.get(`${head.slice(dot + 1)}/${head.slice(0, dot)}`);
}

/**
 * The service a listener name stands for: an FQDN, `<name>.<namespace>`, or a bare name that
 * only one namespace uses. A `:port` suffix (gRPC targets often carry one) is ignored.
 */
export function serviceOfListener(snapshot: MeshSnapshot, listenerName: string): MeshService | undefined {
  const name = listenerName.replace(/:\d{1,5}$/, '');
  const byFqdn = serviceOfFqdn(snapshot, name);
  if (byFqdn !== undefined) return byFqdn;
  const dot = name.indexOf('.');
  if (dot > 0) return snapshot.services.get(`${name.slice(dot + 1)}/${name.slice(0, dot)}`);
  let found: MeshService | undefined;
  for (const svc of snapshot.services.values()) {
    if (svc.name !== name) continue;
    if (found !== undefined) return undefined; // ambiguous: ask with the namespace
    found = svc;
  }
  return found;
}

/** The mTLS mode a service's workloads accept, from PeerAuthentication (first workload's labels). */
export function mtlsModeOfService(snapshot: MeshSnapshot, svc: MeshService): EffectiveMtlsMode {
  const labels = svc.endpoints[0]?.labels ?? {};
  return mtlsModeFor(snapshot.policies.peerAuthentications, { namespace: svc.namespace, labels }, {
    rootNamespace: snapshot.rootNamespace,
    defaultMode: snapshot.defaultMtlsMode,
  });
}

function struct(obj: Readonly<Record<string, string | undefined>>): object {
  const fields: Record<string, object> = {};
  for (const [k, v] of Object.entries(obj)) if (v !== undefined) fields[k] = { stringValue: v };
  return { fields };
}

const ROUTER_FILTER: AnyMessage = packAny(TYPE_URL.router, {});

const listenerGenerator: Generator = {
  typeUrl: TYPE_URL.listener,
  fullState: true,
  *allNames(snapshot) {
    for (const svc of snapshot.services.values()) yield fqdn(svc);
  },
  generate(snapshot, name) {
    const svc = serviceOfListener(snapshot, name);
    if (svc === undefined) return undefined;
    // An API listener, as gRFC A27 expects: HTTP connection manager → RDS → router.
    const hcm = packAny(TYPE_URL.httpConnectionManager, {
      rds: { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: fqdn(svc) },
      http_filters: [{ name: 'envoy.filters.http.router', typed_config: ROUTER_FILTER }],
    });
    return { name, api_listener: { api_listener: hcm } };
  },
  affected(_snapshot, change) {
    // Bare names can become ambiguous or unambiguous when a service appears or goes.
    const out: string[] = [];
    for (const key of change.services) {
      const slash = key.indexOf('/');
      const svc = { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
      out.push(fqdn(svc), `${svc.name}.${svc.namespace}`, svc.name);
    }
    return out;
  },
};

const routeGenerator: Generator = {
  typeUrl: TYPE_URL.route,
  fullState: false,
  *allNames(snapshot) {
    for (const svc of snapshot.services.values()) yield fqdn(svc);
  },
  generate(snapshot, name) {
    const svc = serviceOfFqdn(snapshot, name);
    if (svc === undefined) return undefined;
    return {
      name,
      virtual_hosts: [{ name, domains: ['*'], routes: [{ match: { prefix: '' }, route: { cluster: name } }] }],
    };
  },
  affected(_snapshot, change) {
    return namesOf(change.services);
  },
};

const clusterGenerator: Generator = {
  typeUrl: TYPE_URL.cluster,
  fullState: true,
  *allNames(snapshot) {
    for (const svc of snapshot.services.values()) yield fqdn(svc);
  },
  generate(snapshot, name) {
    const svc = serviceOfFqdn(snapshot, name);
    if (svc === undefined) return undefined;
    return {
      name,
      type: 'EDS',
      eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: name },
      lb_policy: 'ROUND_ROBIN',
      connect_timeout: { seconds: 5 },
      // The peer's mTLS mode travels with its cluster (tracemesh's metadata namespace).
      metadata: {
        filter_metadata: {
          tracemesh: struct({ service: svc.name, namespace: svc.namespace, mtls_mode: mtlsModeOfService(snapshot, svc), trust_domain: snapshot.trustDomain }),
        },
      },
    };
  },
  affected(snapshot, change) {
    return change.policies ? 'all' : namesOf(change.services);
  },
};

function lbEndpoint(ep: WorkloadEndpoint, snapshot: MeshSnapshot): object {
  return {
    endpoint: { address: { socket_address: { address: ep.host, port_value: ep.port } }, hostname: ep.pod ?? '' },
    // Ready: takes new requests. Serving but terminating: only when nothing is ready
    // (Kubernetes' rule for terminating endpoints). Neither: not sent at all.
    health_status: ep.ready ? 'HEALTHY' : 'DRAINING',
    load_balancing_weight: { value: 1 },
    metadata: {
      filter_metadata: {
        tracemesh: struct({
          pod: ep.pod,
          node: ep.node,
          namespace: ep.namespace,
          identity: ep.serviceAccount === undefined ? undefined : `spiffe://${snapshot.trustDomain}/ns/${ep.namespace}/sa/${ep.serviceAccount}`,
        }),
      },
    },
  };
}

const endpointGenerator: Generator = {
  typeUrl: TYPE_URL.endpoint,
  fullState: false,
  *allNames(snapshot) {
    for (const svc of snapshot.services.values()) yield fqdn(svc);
  },
  generate(snapshot, name) {
    const svc = serviceOfFqdn(snapshot, name);
    if (svc === undefined) return undefined;
    const usable = svc.endpoints.filter((ep) => ep.ready || (ep.serving && ep.terminating));
    return {
      cluster_name: name,
      endpoints: usable.length === 0 ? [] : [{ locality: {}, load_balancing_weight: { value: 1 }, lb_endpoints: usable.map((ep) => lbEndpoint(ep, snapshot)) }],
    };
  },
  affected(_snapshot, change) {
    return namesOf(change.services);
  },
};

export function policyResourceName(p: { readonly kind: string; readonly metadata: { readonly namespace: string; readonly name: string } }): string {
  return `${p.kind}/${p.metadata.namespace}/${p.metadata.name}`;
}

const policyGenerator: Generator = {
  typeUrl: TYPE_URL.policy,
  fullState: true,
  *allNames(snapshot) {
    for (const p of snapshot.policies.authorizationPolicies) yield policyResourceName(p);
    for (const p of snapshot.policies.peerAuthentications) yield policyResourceName(p);
  },
  generate(snapshot, name) {
    const p = [...snapshot.policies.authorizationPolicies, ...snapshot.policies.peerAuthentications].find((x) => policyResourceName(x) === name);
    if (p === undefined) return undefined;
    return { kind: p.kind, namespace: p.metadata.namespace, name: p.metadata.name, json: JSON.stringify(p) };
  },
  affected(_snapshot, change) {
    return change.policies ? 'all' : [];
  },
};

function namesOf(keys: ReadonlySet<ServiceKey>): string[] {
  const out: string[] = [];
  for (const key of keys) {
    const slash = key.indexOf('/');
    out.push(fqdn({ namespace: key.slice(0, slash), name: key.slice(slash + 1) }));
  }
  return out;
}

/** The generators, by type URL. A type URL missing here is answered with nothing and logged. */
export const GENERATORS: ReadonlyMap<string, Generator> = new Map(
  [listenerGenerator, routeGenerator, clusterGenerator, endpointGenerator, policyGenerator].map((g) => [g.typeUrl, g]),
);
