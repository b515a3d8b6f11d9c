// The routes of the HTTP/1.1 engine: outbound picks one endpoint of the service named by the
// Host; inbound applies security (the same order and messages as sidecar/inbound/inbound.ts)
// and sends everything else to the local app.

import { MESH_ERROR } from '../../common/semconv.ts';
import type { Balancer } from '../balancer/balancer.ts';
import type { PickResult } from '../balancer/picker.ts';
import { ProxyError } from '../errors.ts';
import { normalizedTarget, PLAINTEXT_REFUSED_MESSAGE } from '../inbound/inbound.ts';
import type { InboundPolicy } from '../inbound/authorization.ts';
import type { H1Route } from './engine.ts';

const NO_HOST: PickResult = {
  kind: 'fail',
  error: new ProxyError(MESH_ERROR.noEndpoint, 'the request names no service: send it with a Host header such as "Host: b"'),
};

export function outboundRoute(balancer: Balancer): H1Route {
  return (service) => (service === '' ? NO_HOST : balancer.picker.pick(service));
}

/**
 * Inbound: 1. a connection whose client certificate was refused → 403 TLS_HANDSHAKE_FAILED;
 * 2. plaintext in STRICT → 403 PLAINTEXT_REFUSED; 3. AuthorizationPolicy → 403 POLICY_DENIED.
 * `mtls`: the sidecar has mTLS on (a connection without security facts is then plaintext).
 */
export function inboundRoute(appPort: number, mtls: boolean, policy: InboundPolicy, appHost = '127.0.0.1'): H1Route {
  const local: PickResult = {
    kind: 'complete',
    endpoint: { address: `${appHost}:${appPort}`, host: appHost, port: appPort, pod: undefined, node: undefined, namespace: undefined, identity: undefined },
  };
  const plaintextRefused: PickResult = { kind: 'fail', error: new ProxyError(MESH_ERROR.plaintextRefused, PLAINTEXT_REFUSED_MESSAGE) };
  return (_service, ex) => {
    const sec = ex.security;
    let principal: string | undefined;
    if (sec === undefined || sec.tlsMode === 'plaintext') {
      ex.tlsMode = mtls ? 'plaintext' : 'none';
      if (mtls && policy.mode === 'STRICT') {
        ex.closeAfter();
        return plaintextRefused;
      }
    } else {
      ex.tlsMode = 'mtls';
      ex.peerIdentity = sec.peerIdentity;
      if (sec.rejection !== undefined) {
        ex.closeAfter();
        return { kind: 'fail', error: sec.rejection };
      }
      principal = sec.peerIdentity;
    }
    const authorizer = policy.authorizer;
    if (authorizer === undefined) return local;
    const sourceIp = ex.remoteAddress ?? '';
    const decision = authorizer.decide({
      sourcePrincipal: principal,
      sourceIp,
      method: ex.method,
      path: ex.target,
      host: ex.head.host,
      port: appPort,
      headers: ex.headers(),
    });
    ex.policyDecision = decision.allowed ? 'allow' : 'deny';
    ex.policyName = decision.policy;
    if (!decision.allowed) {
      const who = principal ?? (ex.tlsMode === 'mtls' ? 'an unidentified peer' : `plaintext peer ${sourceIp || 'unknown'}`);
      return {
        kind: 'fail',
        error: new ProxyError(MESH_ERROR.policyDenied, `request from ${who} denied: ${decision.reason}`, {
          details: { policy: decision.policy ?? null, principal: principal ?? null },
        }),
      };
    }
    // The app gets the path that was authorized, normalized the same way.
    ex.target = normalizedTarget(ex.target);
    return local;
  };
}
