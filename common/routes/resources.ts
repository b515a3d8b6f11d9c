// Kubernetes Gateway API routes in the GAMMA mesh profile (HTTPRoute and GRPCRoute attached to
// a Service), the Gateway they attach to at the edge, and tracemesh's FaultInjection filter:
// the TypeScript types, and the zod schemas that validate a parsed YAML/JSON document with
// the Gateway API's own limits and CEL rules. Fields tracemesh cannot honour are refused
// with the reason, never silently dropped.

import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { GRPC_STATUS_NAMES, type GrpcStatusName } from '../grpc-status.ts';

export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';
export const HTTP_ROUTE_VERSIONS: readonly string[] = ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'];
export const GRPC_ROUTE_VERSIONS: readonly string[] = ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1alpha2'];
export const GATEWAY_VERSIONS: readonly string[] = ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'];
/** Our extension group: `FaultInjection` lives here, referenced by an `ExtensionRef` filter. */
export const TRACEMESH_API_GROUP = 'tracemesh.io';
export const FAULT_INJECTION_VERSIONS: readonly string[] = ['tracemesh.io/v1alpha1'];

export interface ObjectMeta {
  readonly name: string;
  /** Defaults to `default` when the YAML leaves it out. */
  readonly namespace: string;
  /** RFC 3339; the older route wins a precedence tie, as the Gateway API says. */
  readonly creationTimestamp?: string;
}

/** What a route attaches to: a Service (mesh, GAMMA) or a Gateway (ingress). */
export interface ParentRef {
  /** `''` (core) for a Service, `gateway.networking.k8s.io` for a Gateway. */
  readonly group: string;
  readonly kind: 'Service' | 'Gateway';
  /** Defaults to the route's namespace. */
  readonly namespace?: string;
  readonly name: string;
  /** Gateway listener name (Gateway parents only). */
  readonly sectionName?: string;
  /** Service port the route applies to; absent: every port. */
  readonly port?: number;
}

export type PathMatchType = 'Exact' | 'PathPrefix' | 'RegularExpression';
export interface PathMatch {
  readonly type: PathMatchType;
  readonly value: string;
}
export interface ValueMatch {
  readonly type: 'Exact' | 'RegularExpression';
  readonly name: string;
  readonly value: string;
}
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export interface HttpRouteMatch {
  /** Absent: PathPrefix `/` (the Gateway API default). */
  readonly path?: PathMatch;
  readonly headers?: readonly ValueMatch[];
  readonly queryParams?: readonly ValueMatch[];
  readonly method?: HttpMethod;
}

export interface HeaderValue {
  readonly name: string;
  readonly value: string;
}
export interface HeaderModifier {
  readonly set?: readonly HeaderValue[];
  readonly add?: readonly HeaderValue[];
  readonly remove?: readonly string[];
}
export type PathModifier = { readonly type: 'ReplaceFullPath'; readonly replaceFullPath: string } | { readonly type: 'ReplacePrefixMatch'; readonly replacePrefixMatch: string };
export interface UrlRewrite {
  readonly hostname?: string;
  readonly path?: PathModifier;
}
export interface LocalObjectRef {
  readonly group: string;
  readonly kind: string;
  readonly name: string;
}

/** The redirect statuses the Gateway API allows (301 and 302 core; 303, 307, 308 extended). */
export const REDIRECT_STATUSES = [301, 302, 303, 307, 308] as const;
export type RedirectStatus = (typeof REDIRECT_STATUSES)[number];

/** HTTPRequestRedirectFilter: the proxy answers with a redirect instead of forwarding. */
export interface RequestRedirect {
  /** Absent: the request's scheme (`http` in the mesh). */
  readonly scheme?: 'http' | 'https';
  /** Absent: the request's host (without its port). */
  readonly hostname?: string;
  /** Absent: the request's path. */
  readonly path?: PathModifier;
  /** Absent: the scheme's well-known port when `scheme` is set, else the port the request named. */
  readonly port?: number;
  /** Default 302. */
  readonly statusCode: RedirectStatus;
}

export type HttpRouteFilter =
  | { readonly type: 'RequestHeaderModifier'; readonly requestHeaderModifier: HeaderModifier }
  | { readonly type: 'ResponseHeaderModifier'; readonly responseHeaderModifier: HeaderModifier }
  | { readonly type: 'URLRewrite'; readonly urlRewrite: UrlRewrite }
  | { readonly type: 'RequestRedirect'; readonly requestRedirect: RequestRedirect }
  | { readonly type: 'ExtensionRef'; readonly extensionRef: LocalObjectRef };

/** A header-modifier filter on one backend (the only filters tracemesh applies per backend). */
export type BackendFilter =
  | { readonly type: 'RequestHeaderModifier'; readonly requestHeaderModifier: HeaderModifier }
  | { readonly type: 'ResponseHeaderModifier'; readonly responseHeaderModifier: HeaderModifier };

export interface BackendRef {
  /** Always `''` and `Service`: tracemesh routes to Services only. */
  readonly group: '';
  readonly kind: 'Service';
  readonly name: string;
  /** Defaults to the route's namespace. */
  readonly namespace?: string;
  readonly port?: number;
  /** 0 to 1,000,000; default 1. Weight 0: no traffic. */
  readonly weight: number;
  readonly filters?: readonly BackendFilter[];
}

export interface RouteTimeouts {
  /** Gateway API duration (`10s`, `1m30s`, `500ms`); `0s` turns the timeout off. Whole request, retries included. */
  readonly request?: string;
  /** One try to a backend. */
  readonly backendRequest?: string;
}

/** The Gateway API's experimental retry fields (GEP-1731). */
export interface RouteRetry {
  /** Response codes (400–599) that are retried. Absent: none (connection failures only). */
  readonly codes?: readonly number[];
  /** Maximum number of retries after the first try. */
  readonly attempts?: number;
  /** Minimum wait between tries (a Gateway API duration). */
  readonly backoff?: string;
}

export interface HttpRouteRule {
  readonly name?: string;
  readonly matches: readonly HttpRouteMatch[];
  readonly filters?: readonly HttpRouteFilter[];
  readonly backendRefs?: readonly BackendRef[];
  readonly timeouts?: RouteTimeouts;
  readonly retry?: RouteRetry;
}

export interface HttpRoute {
  readonly apiVersion: string;
  readonly kind: 'HTTPRoute';
  readonly metadata: ObjectMeta;
  readonly spec: {
    readonly parentRefs: readonly ParentRef[];
    /** Matched against the Host for Gateway parents; ignored for Service parents (GAMMA). */
    readonly hostnames?: readonly string[];
    readonly rules: readonly HttpRouteRule[];
  };
}

export interface GrpcMethodMatch {
  readonly type: 'Exact' | 'RegularExpression';
  /** `package.Service`; absent: any service. */
  readonly service?: string;
  /** Absent: any method. */
  readonly method?: string;
}
export interface GrpcRouteMatch {
  readonly method?: GrpcMethodMatch;
  readonly headers?: readonly ValueMatch[];
}
export type GrpcRouteFilter =
  | { readonly type: 'RequestHeaderModifier'; readonly requestHeaderModifier: HeaderModifier }
  | { readonly type: 'ResponseHeaderModifier'; readonly responseHeaderModifier: HeaderModifier }
  | { readonly type: 'ExtensionRef'; readonly extensionRef: LocalObjectRef };
export interface GrpcRouteRule {
  readonly name?: string;
  readonly matches: readonly GrpcRouteMatch[];
  readonly filters?: readonly GrpcRouteFilter[];
  readonly backendRefs?: readonly BackendRef[];
}
export interface GrpcRoute {
  readonly apiVersion: string;
  readonly kind: 'GRPCRoute';
  readonly metadata: ObjectMeta;
  readonly spec: {
    readonly parentRefs: readonly ParentRef[];
    readonly hostnames?: readonly string[];
    readonly rules: readonly GrpcRouteRule[];
  };
}

/** tracemesh.io/v1alpha1 FaultInjection: what Istio's VirtualService `fault` does, as a filter. */
export interface FaultInjection {
  readonly apiVersion: string;
  readonly kind: 'FaultInjection';
  readonly metadata: ObjectMeta;
  readonly spec: {
    /** Hold the request before forwarding it. */
    readonly delay?: { readonly fixedDelay: string; readonly percentage: number };
    /** Answer without forwarding: exactly one of httpStatus and grpcStatus. */
    readonly abort?: { readonly httpStatus?: number; readonly grpcStatus?: GrpcStatusName; readonly percentage: number };
  };
}

export { GRPC_STATUS_NAMES, type GrpcStatusName };

/** An edge listener of a Gateway (ingress mode). */
export interface GatewayListener {
  readonly name: string;
  readonly protocol: 'HTTP' | 'HTTPS';
  readonly port: number;
  /** Exact or `*.example.com`; absent: any host. */
  readonly hostname?: string;
  readonly tls?: { readonly mode: 'Terminate'; readonly certificateRefs: readonly { readonly name: string; readonly namespace?: string; readonly kind: string; readonly group: string }[] };
}
export interface Gateway {
  readonly apiVersion: string;
  readonly kind: 'Gateway';
  readonly metadata: ObjectMeta;
  readonly spec: { readonly gatewayClassName: string; readonly listeners: readonly GatewayListener[] };
}

export type RouteResource = HttpRoute | GrpcRoute | FaultInjection | Gateway;

// --- durations -----------------------------------------------------------------------------

/** The Gateway API's duration format (GEP-2257): `1h`, `10s`, `1m30s`, `500ms`; up to 4 parts. */
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const UNIT_MS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Milliseconds of a Gateway API duration, or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/([0-9]+)(ms|h|m|s)/g)) total += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? 0);
  return total;
}

// --- schemas -------------------------------------------------------------------------------

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
/** Gateway API hostname: a DNS name, optionally with a leading `*.` label. */
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function unsupported(why: string) {
  return z.never({ error: `not supported: ${why}` }).exactOptional();
}
const list = <T extends z.ZodType>(item: T, max: number, what: string) => z.array(item).max(max, `may not have more than ${max} ${what}`).exactOptional();

const name = z.string().min(1, 'must not be empty').max(253).regex(DNS_SUBDOMAIN, { error: 'must be a lowercase DNS name such as "payments"' });
const namespace = z.string().max(63).regex(DNS_LABEL, { error: 'must be a Kubernetes namespace name (lowercase DNS label)' });
const port = z.int('expected an integer port').min(1, 'must be a port from 1 to 65535').max(65535, 'must be a port from 1 to 65535');
const headerName = z.string().min(1).max(256).regex(HEADER_NAME, { error: 'must be an HTTP header name (RFC 7230 token)' });
const hostname = z.string().max(253).regex(HOSTNAME, { error: 'must be a lowercase DNS name, optionally starting with "*."' });

function regexProblem(source: string): string | undefined {
  try {
    new RegExp(source);
    return undefined;
  } catch (err) {
    return `not a valid regular expression (JavaScript syntax): ${(err as Error).message}`;
  }
}

/** Gateway API path rules for Exact and PathPrefix values (and rewrite targets). */
function plainPathProblem(v: string): string | undefined {
  if (!v.startsWith('/')) return 'must begin with "/"';
  if (v.includes('//')) return 'must not contain "//"';
  if (/\/\.{1,2}(\/|$)/.test(v)) return 'must not contain "/./" or "/../" segments';
  if (/%2f/i.test(v)) return 'must not contain an encoded slash "%2F"';
  if (v.includes('#')) return 'must not contain "#"';
  if (v.includes('?')) return 'must not contain "?" (match query parameters with queryParams)';
  if (/[\u0000-\u0020\u007f]/.test(v)) return 'must not contain spaces or control characters (percent-encode them)';
  return undefined;
}

const pathMatchSchema = z
  .strictObject({
    type: z.enum(['Exact', 'PathPrefix', 'RegularExpression'], { error: 'must be Exact, PathPrefix or RegularExpression' }).default('PathPrefix'),
    value: z.string().max(1024).default('/'),
  })
  .superRefine((p, ctx) => {
    const problem = p.type === 'RegularExpression' ? regexProblem(p.value) : plainPathProblem(p.value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['value'], message: problem });
  });

const valueMatchSchema = (what: 'header' | 'query parameter') =>
  z
    .strictObject({
      type: z.enum(['Exact', 'RegularExpression'], { error: 'must be Exact or RegularExpression' }).default('Exact'),
      name: what === 'header' ? headerName : z.string().min(1).max(256),
      value: z.string().min(1, 'must not be empty').max(4096),
    })
    .superRefine((m, ctx) => {
      if (m.type !== 'RegularExpression') return;
      const problem = regexProblem(m.value);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['value'], message: problem });
    });

const httpMatchSchema = z.strictObject({
  path: pathMatchSchema.exactOptional(),
  headers: list(valueMatchSchema('header'), 16, 'header matches'),
  queryParams: list(valueMatchSchema('query parameter'), 16, 'query parameter matches'),
  method: z.enum(HTTP_METHODS, { error: `must be one of ${HTTP_METHODS.join(', ')}` }).exactOptional(),
});

// A CR, LF or NUL would split the header on the wire (RFC 9110 §5.5).
const fieldValue = z.string().min(1, 'must not be empty').max(4096).regex(/^[^\r\n\u0000]*$/, { error: 'must not contain CR, LF or NUL' });
const headerValue = z.strictObject({ name: headerName, value: fieldValue });
const headerModifierSchema = z
  .strictObject({
    set: list(headerValue, 16, 'headers'),
    add: list(headerValue, 16, 'headers'),
    remove: list(headerName, 16, 'headers'),
  })
  .superRefine((m, ctx) => {
    for (const field of ['set', 'add'] as const) {
      const seen = new Set<string>();
      m[field]?.forEach((h, i) => {
        const key = h.name.toLowerCase();
        if (seen.has(key)) ctx.addIssue({ code: 'custom', path: [field, i, 'name'], message: `header "${h.name}" is listed twice` });
        seen.add(key);
      });
    }
  });

const pathModifierSchema = z
  .discriminatedUnion(
    'type',
    [
      z.strictObject({ type: z.literal('ReplaceFullPath'), replaceFullPath: z.string().max(1024) }),
      z.strictObject({ type: z.literal('ReplacePrefixMatch'), replacePrefixMatch: z.string().max(1024) }),
    ],
    { error: 'type must be ReplaceFullPath (with replaceFullPath) or ReplacePrefixMatch (with replacePrefixMatch)' },
  )
  .superRefine((p, ctx) => {
    const v = p.type === 'ReplaceFullPath' ? p.replaceFullPath : p.replacePrefixMatch;
    const problem = plainPathProblem(v);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', path: [p.type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch'], message: problem });
  });

const urlRewriteSchema = z.strictObject({ hostname: hostname.exactOptional(), path: pathModifierSchema.exactOptional() });
/** PreciseHostname: a DNS name without a wildcard. */
const preciseHostname = z.string().max(253).regex(DNS_SUBDOMAIN, { error: 'must be a lowercase DNS name (no wildcard)' });
const requestRedirectSchema = z.strictObject({
  scheme: z.enum(['http', 'https'], { error: 'must be http or https' }).exactOptional(),
  hostname: preciseHostname.exactOptional(),
  path: pathModifierSchema.exactOptional(),
  port: port.exactOptional(),
  statusCode: z.literal([...REDIRECT_STATUSES], { error: `must be one of ${REDIRECT_STATUSES.join(', ')}` }).default(302),
});
const extensionRefSchema = z.strictObject({ group: z.string(), kind: z.string().min(1), name });

const MIRROR = unsupported('RequestMirror (tracemesh does not mirror traffic)');
const filterSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: headerModifierSchema }),
    z.strictObject({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: headerModifierSchema }),
    z.strictObject({ type: z.literal('URLRewrite'), urlRewrite: urlRewriteSchema }),
    z.strictObject({ type: z.literal('RequestRedirect'), requestRedirect: requestRedirectSchema }),
    z.strictObject({ type: z.literal('ExtensionRef'), extensionRef: extensionRefSchema }),
    z.strictObject({ type: z.literal('RequestMirror'), requestMirror: MIRROR }),
    z.strictObject({ type: z.literal('CORS'), cors: unsupported('CORS filters') }),
  ],
  { error: 'type must be RequestHeaderModifier, ResponseHeaderModifier, URLRewrite, RequestRedirect or ExtensionRef' },
);
const grpcFilterSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: headerModifierSchema }),
    z.strictObject({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: headerModifierSchema }),
    z.strictObject({ type: z.literal('ExtensionRef'), extensionRef: extensionRefSchema }),
    z.strictObject({ type: z.literal('RequestMirror'), requestMirror: MIRROR }),
  ],
  { error: 'type must be RequestHeaderModifier, ResponseHeaderModifier or ExtensionRef' },
);
const backendFilterSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: headerModifierSchema }),
    z.strictObject({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: headerModifierSchema }),
  ],
  { error: 'backendRef filters: type must be RequestHeaderModifier or ResponseHeaderModifier' },
);

const backendRefSchema = z.strictObject({
  group: z.literal('', { error: 'tracemesh routes to Services only: group must be "" (core)' }).default(''),
  kind: z.literal('Service', { error: 'tracemesh routes to Services only: kind must be Service' }).default('Service'),
  name,
  namespace: namespace.exactOptional(),
  port: port.exactOptional(),
  weight: z.int('expected an integer').min(0, 'must be from 0 to 1000000').max(1_000_000, 'must be from 0 to 1000000').default(1),
  filters: list(backendFilterSchema, 16, 'filters'),
});

const duration = z.string().refine((v) => parseDuration(v) !== undefined, { error: 'must be a duration such as "10s", "500ms" or "1m30s" (units h, m, s, ms)' });

const timeoutsSchema = z
  .strictObject({ request: duration.exactOptional(), backendRequest: duration.exactOptional() })
  .superRefine((t, ctx) => {
    if (t.request === undefined || t.backendRequest === undefined) return;
    const request = parseDuration(t.request) ?? 0;
    const backend = parseDuration(t.backendRequest) ?? 0;
    if (request !== 0 && (backend === 0 || backend > request)) {
      ctx.addIssue({ code: 'custom', path: ['backendRequest'], message: `must not be longer than timeouts.request (${t.request}); "0s" (no limit) is allowed only when request is "0s" too` });
    }
  });

const retrySchema = z.strictObject({
  codes: list(z.int('expected an integer').min(400, 'must be an HTTP status from 400 to 599').max(599, 'must be an HTTP status from 400 to 599'), 64, 'codes'),
  attempts: z.int('expected an integer').min(0).max(100, 'must be at most 100').exactOptional(),
  backoff: duration.exactOptional(),
});

const ruleName = z.string().min(1).max(253).regex(DNS_SUBDOMAIN, { error: 'must be a lowercase DNS name' });

/** The Gateway API's CEL rules on one rule's filters, shared by HTTPRoute and GRPCRoute. */
function checkFilters(filters: readonly { type: string }[] | undefined, ctx: z.RefinementCtx): void {
  const counts = new Map<string, number>();
  for (const f of filters ?? []) counts.set(f.type, (counts.get(f.type) ?? 0) + 1);
  for (const once of ['RequestHeaderModifier', 'ResponseHeaderModifier', 'URLRewrite', 'RequestRedirect']) {
    if ((counts.get(once) ?? 0) > 1) ctx.addIssue({ code: 'custom', path: ['filters'], message: `${once} filter cannot be repeated` });
  }
  if (counts.has('URLRewrite') && counts.has('RequestRedirect')) {
    ctx.addIssue({ code: 'custom', path: ['filters'], message: 'may specify either URLRewrite or RequestRedirect, but not both' });
  }
}

function checkRuleNames(rules: readonly { name?: string | undefined }[], ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  rules.forEach((r, i) => {
    if (r.name === undefined) return;
    if (seen.has(r.name)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'name'], message: `rule name "${r.name}" is used twice` });
    seen.add(r.name);
  });
}

const httpRuleSchema = z
  .strictObject({
    name: ruleName.exactOptional(),
    matches: z.array(httpMatchSchema).max(64, 'may not have more than 64 matches').default([{ path: { type: 'PathPrefix', value: '/' } }]),
    filters: list(filterSchema, 16, 'filters'),
    backendRefs: list(backendRefSchema, 16, 'backendRefs'),
    timeouts: timeoutsSchema.exactOptional(),
    retry: retrySchema.exactOptional(),
    sessionPersistence: unsupported('sessionPersistence (tracemesh has no sticky sessions yet)'),
  })
  .superRefine((r, ctx) => {
    checkFilters(r.filters, ctx);
    const replacesPrefix = (r.filters ?? []).some(
      (f) => (f.type === 'URLRewrite' && f.urlRewrite.path?.type === 'ReplacePrefixMatch') || (f.type === 'RequestRedirect' && f.requestRedirect.path?.type === 'ReplacePrefixMatch'),
    );
    if (replacesPrefix && (r.matches.length !== 1 || r.matches[0]?.path?.type !== 'PathPrefix')) {
      ctx.addIssue({ code: 'custom', path: ['filters'], message: 'ReplacePrefixMatch needs exactly one match, and it must be a PathPrefix path match' });
    }
    if ((r.backendRefs?.length ?? 0) > 0 && (r.filters ?? []).some((f) => f.type === 'RequestRedirect')) {
      ctx.addIssue({ code: 'custom', path: ['backendRefs'], message: 'RequestRedirect filter must not be used together with backendRefs (a redirect forwards nothing)' });
    }
  });

const grpcMethodSchema = z
  .strictObject({
    type: z.enum(['Exact', 'RegularExpression'], { error: 'must be Exact or RegularExpression' }).default('Exact'),
    service: z.string().min(1).max(1024).exactOptional(),
    method: z.string().min(1).max(1024).exactOptional(),
  })
  .superRefine((m, ctx) => {
    if (m.service === undefined && m.method === undefined) ctx.addIssue({ code: 'custom', message: 'one or both of service and method must be set' });
    for (const field of ['service', 'method'] as const) {
      const v = m[field];
      if (v === undefined) continue;
      if (m.type === 'Exact' && !(field === 'service' ? /^[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*$/ : /^[A-Za-z_][A-Za-z_0-9]*$/).test(v)) {
        ctx.addIssue({ code: 'custom', path: [field], message: field === 'service' ? 'must be a full service name such as "foo.v1.Greeter"' : 'must be a method name such as "SayHello"' });
      }
      if (m.type === 'RegularExpression') {
        const problem = regexProblem(v);
        if (problem !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: problem });
      }
    }
  });

const grpcRuleSchema = z
  .strictObject({
    name: ruleName.exactOptional(),
    matches: z.array(z.strictObject({ method: grpcMethodSchema.exactOptional(), headers: list(valueMatchSchema('header'), 16, 'header matches') })).max(64).default([{}]),
    filters: list(grpcFilterSchema, 16, 'filters'),
    backendRefs: list(backendRefSchema, 16, 'backendRefs'),
    sessionPersistence: unsupported('sessionPersistence (tracemesh has no sticky sessions yet)'),
  })
  .superRefine((r, ctx) => checkFilters(r.filters, ctx));

const parentRefSchema = z
  .strictObject({
    group: z.string().default(GATEWAY_API_GROUP),
    kind: z.string().default('Gateway'),
    namespace: namespace.exactOptional(),
    name,
    sectionName: z.string().min(1).max(253).exactOptional(),
    port: port.exactOptional(),
  })
  .superRefine((p, ctx) => {
    const service = p.group === '' && p.kind === 'Service';
    const gateway = p.group === GATEWAY_API_GROUP && p.kind === 'Gateway';
    if (!service && !gateway) {
      ctx.addIssue({ code: 'custom', message: `parentRef ${p.group === '' ? 'core' : p.group}/${p.kind} is not supported: attach to a Service (group: "", kind: Service) for the mesh, or to a Gateway for ingress` });
    }
    if (service && p.sectionName !== undefined) ctx.addIssue({ code: 'custom', path: ['sectionName'], message: 'not supported on a Service parentRef (tracemesh does not know port names); use port' });
  })
  .transform((p): ParentRef => {
    const out: { -readonly [K in keyof ParentRef]: ParentRef[K] } = { group: p.group, kind: p.kind === 'Service' ? 'Service' : 'Gateway', name: p.name };
    if (p.namespace !== undefined) out.namespace = p.namespace;
    if (p.sectionName !== undefined) out.sectionName = p.sectionName;
    if (p.port !== undefined) out.port = p.port;
    return out;
  });

const metadataSchema = z.object({
  name,
  namespace: namespace.default('default'),
  creationTimestamp: z
    .string()
    .refine((t) => !Number.isNaN(Date.parse(t)), { error: 'must be an RFC 3339 timestamp' })
    .exactOptional(),
});

const apiVersion = (versions: readonly string[]) => z.string().refine((v) => versions.includes(v), { error: `must be one of ${versions.join(', ')}` });
// kubectl get -o yaml output carries a status; it is not ours to check, and it is dropped.
const statusSchema = z.unknown().exactOptional();

const routeSpec = <R extends z.ZodType>(rule: R) =>
  z
    .strictObject({
      parentRefs: z.array(parentRefSchema).min(1, 'must attach to at least one parent (a Service for the mesh, a Gateway for ingress)').max(32),
      hostnames: list(hostname, 16, 'hostnames'),
      rules: z.array(rule).max(16, 'may not have more than 16 rules').prefault([{}] as never),
    })
    .superRefine((s, ctx) => checkRuleNames(s.rules as readonly { name?: string }[], ctx));

export const httpRouteSchema: z.ZodType<HttpRoute> = z
  .strictObject({ apiVersion: apiVersion(HTTP_ROUTE_VERSIONS), kind: z.literal('HTTPRoute'), metadata: metadataSchema, spec: routeSpec(httpRuleSchema), status: statusSchema })
  .transform(({ status: _status, ...rest }) => rest as HttpRoute);

export const grpcRouteSchema: z.ZodType<GrpcRoute> = z
  .strictObject({ apiVersion: apiVersion(GRPC_ROUTE_VERSIONS), kind: z.literal('GRPCRoute'), metadata: metadataSchema, spec: routeSpec(grpcRuleSchema), status: statusSchema })
  .transform(({ status: _status, ...rest }) => rest as GrpcRoute);

const percentage = z.number({ error: 'percentage is required: the share of requests, from 0 to 100' }).min(0, 'must be from 0 to 100').max(100, 'must be from 0 to 100');
const faultSpecSchema = z
  .strictObject({
    delay: z.strictObject({ fixedDelay: duration, percentage }).exactOptional(),
    abort: z
      .strictObject({
        httpStatus: z.int('expected an integer').min(200, 'must be an HTTP status from 200 to 599').max(599, 'must be an HTTP status from 200 to 599').exactOptional(),
        grpcStatus: z.enum(GRPC_STATUS_NAMES, { error: `must be a gRPC status name: ${GRPC_STATUS_NAMES.join(', ')}` }).exactOptional(),
        percentage,
      })
      .superRefine((a, ctx) => {
        if ((a.httpStatus === undefined) === (a.grpcStatus === undefined)) ctx.addIssue({ code: 'custom', message: 'set exactly one of httpStatus and grpcStatus' });
      })
      .exactOptional(),
  })
  .superRefine((s, ctx) => {
    if (s.delay === undefined && s.abort === undefined) ctx.addIssue({ code: 'custom', message: 'set delay, abort or both' });
  });

export const faultInjectionSchema: z.ZodType<FaultInjection> = z
  .strictObject({ apiVersion: apiVersion(FAULT_INJECTION_VERSIONS), kind: z.literal('FaultInjection'), metadata: metadataSchema, spec: faultSpecSchema, status: statusSchema })
  .transform(({ status: _status, ...rest }) => rest as FaultInjection);

const listenerSchema = z
  .strictObject({
    name: z.string().min(1).max(253).regex(DNS_SUBDOMAIN, { error: 'must be a lowercase DNS name' }),
    protocol: z.enum(['HTTP', 'HTTPS'], { error: 'tracemesh gateways serve HTTP and HTTPS listeners' }),
    port,
    hostname: hostname.exactOptional(),
    tls: z
      .strictObject({
        mode: z.literal('Terminate', { error: 'tracemesh gateways terminate TLS (mode: Terminate); Passthrough is not supported' }).default('Terminate'),
        certificateRefs: z
          .array(z.strictObject({ group: z.string().default(''), kind: z.string().default('Secret'), name, namespace: namespace.exactOptional() }))
          .min(1, 'a Terminate listener needs one certificateRef'),
        options: z.record(z.string(), z.string()).exactOptional(),
      })
      .exactOptional(),
    allowedRoutes: z.unknown().exactOptional(),
  })
  .superRefine((l, ctx) => {
    if (l.protocol === 'HTTPS' && l.tls === undefined) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'an HTTPS listener needs tls.certificateRefs' });
    if (l.protocol === 'HTTP' && l.tls !== undefined) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'an HTTP listener takes no tls' });
  });

export const gatewaySchema: z.ZodType<Gateway> = z
  .strictObject({
    apiVersion: apiVersion(GATEWAY_VERSIONS),
    kind: z.literal('Gateway'),
    metadata: metadataSchema,
    spec: z.strictObject({
      gatewayClassName: z.string().min(1),
      listeners: z.array(listenerSchema).min(1, 'needs at least one listener').max(64),
      addresses: z.unknown().exactOptional(),
      infrastructure: z.unknown().exactOptional(),
    }),
    status: statusSchema,
  })
  .transform(({ status: _status, ...rest }) => rest as unknown as Gateway);

// --- errors --------------------------------------------------------------------------------

/** `spec.rules[0].matches[1].path`; `(top level)` for the document itself. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out === '' ? '(top level)' : out;
}

function issueText(issue: z.core.$ZodIssue, prefix: readonly PropertyKey[]): string[] {
  const at = [...prefix, ...issue.path];
  if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => `${fieldPath([...at, k])}: unknown field`);
  let message = issue.message;
  if (issue.code === 'invalid_type') message = message.endsWith('received undefined') ? 'required' : message.replace(/^Invalid input: /, '');
  return [`${fieldPath(at)}: ${message}`];
}

/** `HTTPRoute shop/canary`, read from a raw document so that even an invalid one is named. */
export function describeDocument(doc: Record<string, unknown>): string {
  const meta = doc['metadata'];
  const m = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>) : {};
  const ns = typeof m['namespace'] === 'string' ? m['namespace'] : 'default';
  const nm = typeof m['name'] === 'string' ? m['name'] : '(unnamed)';
  return `${String(doc['kind'])} ${ns}/${nm}`;
}

/**
 * Validates one document as `schema`; throws a ConfigError listing every problem as
 * `<where>: <Kind> <ns>/<name>: <field>: <message>`.
 */
export function parseResource<T>(schema: z.ZodType<T>, doc: Record<string, unknown>, where: string, prefix: readonly PropertyKey[] = []): T {
  const result = schema.safeParse(doc);
  if (result.success) return result.data;
  const problems = result.error.issues.flatMap((i) => issueText(i, prefix));
  throw new ConfigError(`${where}: ${describeDocument(doc)}: ${problems.join('; ')}`);
}

/** `<namespace>/<name>`. */
export function resourceId(r: { readonly metadata: ObjectMeta }): string {
  return `${r.metadata.namespace}/${r.metadata.name}`;
}
