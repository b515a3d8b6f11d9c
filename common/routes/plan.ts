// What the proxy does with a request once the table found its rule: answer it (no backend,
// injected abort) or forward it to a backend chosen by weight, with the path and
// host rewritten, header edits for the request and the response, a fault delay, timeouts and
// retries for the resilience layer. Pure: randomness comes in as a function.

import type { HeaderModifier, PathModifier, RequestRedirect } from './resources.ts';
import type { CompiledBackend, CompiledRetry, CompiledRule, RouteResolution, RouteRequest } from './table.ts';

/** Header edits as the engines apply them (names are case-insensitive). */
export interface HeaderEditor {
  /** Replaces every value of `name`. */
  set(name: string, value: string): void;
  /** Appends a value (a comma-joined list on the wire). */
  add(name: string, value: string): void;
  remove(name: string): void;
}

/** Applies one Gateway API header modifier: set, then add, then remove. */
export function applyHeaderModifier(m: HeaderModifier | undefined, headers: HeaderEditor): void {
  if (m === undefined) return;
  for (const h of m.set ?? []) headers.set(h.name, h.value);
  for (const h of m.add ?? []) headers.add(h.name, h.value);
  for (const name of m.remove ?? []) headers.remove(name);
}

/** Where the request goes and how, when it is forwarded. */
export interface ForwardPlan {
  readonly kind: 'forward';
  readonly rule: CompiledRule;
  readonly backend: CompiledBackend;
  /** The new target (path and query) when a rewrite changed it; undefined: unchanged. */
  readonly target: string | undefined;
  /** The new Host / :authority when URLRewrite set a hostname. */
  readonly host: string | undefined;
  /** Rule-level, then backend-level edits; apply in order. */
  readonly requestHeaders: readonly HeaderModifier[];
  readonly responseHeaders: readonly HeaderModifier[];
  /** Injected delay before forwarding; 0 for none. */
  readonly delayMs: number;
  /** Which FaultInjection delayed the request, for the span. */
  readonly fault: string | undefined;
  readonly requestTimeoutMs: number | undefined;
  readonly backendTimeoutMs: number | undefined;
  readonly retry: CompiledRetry | undefined;
}

/** Why the route answered itself. */
export type RespondReason = 'ROUTE_NOT_FOUND' | 'NO_BACKEND' | 'FAULT_ABORT';

export interface RespondPlan {
  readonly kind: 'respond';
  readonly reason: RespondReason;
  readonly status: number;
  /** For gRPC callers, when the fault names a gRPC status. */
  readonly grpcStatus: number | undefined;
  readonly message: string;
  /** Injected delay before answering (a fault may delay and abort). */
  readonly delayMs: number;
  readonly route: string | undefined;
  readonly rule: string | undefined;
  readonly fault: string | undefined;
  readonly responseHeaders: readonly HeaderModifier[];
}

/** The rule's RequestRedirect: answer `status` with `location`, forward nothing. */
export interface RedirectPlan {
  readonly kind: 'redirect';
  /** 301, 302, 303, 307 or 308. */
  readonly status: number;
  /** The absolute URL of the `Location` header. */
  readonly location: string;
  /** Injected delay before answering. */
  readonly delayMs: number;
  readonly route: string;
  readonly rule: string;
  readonly fault: string | undefined;
  /** The rule's response header edits, applied to the redirect too. */
  readonly responseHeaders: readonly HeaderModifier[];
}

/** No route attaches: the request goes to the Service it named, untouched. */
export interface DirectPlan {
  readonly kind: 'direct';
}

export type RoutePlan = ForwardPlan | RespondPlan | RedirectPlan | DirectPlan;

/** Facts about the request the plan needs besides the request itself. */
export interface RouteContext {
  /** `http` in the mesh; the listener's scheme at a gateway. */
  readonly scheme: 'http' | 'https';
  /** Request host without port, lower case (the redirect's host when it names none). */
  readonly host: string;
  /** The port the client connected to (the listener's, or the Service port the Host names; 80 when the Host names none). */
  readonly port: number;
}

const DIRECT: DirectPlan = Object.freeze({ kind: 'direct' });

/** Returns a number in [0, 1); Math.random by default, seeded in tests. */
export type Random = () => number;

function rolled(percentage: number, random: Random): boolean {
  return percentage >= 100 || (percentage > 0 && random() * 100 < percentage);
}

/** Picks a backend by weight; undefined when every weight is 0 or there are none. */
export function chooseBackend(rule: CompiledRule, random: Random): CompiledBackend | undefined {
  if (rule.totalWeight === 0) return undefined;
  if (rule.backends.length === 1) return rule.backends[0];
  let x = random() * rule.totalWeight;
  for (const b of rule.backends) {
    if (x < b.weight) return b;
    x -= b.weight;
  }
  // Floating-point edge: the last backend with weight.
  return rule.backends.findLast((b) => b.weight > 0);
}

/** Rewrites a path by a URLRewrite / RequestRedirect path modifier. `prefix` is the PathPrefix that matched. */
export function rewritePath(path: string, modifier: PathModifier, prefix: string | undefined): string {
  if (modifier.type === 'ReplaceFullPath') return modifier.replaceFullPath;
  const rest = prefix === undefined || prefix === '/' ? path : path.slice(prefix.length);
  const base = modifier.replacePrefixMatch.endsWith('/') ? modifier.replacePrefixMatch.slice(0, -1) : modifier.replacePrefixMatch;
  const out = rest === '' ? base : rest.startsWith('/') ? base + rest : `${base}/${rest}`;
  return out === '' ? '/' : out;
}

function withQuery(path: string, query: string): string {
  return query === '' ? path : `${path}?${query}`;
}

const WELL_KNOWN_PORT: Readonly<Record<string, number>> = { http: 80, https: 443 };

/**
 * The `Location` of a RequestRedirect, by the Gateway API's rules: scheme and host default to
 * the request's; the port is the filter's, else the redirect scheme's well-known port when the
 * filter sets a scheme, else the port the request came in on; the port is left out when it is
 * the scheme's own (http 80, https 443). The path is rewritten as URLRewrite does, and the
 * query is kept (as Envoy does unless told to strip it).
 */
export function redirectLocation(r: RequestRedirect, req: RouteRequest, ctx: RouteContext, prefix: string | undefined): string {
  const scheme = r.scheme ?? ctx.scheme;
  const port = r.port ?? (r.scheme !== undefined ? (WELL_KNOWN_PORT[r.scheme] ?? ctx.port) : ctx.port);
  const host = r.hostname ?? ctx.host;
  // An IPv6 literal needs its brackets back (ctx.host has none).
  const authority = host.includes(':') ? `[${host}]` : host;
  const path = r.path === undefined ? req.path : rewritePath(req.path, r.path, prefix);
  return `${scheme}://${authority}${port === WELL_KNOWN_PORT[scheme] ? '' : `:${port}`}${withQuery(path, req.query)}`;
}

/**
 * Decides what to do with a request: `direct` (no route), `respond` (404 no match, 500 no
 * backend with weight, injected abort), `redirect` (the rule's RequestRedirect) or `forward`.
 * `random` is drawn once for each fault roll and once for the backend choice.
 */
export function planRoute(resolution: RouteResolution, req: RouteRequest, ctx: RouteContext, random: Random = Math.random): RoutePlan {
  if (resolution.kind === 'unrouted') return DIRECT;
  if (resolution.kind === 'unmatched') {
    return {
      kind: 'respond',
      reason: 'ROUTE_NOT_FOUND',
      status: 404,
      grpcStatus: 12, // UNIMPLEMENTED, what Envoy answers a gRPC call that no route takes
      message: `no rule of ${resolution.routes.join(', ') || 'the attached routes'} matches ${req.method} ${req.path}`,
      delayMs: 0,
      route: resolution.routes[0],
      rule: undefined,
      fault: undefined,
      responseHeaders: [],
    };
  }
  const { rule, prefix } = resolution;
  let delayMs = 0;
  let fault: string | undefined;
  for (const f of rule.faults) {
    if (f.delayMs > 0 && rolled(f.delayPercentage, random)) {
      delayMs += f.delayMs;
      fault = f.source;
    }
  }
  const responseHeaders: HeaderModifier[] = rule.responseHeaders === undefined ? [] : [rule.responseHeaders];
  const respond = (reason: RespondReason, status: number, grpcStatus: number | undefined, message: string, source?: string): RespondPlan => ({
    kind: 'respond',
    reason,
    status,
    grpcStatus,
    message,
    delayMs,
    route: rule.route,
    rule: rule.rule,
    fault: source ?? fault,
    responseHeaders,
  });
  for (const f of rule.faults) {
    if ((f.abortHttpStatus !== undefined || f.abortGrpcStatus !== undefined) && rolled(f.abortPercentage, random)) {
      const status = f.abortHttpStatus ?? httpStatusOfGrpc(f.abortGrpcStatus ?? 2);
      return respond('FAULT_ABORT', status, f.abortGrpcStatus ?? grpcStatusOfHttp(status), `request aborted by ${f.source} (${f.abortPercentage}% of requests) on ${rule.route}`, f.source);
    }
  }
  if (rule.redirect !== undefined) {
    return { kind: 'redirect', status: rule.redirect.statusCode, location: redirectLocation(rule.redirect, req, ctx, prefix), delayMs, route: rule.route, rule: rule.rule, fault, responseHeaders };
  }
  const backend = chooseBackend(rule, random);
  if (backend === undefined) {
    const why = rule.backends.length === 0 ? 'has no backendRefs' : 'gives every backendRef weight 0';
    return respond('NO_BACKEND', 500, 13, `${rule.route} (${rule.rule}) ${why}, so it forwards nothing`);
  }
  const path = rule.rewrite?.path;
  const requestHeaders: HeaderModifier[] = [];
  if (rule.requestHeaders !== undefined) requestHeaders.push(rule.requestHeaders);
  if (backend.requestHeaders !== undefined) requestHeaders.push(backend.requestHeaders);
  if (backend.responseHeaders !== undefined) responseHeaders.push(backend.responseHeaders);
  return {
    kind: 'forward',
    rule,
    backend,
    target: path === undefined ? undefined : withQuery(rewritePath(req.path, path, prefix), req.query),
    host: rule.rewrite?.hostname,
    requestHeaders,
    responseHeaders,
    delayMs,
    fault,
    requestTimeoutMs: rule.requestTimeoutMs,
    backendTimeoutMs: rule.backendTimeoutMs,
    retry: rule.retry,
  };
}

/** gRPC's HTTP → status mapping (doc/http-grpc-status-mapping.md). */
export function grpcStatusOfHttp(status: number): number {
  switch (status) {
    case 400:
      return 13;
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return 12;
    case 429:
    case 502:
    case 503:
    case 504:
      return 14;
    default:
      return 2;
  }
}

/** The HTTP status a plain client sees for a gRPC status (Envoy's grpc → http mapping). */
export function httpStatusOfGrpc(code: number): number {
  const map: Readonly<Record<number, number>> = { 0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401 };
  return map[code] ?? 500;
}
