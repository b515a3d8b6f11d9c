// The inbound security layer, for every codec, in this order:
//   1. a connection whose client certificate was refused → 403 TLS_HANDSHAKE_FAILED;
//   2. plaintext while the workload's mode is STRICT → 403 PLAINTEXT_REFUSED;
//   3. AuthorizationPolicy (when policies are configured) → 403 POLICY_DENIED naming the policy.
// The peer identity, TLS mode and policy decision land on the hop for the span and access log.
// The app then gets the path that was authorized, normalized the same way, so that policy and
// app never disagree about which path was asked for.

import { MESH_ERROR } from '../../../common/semconv.ts';
import { ProxyError } from '../../errors.ts';
import type { InboundPolicy } from '../../inbound/authorization.ts';
import { normalizePath } from '../../policy/authorize.ts';
import type { Layer } from '../chain.ts';

export const PLAINTEXT_REFUSED_MESSAGE =
  'mTLS required (STRICT): this workload accepts only mutual TLS from mesh sidecars; send the request through a tracemesh sidecar, or set its PeerAuthentication mode to PERMISSIVE';

const PLAINTEXT_REFUSED = new ProxyError(MESH_ERROR.plaintextRefused, PLAINTEXT_REFUSED_MESSAGE);

/**
 * `mtls`: the sidecar has mTLS on (a connection without security facts is then plaintext).
 * `appPort` is the port policies' `to.operation.ports` match (a raw-TCP tunnel's own port when it has one).
 */
export function authorizeLayer(policy: InboundPolicy, mtls: boolean, appPort: number): Layer {
  return {
    name: 'authorize',
    onRequest(hop) {
      const sec = hop.security;
      let principal: string | undefined;
      if (sec === undefined || sec.tlsMode === 'plaintext') {
        hop.tlsMode = mtls ? 'plaintext' : 'none';
        if (mtls && policy.mode === 'STRICT') {
          hop.refuseConnection();
          return PLAINTEXT_REFUSED;
        }
      } else {
        hop.tlsMode = 'mtls';
        hop.peerIdentity = sec.peerIdentity;
        if (sec.rejection !== undefined) {
          hop.refuseConnection();
          return sec.rejection;
        }
        principal = sec.peerIdentity;
      }
      const authorizer = policy.authorizer;
      if (authorizer === undefined) return undefined;
      const sourceIp = hop.remoteAddress ?? '';
      const decision = authorizer.decide({
        sourcePrincipal: principal,
        sourceIp,
        method: hop.method,
        path: hop.target,
        host: hop.authority,
        port: hop.appPort ?? appPort,
        headers: hop.headers(),
      });
      hop.policyDecision = decision.allowed ? 'allow' : 'deny';
      hop.policyName = decision.policy;
      if (!decision.allowed) {
        const who = principal ?? (hop.tlsMode === 'mtls' ? 'an unidentified peer' : `plaintext peer ${sourceIp || 'unknown'}`);
        return new ProxyError(MESH_ERROR.policyDenied, `request from ${who} denied: ${decision.reason}`, {
          details: { policy: decision.policy ?? null, principal: principal ?? null },
        });
      }
      hop.target = normalizedTarget(hop.target);
      return undefined;
    },
  };
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
