// A route table compiled once per route set: which routes attach to a Service (producer and
// consumer routes, GAMMA) or a Gateway listener, and every match of every rule in the order
// the Gateway API's precedence rules give. resolve() finds the rule for one request; plan()
// (in plan.ts) turns it into what the proxy does. Pure: no I/O, no clock, no randomness.

import {
  parseDuration,
  resourceId,
  type BackendRef,
  type FaultInjection,
  type GrpcRoute,
  type GrpcRouteMatch,
  type HeaderModifier,
  type HttpRoute,
  type HttpRouteMatch,
  type ParentRef,
  type RequestRedirect,
  type UrlRewrite,
  type ValueMatch,
} from './resources.ts';

/** What the matcher reads of one request; engines adapt their own request to it. */
export interface RouteRequest {
  /** Upper-case method (`GET`). For gRPC always `POST`. */
  readonly method: string;
  /** Path without the query, as received (`/v2/items`). */
  readonly path: string;
  /** The query string without `?`; `''` when there is none. */
  readonly query: string;
  /** A header's value by lower-case name; repeated headers joined with `, `. */
  header(name: string): string | undefined;
  /** `content-type: application/grpc…`: GRPCRoutes apply. */
  readonly grpc: boolean;
}

/** A Service as routes name it. */
export interface ServiceRef {
  readonly namespace: string;
  readonly name: string;
}

export interface FaultSpec {
  readonly delayMs: number;
  readonly delayPercentage: number;
  readonly abortHttpStatus: number | undefined;
  readonly abortGrpcStatus: number | undefined;
  readonly abortPercentage: number;
  /** `FaultInjection <ns>/<name>`. */
  readonly source: string;
}

export interface CompiledBackend {
  /** The Service's name: the cluster the balancer picks in. */
  readonly service: string;
  readonly namespace: string;
  readonly port: number | undefined;
  readonly weight: number;
  readonly requestHeaders: HeaderModifier | undefined;
  readonly responseHeaders: HeaderModifier | undefined;
}

export interface CompiledRetry {
  readonly codes: ReadonlySet<number>;
  /** Retries after the first try. */
  readonly attempts: number;
  readonly backoffMs: number | undefined;
}

export interface CompiledRule {
  /** `HTTPRoute shop/payments-canary`. */
  readonly route: string;
  /** The rule's name, or its index in the route (`rule 0`). */
  readonly rule: string;
  readonly requestHeaders: HeaderModifier | undefined;
  readonly responseHeaders: HeaderModifier | undefined;
  readonly rewrite: UrlRewrite | undefined;
  /** RequestRedirect: the rule answers with a redirect and forwards nothing. */
  readonly redirect: RequestRedirect | undefined;
  readonly faults: readonly FaultSpec[];
  readonly backends: readonly CompiledBackend[];
  /** Sum of the backends' weights; 0 means the rule forwards nothing (500). */
  readonly totalWeight: number;
  /** Whole request, retries included; undefined: not set; 0: no limit. */
  readonly requestTimeoutMs: number | undefined;
  /** One try; undefined: not set; 0: no limit. */
  readonly backendTimeoutMs: number | undefined;
  readonly retry: CompiledRetry | undefined;
}

type Test = (value: string) => boolean;

interface CompiledMatch {
  readonly rule: CompiledRule;
  readonly grpcOnly: boolean;
  readonly pathType: 'Exact' | 'PathPrefix' | 'RegularExpression';
  /** Exact/prefix value without a trailing `/` (the prefix `/` stays `/`), or the regex source. */
  readonly pathValue: string;
  readonly path: Test;
  readonly method: string | undefined;
  readonly headers: readonly { readonly name: string; readonly test: Test }[];
  readonly query: readonly { readonly name: string; readonly test: Test }[];
  /** For Gateway parents: the route's hostnames (empty: any). */
  readonly hostnames: readonly string[];
  /** A Service parentRef's port: the match applies to requests for that port only. */
  readonly port: number | undefined;
  // precedence tie-breakers
  readonly created: number;
  readonly id: string;
  readonly ruleIndex: number;
  readonly matchIndex: number;
}

/** What the table found for one request. */
export type RouteResolution =
  /** No route attaches to this Service for this consumer: send to the Service itself. */
  | { readonly kind: 'unrouted' }
  /** Routes attach, but no rule matches: 404, as the Gateway API says. */
  | { readonly kind: 'unmatched'; readonly routes: readonly string[] }
  | { readonly kind: 'matched'; readonly rule: CompiledRule; readonly prefix: string | undefined };

/** Routes of one parent (a Service for one set of consumers, or a Gateway listener), in precedence order. */
interface Attachment {
  readonly matches: CompiledMatch[];
  readonly routes: Set<string>;
}

const GRPC_STATUS_CODES: Readonly<Record<string, number>> = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

/** Everything a route table is built from. */
export interface RouteSet {
  readonly httpRoutes: readonly HttpRoute[];
  readonly grpcRoutes: readonly GrpcRoute[];
  readonly faultInjections: readonly FaultInjection[];
}

export const EMPTY_ROUTE_SET: RouteSet = Object.freeze({ httpRoutes: [], grpcRoutes: [], faultInjections: [] });

function anchored(source: string): Test {
  const re = new RegExp(`^(?:${source})$`);
  return (v) => re.test(v);
}

function valueTest(m: ValueMatch): Test {
  if (m.type === 'RegularExpression') return anchored(m.value);
  const want = m.value;
  return (v) => v === want;
}

/** Keeps the first of several matches on one name, as the Gateway API says. */
function firstByName(list: readonly ValueMatch[] | undefined, fold: boolean): { name: string; test: Test }[] {
  const out: { name: string; test: Test }[] = [];
  const seen = new Set<string>();
  for (const m of list ?? []) {
    const key = fold ? m.name.toLowerCase() : m.name;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ name: key, test: valueTest(m) });
  }
  return out;
}

function trimSlash(prefix: string): string {
  return prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
}

function pathTest(type: CompiledMatch['pathType'], value: string): Test {
  if (type === 'RegularExpression') return anchored(value);
  if (type === 'Exact') return (p) => p === value;
  if (value === '/') return () => true;
  // Element-wise: `/abc` matches `/abc`, `/abc/` and `/abc/def`, never `/abcd`.
  return (p) => p.startsWith(value) && (p.length === value.length || p.charCodeAt(value.length) === 47);
}

function createdAt(ts: string | undefined): number {
  // A route without a timestamp (a local file) sorts after every dated one.
  return ts === undefined ? Number.MAX_SAFE_INTEGER : Date.parse(ts);
}

type ModifierFilter = { readonly type: string; readonly requestHeaderModifier?: HeaderModifier; readonly responseHeaderModifier?: HeaderModifier };

function headerFilters(filters: readonly ModifierFilter[] | undefined, type: 'RequestHeaderModifier' | 'ResponseHeaderModifier'): HeaderModifier | undefined {
  const f = filters?.find((x) => x.type === type);
  return type === 'RequestHeaderModifier' ? f?.requestHeaderModifier : f?.responseHeaderModifier;
}

function compileBackends(refs: readonly BackendRef[] | undefined, routeNamespace: string): CompiledBackend[] {
  return (refs ?? []).map((b) => ({
    service: b.name,
    namespace: b.namespace ?? routeNamespace,
    port: b.port,
    weight: b.weight,
    requestHeaders: headerFilters(b.filters, 'RequestHeaderModifier'),
    responseHeaders: headerFilters(b.filters, 'ResponseHeaderModifier'),
  }));
}

function compileFault(f: FaultInjection): FaultSpec {
  const abort = f.spec.abort;
  return {
    delayMs: f.spec.delay === undefined ? 0 : (parseDuration(f.spec.delay.fixedDelay) ?? 0),
    delayPercentage: f.spec.delay?.percentage ?? 0,
    abortHttpStatus: abort?.httpStatus,
    abortGrpcStatus: abort?.grpcStatus === undefined ? undefined : GRPC_STATUS_CODES[abort.grpcStatus],
    abortPercentage: abort?.percentage ?? 0,
    source: `FaultInjection ${resourceId(f)}`,
  };
}

type AnyFilter = { readonly type: string; readonly extensionRef?: { group: string; kind: string; name: string } };

function faultsOf(filters: readonly AnyFilter[] | undefined, namespace: string, faults: ReadonlyMap<string, FaultSpec>): FaultSpec[] {
  const out: FaultSpec[] = [];
  for (const f of filters ?? []) {
    if (f.type !== 'ExtensionRef' || f.extensionRef === undefined) continue;
    const spec = faults.get(`${namespace}/${f.extensionRef.name}`);
    // The loader refuses dangling references, so this only guards hand-built sets.
    if (spec !== undefined) out.push(spec);
  }
  return out;
}

function durationMs(text: string | undefined): number | undefined {
  return text === undefined ? undefined : parseDuration(text);
}

function ruleLabel(name: string | undefined, index: number): string {
  return name ?? `rule ${index}`;
}

/** `/pkg.Svc/Method` matching of a GRPCRoute method match, as a path match. */
function grpcPath(m: GrpcRouteMatch): { type: CompiledMatch['pathType']; value: string } {
  const method = m.method;
  if (method === undefined) return { type: 'PathPrefix', value: '/' };
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  if (method.type === 'Exact') {
    if (method.service !== undefined && method.method !== undefined) return { type: 'Exact', value: `/${method.service}/${method.method}` };
    if (method.service !== undefined) return { type: 'PathPrefix', value: `/${method.service}` };
    return { type: 'RegularExpression', value: `/[^/]+/${esc(method.method ?? '')}` };
  }
  return { type: 'RegularExpression', value: `/(?:${method.service ?? '[^/]+'})/(?:${method.method ?? '[^/]+'})` };
}

/** Negative when `a` takes precedence over `b` (the Gateway API's order; regex as Istio ranks it). */
function precedence(a: CompiledMatch, b: CompiledMatch): number {
  const rank = (m: CompiledMatch) => (m.pathType === 'Exact' ? 0 : m.pathType === 'RegularExpression' ? 1 : 2);
  return (
    // GRPCRoute matches first for gRPC requests; they never see plain HTTP.
    Number(b.grpcOnly) - Number(a.grpcOnly) ||
    rank(a) - rank(b) ||
    b.pathValue.length - a.pathValue.length ||
    Number(b.method !== undefined) - Number(a.method !== undefined) ||
    b.headers.length - a.headers.length ||
    b.query.length - a.query.length ||
    a.created - b.created ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) ||
    a.ruleIndex - b.ruleIndex ||
    a.matchIndex - b.matchIndex
  );
}

function queryValue(query: string, name: string): string | undefined {
  if (query === '') return undefined;
  // The first occurrence wins, as Envoy does.
  return new URLSearchParams(query).get(name) ?? undefined;
}

function matches(m: CompiledMatch, req: RouteRequest): boolean {
  if (m.grpcOnly && !req.grpc) return false;
  if (!m.path(req.path)) return false;
  if (m.method !== undefined && m.method !== req.method) return false;
  for (const h of m.headers) {
    const v = req.header(h.name);
    if (v === undefined || !h.test(v)) return false;
  }
  for (const q of m.query) {
    const v = queryValue(req.query, q.name);
    if (v === undefined || !q.test(v)) return false;
  }
  return true;
}

/** Gateway API hostname matching: exact, or `*.example.com` for any deeper name. */
export function hostnameMatches(pattern: string, host: string): boolean {
  if (!pattern.startsWith('*.')) return pattern === host;
  return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
}

export class RouteTable {
  /** `<ns>/<service>` → route namespace → attachment. */
  private readonly services = new Map<string, Map<string, Attachment>>();
  /** `<ns>/<gateway>` → sectionName ('' for all listeners) → attachment. */
  private readonly gateways = new Map<string, Map<string, Attachment>>();
  /** Number of routes compiled, for logs. */
  readonly size: number;

  private constructor(size: number) {
    this.size = size;
  }

  static compile(set: RouteSet): RouteTable {
    const faults = new Map<string, FaultSpec>();
    for (const f of set.faultInjections) faults.set(resourceId(f), compileFault(f));
    const table = new RouteTable(set.httpRoutes.length + set.grpcRoutes.length);
    for (const r of set.httpRoutes) table.addRoute(r, faults);
    for (const r of set.grpcRoutes) table.addRoute(r, faults);
    for (const byNs of [...table.services.values(), ...table.gateways.values()]) {
      for (const a of byNs.values()) a.matches.sort(precedence);
    }
    return table;
  }

  private attachment(parent: ParentRef, routeNamespace: string): Attachment {
    const ns = parent.namespace ?? routeNamespace;
    const key = `${ns}/${parent.name}`;
    const outer = parent.kind === 'Service' ? this.services : this.gateways;
    let byKey = outer.get(key);
    if (byKey === undefined) outer.set(key, (byKey = new Map()));
    // Services: keyed by the route's namespace (producer vs consumer routes). Gateways: by listener.
    const inner = parent.kind === 'Service' ? routeNamespace : (parent.sectionName ?? '');
    let a = byKey.get(inner);
    if (a === undefined) byKey.set(inner, (a = { matches: [], routes: new Set() }));
    return a;
  }

  private addRoute(route: HttpRoute | GrpcRoute, faults: ReadonlyMap<string, FaultSpec>): void {
    const ns = route.metadata.namespace;
    const id = `${route.kind} ${resourceId(route)}`;
    const grpc = route.kind === 'GRPCRoute';
    const created = createdAt(route.metadata.creationTimestamp);
    const compiled: CompiledMatch[] = [];
    route.spec.rules.forEach((rule, ruleIndex) => {
      const backends = compileBackends(rule.backendRefs, ns);
      const http = grpc ? undefined : (rule as HttpRoute['spec']['rules'][number]);
      const rewrite = http?.filters?.find((f) => f.type === 'URLRewrite');
      const redirect = http?.filters?.find((f) => f.type === 'RequestRedirect');
      const compiledRule: CompiledRule = {
        route: id,
        rule: ruleLabel(rule.name, ruleIndex),
        requestHeaders: headerFilters(rule.filters, 'RequestHeaderModifier'),
        responseHeaders: headerFilters(rule.filters, 'ResponseHeaderModifier'),
        rewrite: rewrite?.type === 'URLRewrite' ? rewrite.urlRewrite : undefined,
        redirect: redirect?.type === 'RequestRedirect' ? redirect.requestRedirect : undefined,
        faults: faultsOf(rule.filters as readonly AnyFilter[] | undefined, ns, faults),
        backends,
        totalWeight: backends.reduce((sum, b) => sum + b.weight, 0),
        requestTimeoutMs: durationMs(http?.timeouts?.request),
        backendTimeoutMs: durationMs(http?.timeouts?.backendRequest),
        retry:
          http?.retry === undefined
            ? undefined
            : { codes: new Set(http.retry.codes ?? []), attempts: http.retry.attempts ?? 1, backoffMs: durationMs(http.retry.backoff) },
      };
      const ruleMatches = rule.matches as readonly (HttpRouteMatch | GrpcRouteMatch)[];
      ruleMatches.forEach((m, matchIndex) => {
        const path = grpc ? grpcPath(m as GrpcRouteMatch) : ((m as HttpRouteMatch).path ?? { type: 'PathPrefix' as const, value: '/' });
        const value = path.type === 'PathPrefix' ? trimSlash(path.value) : path.value;
        compiled.push({
          rule: compiledRule,
          grpcOnly: grpc,
          pathType: path.type,
          pathValue: value,
          path: pathTest(path.type, value),
          method: grpc ? undefined : (m as HttpRouteMatch).method,
          headers: firstByName(m.headers, true),
          query: grpc ? [] : firstByName((m as HttpRouteMatch).queryParams, false),
          hostnames: route.spec.hostnames ?? [],
          port: undefined,
          created,
          id: resourceId(route),
          ruleIndex,
          matchIndex,
        });
      });
    });
    for (const parent of route.spec.parentRefs) {
      const a = this.attachment(parent, ns);
      a.routes.add(id);
      // A parentRef port narrows a Service route to that port.
      const port = parent.kind === 'Service' ? parent.port : undefined;
      for (const m of compiled) a.matches.push(port === undefined ? m : { ...m, port });
    }
  }

  /**
   * The rule for a request to `service` from a consumer in `consumerNamespace`. Consumer
   * routes (in the consumer's namespace, for a Service elsewhere) replace the producer's
   * routes (in the Service's namespace) for that consumer; routes in any third namespace do
   * not apply. `port`: the Service port the request names (undefined: 80).
   */
  resolve(service: ServiceRef, consumerNamespace: string, req: RouteRequest, port?: number): RouteResolution {
    const byNs = this.services.get(`${service.namespace}/${service.name}`);
    if (byNs === undefined) return UNROUTED;
    const attachment = (consumerNamespace !== service.namespace ? byNs.get(consumerNamespace) : undefined) ?? byNs.get(service.namespace);
    if (attachment === undefined) return UNROUTED;
    return find(attachment, req, undefined, port ?? 80);
  }

  /** Whether any route attaches to the Service for this consumer (cheap; for protocols that cannot be routed per request). */
  hasRoutes(service: ServiceRef, consumerNamespace: string): boolean {
    const byNs = this.services.get(`${service.namespace}/${service.name}`);
    return byNs !== undefined && (byNs.has(consumerNamespace) || byNs.has(service.namespace));
  }

  /**
   * The rule for a request that reached listener `sectionName` of a Gateway, with `host`
   * (lower case, no port). Routes that name the listener and routes that name the whole
   * Gateway both apply; the route's hostnames must match the host.
   */
  resolveGateway(gateway: ServiceRef, sectionName: string, host: string, req: RouteRequest): RouteResolution {
    const byListener = this.gateways.get(`${gateway.namespace}/${gateway.name}`);
    if (byListener === undefined) return { kind: 'unmatched', routes: [] };
    const parts = [byListener.get(sectionName), byListener.get('')].filter((a) => a !== undefined);
    const merged: Attachment = { matches: parts.flatMap((a) => a.matches).sort(precedence), routes: new Set(parts.flatMap((a) => [...a.routes])) };
    return find(merged, req, host, undefined);
  }
}

const UNROUTED: RouteResolution = Object.freeze({ kind: 'unrouted' });

function find(a: Attachment, req: RouteRequest, host: string | undefined, port: number | undefined): RouteResolution {
  // Routes whose parentRef port names another port do not attach to this request at all.
  let attached = false;
  for (const m of a.matches) {
    if (m.port !== undefined && m.port !== port) continue;
    attached = true;
    if (host !== undefined && m.hostnames.length > 0 && !m.hostnames.some((h) => hostnameMatches(h, host))) continue;
    if (matches(m, req)) return { kind: 'matched', rule: m.rule, prefix: m.pathType === 'PathPrefix' ? m.pathValue : undefined };
  }
  return attached || host !== undefined ? { kind: 'unmatched', routes: [...a.routes] } : UNROUTED;
}

/** The Service a request's host names, as Kubernetes DNS resolves it from `consumerNamespace`. */
export function serviceRefOfHost(host: string, consumerNamespace: string): ServiceRef & { readonly port: number | undefined } {
  let h = host.toLowerCase();
  let port: number | undefined;
  const colon = h.lastIndexOf(':');
  if (colon !== -1 && colon > h.lastIndexOf(']') && /^\d{1,5}$/.test(h.slice(colon + 1))) {
    port = Number(h.slice(colon + 1));
    h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  const parts = h.split('.');
  // b, b.ns, b.ns.svc, b.ns.svc.cluster.local
  if (parts.length === 2 || (parts.length >= 3 && parts[2] === 'svc' && (parts.length === 3 || parts.slice(3).join('.') === 'cluster.local'))) {
    return { namespace: parts[1] ?? consumerNamespace, name: parts[0] ?? h, port };
  }
  return { namespace: consumerNamespace, name: h, port };
}
