// Inbound listener (mesh → local app): every request goes to the app on 127.0.0.1:<app-port>;
// the hop is recorded as a SERVER span whose context the app receives as its parent. Before a
// request is forwarded, the route applies security in this order:
//   1. a connection whose client certificate was refused → 403 TLS_HANDSHAKE_FAILED;
//   2. plaintext while the workload's mode is STRICT → 403 PLAINTEXT_REFUSED;
//   3. AuthorizationPolicy (when policies are configured) → 403 POLICY_DENIED naming the policy.
// The peer identity, TLS mode and policy decision land on the span and the access log.

import type { ServerResponse } from 'node:http';
import { MESH_ERROR } from '../../common/semconv.ts';
import type { PickResult } from '../balancer/picker.ts';
import { ProxyError } from '../errors.ts';
import { normalizePath } from '../policy/authorize.ts';
import type { Exchange, ProxyContext } from '../proxy/exchange.ts';
import { createProxyHandler, type ProxyHandler, type Route } from '../proxy/handler.ts';
import { ProxyListener, type Http1Handoff } from '../proxy/listener.ts';
import { inboundConnectionOf, refuseOnConnection } from '../transport/inbound-listener.ts';
import type { InboundPolicy } from './authorization.ts';

export const PLAINTEXT_REFUSED_MESSAGE =
  'mTLS required (STRICT): this workload accepts only mutual TLS from mesh sidecars; send the request through a tracemesh sidecar, or set its PeerAuthentication mode to PERMISSIVE';

export interface InboundSecurity {
  /** The sidecar has a workload identity (mTLS on); plaintext is then judged by the mode. */
  readonly mtls: boolean;
  readonly policy: InboundPolicy;
}

/** The inbound request handler; `ctx.direction` must be `inbound`. */
export function createInboundHandler(ctx: ProxyContext, appPort: number, security: InboundSecurity, appHost = '127.0.0.1'): ProxyHandler {
  const local: PickResult = {
    kind: 'complete',
    endpoint: { address: `${appHost}:${appPort}`, host: appHost, port: appPort, pod: undefined, node: undefined, namespace: undefined, identity: undefined },
  };
  const plaintextRefused: PickResult = { kind: 'fail', error: new ProxyError(MESH_ERROR.plaintextRefused, PLAINTEXT_REFUSED_MESSAGE) };
  const policy = security.policy;

  const route: Route = (_service, ex) => {
    const req = ex.req;
    const conn = inboundConnectionOf(req);
    let principal: string | undefined;
    let sourceIp: string | undefined;
    if (conn === undefined) {
      ex.tlsMode = security.mtls ? 'plaintext' : 'none';
      sourceIp = req.socket.remoteAddress;
    } else {
      ex.tlsMode = conn.tlsMode;
      ex.peerIdentity = conn.peerIdentity;
      sourceIp = conn.remoteAddress;
      if (conn.rejection !== undefined) {
        refuseOnConnection(req, ex.res, conn);
        return { kind: 'fail', error: conn.rejection };
      }
      if (conn.tlsMode === 'plaintext') {
        if (policy.mode === 'STRICT') {
          (ex.res as ServerResponse).shouldKeepAlive = false;
          return plaintextRefused;
        }
      } else {
        principal = conn.peerIdentity;
      }
    }
    const authorizer = policy.authorizer;
    if (authorizer === undefined) return local;
    const headers = req.headers;
    const host = ex.downstreamH2 ? headers[':authority'] : headers.host;
    const decision = authorizer.decide({
      sourcePrincipal: principal,
      sourceIp: sourceIp ?? '',
      method: ex.method,
      path: ex.target,
      host: typeof host === 'string' ? host : '',
      port: appPort,
      headers,
    });
    ex.policyDecision = decision.allowed ? 'allow' : 'deny';
    ex.policyName = decision.policy;
    if (!decision.allowed) {
      const who = principal ?? (ex.tlsMode === 'mtls' ? 'an unidentified peer' : `plaintext peer ${sourceIp ?? 'unknown'}`);
      return {
        kind: 'fail',
        error: new ProxyError(MESH_ERROR.policyDenied, `request from ${who} denied: ${decision.reason}`, {
          details: { policy: decision.policy ?? null, principal: principal ?? null },
        }),
      };
    }
    forwardNormalizedPath(ex);
    return local;
  };
  return createProxyHandler(ctx, route);
}

/**
 * The app gets the path that was authorized (normalized the same way), so that policy and app
 * never disagree about which path was asked for. Allocation-free when nothing changes.
 */
function forwardNormalizedPath(ex: Exchange): void {
  ex.target = normalizedTarget(ex.target);
}

/**
 * `target` with its path normalized as authorization saw it (the query is kept). Returns the
 * same string, allocation-free, when nothing changes or the path cannot be normalized (decide()
 * has denied such a path already).
 */
export function normalizedTarget(target: string): string {
  const normalized = normalizePath(target);
  if (normalized === undefined) return target;
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  if (normalized === path) return target;
  return q === -1 ? normalized : normalized + target.slice(q);
}

export interface InboundListenerOptions {
  /** Takes the HTTP/1.1 connections; default: a node:http server running the inbound handler. */
  readonly http1?: Http1Handoff | undefined;
  readonly appHost?: string;
}

/**
 * The plaintext-only inbound listener (mTLS off): h2c (from peers carrying HTTP/2 and gRPC) and
 * HTTP/1.1 on one port; `ctx.direction` must be `inbound`. Not yet listening.
 */
export function createInboundListener(ctx: ProxyContext, appPort: number, security: InboundSecurity, options: InboundListenerOptions = {}): ProxyListener {
  return new ProxyListener({ handler: createInboundHandler(ctx, appPort, security, options.appHost), http1: options.http1 });
}
