// The outbound route layer with HTTPRoute / GRPCRoute (common/routes/): finds the rule for the
// request, and either answers it (404 no rule matches, 500 no backend with weight, an injected
// abort, a RequestRedirect) or sets the hop up for the rest of the chain: the backend Service chosen by weight
// (`hop.service`, the cluster the balance layer picks in), the rewritten target, header edits
// and a new Host for the codecs, the route's timeouts and retry policy. A Service without
// routes keeps today's behaviour (the Service the Host names). The fault-delay layer, placed
// after the balance layer, holds a request for its injected delay.

import { ATTR, MESH_ERROR } from '../../common/semconv.ts';
import { planRoute, type Random, type RedirectPlan, type RespondPlan } from '../../common/routes/plan.ts';
import { serviceRefOfHost, type RouteRequest, type RouteTable } from '../../common/routes/table.ts';
import { ProxyError } from '../errors.ts';
import { PENDING, type Layer } from '../chain/chain.ts';
import type { HopState } from '../chain/hop.ts';
import { LocalReply } from '../chain/reply.ts';
import { editLines, type HeaderLines } from './headers.ts';
import { hostRoute } from '../chain/layers/route.ts';
import type { RouteFacts } from './facts.ts';

export interface RouteLayerOptions {
  /** The current route table (swapped whole on every valid edit of the route files). */
  readonly table: () => RouteTable;
  /** This workload's namespace: the consumer namespace of its outbound requests. */
  readonly namespace: string;
  /** For weights and fault percentages; Math.random by default. */
  readonly random?: Random;
}

/** The request as the route matcher reads it; built only when routes attach to the Service. */
class HopRequest implements RouteRequest {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly grpc: boolean;
  private readonly hop: HopState;
  constructor(hop: HopState) {
    this.hop = hop;
    this.method = hop.method;
    const q = hop.target.indexOf('?');
    this.path = q === -1 ? hop.target : hop.target.slice(0, q);
    this.query = q === -1 ? '' : hop.target.slice(q + 1);
    this.grpc = hop.protocol === 'grpc';
  }
  header(name: string): string | undefined {
    return this.hop.header(name);
  }
}

function errorOf(plan: RespondPlan): ProxyError {
  const details = { route: plan.route ?? null, rule: plan.rule ?? null };
  switch (plan.reason) {
    case 'ROUTE_NOT_FOUND':
      return new ProxyError(MESH_ERROR.routeNotFound, plan.message, { details });
    case 'NO_BACKEND':
      return new ProxyError(MESH_ERROR.noBackend, plan.message, { details });
    case 'FAULT_ABORT': {
      const opts = plan.grpcStatus === undefined ? { status: plan.status, details: { ...details, fault: plan.fault ?? null } } : { status: plan.status, grpcStatus: plan.grpcStatus, details: { ...details, fault: plan.fault ?? null } };
      return new ProxyError(MESH_ERROR.faultInjected, plan.message, opts);
    }
  }
}

/** The OpenTelemetry attribute of a response header (`http.response.header.<name>`, a string array). */
const ATTR_LOCATION = 'http.response.header.location';

/** The redirect response: `location`, then the rule's response header edits. */
function replyOf(plan: RedirectPlan): LocalReply {
  const lines: HeaderLines = [['location', plan.location]];
  editLines(lines, plan.responseHeaders);
  return new LocalReply(plan.status, lines);
}

/** The longest a Node.js timer can wait (about 24.8 days): "no limit". */
const NO_LIMIT_MS = 2 ** 31 - 1;

function timeoutFired(hop: HopState): void {
  const facts = hop.route;
  if (facts === undefined || hop.ended) return;
  facts.timer = undefined;
  hop.reject(new ProxyError(MESH_ERROR.timeout, `no complete answer within ${facts.requestTimeoutMs} ms, the timeouts.request of ${facts.route} (${facts.rule})`, { details: { route: facts.route, rule: facts.rule } }));
}

export function routeLayer(o: RouteLayerOptions): Layer {
  const random = o.random ?? Math.random;
  return {
    name: 'route',
    onRequest(hop) {
      const table = o.table();
      // HTTPRoutes and GRPCRoutes do not apply to raw TCP (a TCPRoute would).
      if (table.size === 0 || hop.protocol === 'tcp') return hostRoute(hop);
      const svc = serviceRefOfHost(hop.authority, o.namespace);
      if (!table.hasRoutes(svc, o.namespace)) return hostRoute(hop);
      const req = new HopRequest(hop);
      const plan = planRoute(table.resolve(svc, o.namespace, req, svc.port), req, { scheme: 'http', host: hop.host, port: svc.port ?? 80 }, random);
      if (plan.kind === 'direct') return hostRoute(hop);
      // The Service the caller asked for, before a backend replaces it.
      hop.service = svc.name;
      if (plan.kind === 'redirect') {
        hop.span.setAttribute(ATTR.meshRoute, plan.route);
        hop.span.setAttribute(ATTR.meshRouteRule, plan.rule);
        hop.span.setAttribute(ATTR_LOCATION, [plan.location]);
        if (plan.fault !== undefined) hop.span.setAttribute(ATTR.meshFault, plan.fault);
        const reply = replyOf(plan);
        if (plan.delayMs <= 0) return reply;
        hop.retryTimer = setTimeout(() => {
          hop.retryTimer = undefined;
          if (!hop.ended) hop.respond(reply);
        }, plan.delayMs);
        return PENDING;
      }
      if (plan.kind === 'respond') {
        if (plan.route !== undefined) hop.span.setAttribute(ATTR.meshRoute, plan.route);
        if (plan.rule !== undefined) hop.span.setAttribute(ATTR.meshRouteRule, plan.rule);
        if (plan.fault !== undefined) hop.span.setAttribute(ATTR.meshFault, plan.fault);
        const err = errorOf(plan);
        if (plan.delayMs <= 0) return err;
        // Delayed, then aborted (Istio's order).
        hop.retryTimer = setTimeout(() => {
          hop.retryTimer = undefined;
          if (!hop.ended) hop.reject(err);
        }, plan.delayMs);
        return PENDING;
      }
      const facts: RouteFacts = {
        route: plan.rule.route,
        rule: plan.rule.rule,
        requestHeaders: plan.requestHeaders,
        responseHeaders: plan.responseHeaders,
        authority: plan.host,
        requestTimeoutMs: plan.requestTimeoutMs,
        backendTimeoutMs: plan.backendTimeoutMs,
        retry: plan.retry,
        delayMs: plan.delayMs,
        timer: undefined,
      };
      hop.route = facts;
      hop.service = plan.backend.service;
      if (plan.target !== undefined) hop.target = plan.target;
      hop.span.setAttribute(ATTR.meshRoute, facts.route);
      hop.span.setAttribute(ATTR.meshRouteRule, facts.rule);
      if (plan.fault !== undefined) hop.span.setAttribute(ATTR.meshFault, plan.fault);
      // timeouts (GEP-1742, with Envoy's meaning): `request` bounds the whole request, retries
      // included, in place of --outbound-timeout (0: no limit); `backendRequest` replaces
      // --per-try-timeout (0: none), so each try gets that long to its response head.
      const requestMs = facts.requestTimeoutMs;
      if (requestMs !== undefined) {
        if (requestMs > 0) facts.timer = setTimeout(timeoutFired, requestMs, hop);
        // A longer (or no) limit lifts the codec's --outbound-timeout clock; a shorter one is the
        // route timer's alone (so the caller's sidecar names the route when it fires).
        if (requestMs === 0) hop.timeoutMs = NO_LIMIT_MS;
        else if (requestMs > hop.timeoutMs) hop.timeoutMs = requestMs;
      }
      if (facts.backendTimeoutMs !== undefined) hop.perTryTimeoutMs = facts.backendTimeoutMs;
      return undefined;
    },
    onEnd(hop) {
      const t = hop.route?.timer;
      if (t !== undefined) clearTimeout(t);
    },
  };
}

/** Holds a request for its route's injected delay, after the balance layer chose the endpoint. */
export function faultDelayLayer(): Layer {
  return {
    name: 'fault-delay',
    onRequest(hop) {
      const delay = hop.route?.delayMs ?? 0;
      if (delay <= 0) return undefined;
      hop.retryTimer = setTimeout(() => {
        hop.retryTimer = undefined;
        if (hop.ended) return;
        // The delay is the mesh's, not the endpoint's: its latency clock starts now.
        hop.tryStartMs = performance.now();
        hop.resend();
      }, delay);
      return PENDING;
    },
  };
}
