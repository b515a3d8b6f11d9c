// The Gateway a gateway serves, checked beyond its schema and compiled for the request path:
// its listeners grouped by port (one bound server per port), the listener a request belongs to
// by its host (and, for TLS, the certificate by SNI), and the checks that need the routes too
// (a route's sectionName must name a listener). Pure: no I/O.

import { parseAllDocuments } from 'yaml';
import { ConfigError } from '../../common/errors.ts';
import type { RouteFiles } from '../../common/routes/load.ts';
import { GATEWAY_API_GROUP, resourceId, type Gateway, type GatewayListener } from '../../common/routes/resources.ts';
import type { FileSource } from '../../common/yaml-files.ts';

/** The listeners of one port of the Gateway: one protocol, several hostnames. */
export interface PortListeners {
  /** The port the Gateway declares (what clients are told; redirects name it). */
  readonly port: number;
  readonly protocol: 'HTTP' | 'HTTPS';
  /** Most specific first: exact hostnames, then wildcards (longest first), then the catch-all. */
  readonly listeners: readonly GatewayListener[];
}

/** `namespace/name` of a Gateway. */
export interface GatewayRef {
  readonly namespace: string;
  readonly name: string;
}

export function parseGatewayRef(text: string, defaultNamespace: string): GatewayRef | undefined {
  if (text === '') return undefined;
  const slash = text.indexOf('/');
  return slash === -1 ? { namespace: defaultNamespace, name: text } : { namespace: text.slice(0, slash), name: text.slice(slash + 1) };
}

/** Where a resource is defined: `file (document n)`, found again in the sources the set was parsed from. */
export function whereDefined(sources: readonly FileSource[], kind: string, namespace: string, name: string): string {
  for (const { file, text } of sources) {
    const docs = parseAllDocuments(text);
    for (let i = 0; i < docs.length; i++) {
      const js: unknown = docs[i]?.toJS();
      const items = isObject(js) && Array.isArray(js['items']) ? (js['items'] as unknown[]) : [js];
      for (const item of items) {
        if (!isObject(item) || item['kind'] !== kind) continue;
        const meta = item['metadata'];
        if (isObject(meta) && meta['name'] === name && (meta['namespace'] ?? 'default') === namespace) return `${file} (document ${i + 1})`;
      }
    }
  }
  return '(route files)';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function specificity(l: GatewayListener): number {
  const h = l.hostname;
  if (h === undefined) return 0;
  return h.startsWith('*.') ? 1000 + h.length : 1_000_000 + h.length;
}

/** The Gateway listener hostname rule: exact, or `*.example.com` for any name below it (never the apex). */
export function listenerAccepts(l: GatewayListener, host: string): boolean {
  const h = l.hostname;
  if (h === undefined) return true;
  if (!h.startsWith('*.')) return h === host;
  return host.endsWith(h.slice(1)) && host.length > h.length - 1;
}

/** The listener of `ports` that takes `host` (lower case, no port), most specific first. */
export function listenerFor(ports: PortListeners, host: string): GatewayListener | undefined {
  return ports.listeners.find((l) => listenerAccepts(l, host));
}

/**
 * Picks the Gateway to serve from the route files: the one `ref` names, or the only one.
 * Throws a ConfigError that names the files' Gateways when it is missing or ambiguous.
 */
export function selectGateway(files: RouteFiles, ref: GatewayRef | undefined): Gateway {
  const all = files.gateways;
  if (ref === undefined) {
    const only = all[0];
    if (all.length === 1 && only !== undefined) return only;
    throw new ConfigError(
      all.length === 0
        ? 'the route files define no Gateway (kind: Gateway, apiVersion: gateway.networking.k8s.io/v1); check --route-files'
        : `the route files define ${all.length} Gateways (${all.map(resourceId).join(', ')}); choose one with --gateway <namespace>/<name>`,
    );
  }
  const found = all.find((g) => g.metadata.namespace === ref.namespace && g.metadata.name === ref.name);
  if (found === undefined) {
    throw new ConfigError(`Gateway ${ref.namespace}/${ref.name} (--gateway) is not in the route files; they define ${all.length === 0 ? 'none' : all.map(resourceId).join(', ')}`);
  }
  return found;
}

/**
 * Groups the listeners by port and checks what the schema cannot: listener names are unique,
 * one port carries one protocol, no two listeners of a port share a hostname, every HTTPS
 * listener's certificate is one the gateway was given (`certificates`, by certificateRef
 * name), and every route attached to this Gateway names an existing listener. Throws a
 * ConfigError naming `where`, the resource and the reason.
 */
export function compileGateway(gw: Gateway, files: RouteFiles, certificates: ReadonlySet<string>, where: (kind: string, namespace: string, name: string) => string): PortListeners[] {
  const id = `Gateway ${resourceId(gw)}`;
  const at = (i: number, reason: string): ConfigError => new ConfigError(`${where('Gateway', gw.metadata.namespace, gw.metadata.name)}: ${id}: spec.listeners[${i}]: ${reason}`);
  const byPort = new Map<number, { protocol: 'HTTP' | 'HTTPS'; listeners: GatewayListener[] }>();
  const names = new Set<string>();
  gw.spec.listeners.forEach((l, i) => {
    if (names.has(l.name)) throw at(i, `listener name "${l.name}" is used twice`);
    names.add(l.name);
    let p = byPort.get(l.port);
    if (p === undefined) byPort.set(l.port, (p = { protocol: l.protocol, listeners: [] }));
    if (p.protocol !== l.protocol) throw at(i, `port ${l.port} is ${p.protocol} for another listener; one port carries one protocol`);
    if (p.listeners.some((o) => o.hostname === l.hostname)) throw at(i, `port ${l.port} already has a listener for ${l.hostname === undefined ? 'any hostname' : `hostname ${l.hostname}`}`);
    if (l.protocol === 'HTTPS') {
      for (const ref of l.tls?.certificateRefs ?? []) {
        if (!certificates.has(ref.name)) throw at(i, `certificateRef "${ref.name}" has no certificate: give it with --certificates ${ref.name}=<cert.pem>:<key.pem>`);
      }
    }
    p.listeners.push(l);
  });
  for (const route of files.httpRoutes) {
    route.spec.parentRefs.forEach((p, i) => {
      if (p.kind !== 'Gateway' || p.group !== GATEWAY_API_GROUP) return;
      if ((p.namespace ?? route.metadata.namespace) !== gw.metadata.namespace || p.name !== gw.metadata.name) return;
      if (p.sectionName !== undefined && !names.has(p.sectionName)) {
        throw new ConfigError(
          `${where('HTTPRoute', route.metadata.namespace, route.metadata.name)}: HTTPRoute ${resourceId(route)}: spec.parentRefs[${i}].sectionName: ${id} has no listener "${p.sectionName}" (it has ${[...names].join(', ')})`,
        );
      }
    });
  }
  return [...byPort.entries()].map(([port, p]) => ({ port, protocol: p.protocol, listeners: [...p.listeners].sort((a, b) => specificity(b) - specificity(a)) }));
}
