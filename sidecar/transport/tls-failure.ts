// Why a connection to a peer sidecar failed before it could carry a request, in words that
// name the hop and the cause: refused TCP, a TLS alert, a certificate the peer did not accept,
// the wrong SPIFFE ID, or a peer without mTLS.

import { MESH_ERROR } from '../../common/semconv.ts';
import { ProxyError, upstreamError } from '../errors.ts';
import { isVerifyErrorCode, PeerIdentityError, verifyRejection, type HandshakeFailureKind } from '../identity/peer.ts';

export interface ConnectFailure {
  readonly error: ProxyError;
  /** Set for TLS failures (after TCP connected), for the handshake-failure metric. */
  readonly kind: HandshakeFailureKind | undefined;
}

/**
 * Classifies `cause`, seen on a connection to `describe` (e.g. `10.0.0.1:15006 (pod b-1)`)
 * before its TLS handshake finished. `tcpConnected` tells a refused connection from a failed
 * handshake.
 */
export function classifyConnectFailure(cause: unknown, tcpConnected: boolean, describe: string): ConnectFailure {
  if (!tcpConnected) return { error: upstreamError(cause, `sidecar ${describe}`), kind: undefined };
  let kind: HandshakeFailureKind;
  let reason: string;
  const code = (cause as { code?: unknown } | null)?.code;
  if (cause instanceof PeerIdentityError) {
    kind = cause.kind;
    reason = cause.message;
  } else if (typeof code === 'string' && isVerifyErrorCode(code)) {
    const r = verifyRejection(code);
    kind = r.kind;
    reason = `server certificate rejected: ${r.reason}`;
  } else {
    kind = 'handshake_error';
    // OpenSSL errors carry a short `reason` ("wrong version number") next to a long message.
    const short = (cause as { reason?: unknown } | null)?.reason;
    reason = typeof short === 'string' && short !== '' ? `${short} (${String(code)})` : cause instanceof Error ? cause.message : String(cause);
    const said = `${String(code)} ${cause instanceof Error ? cause.message : ''}`;
    if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST|wrong version number|packet length too long/.test(said)) {
      reason += ' (the peer does not speak TLS: a sidecar with mTLS off, or not a sidecar)';
    } else if (code === 'ECONNRESET') {
      reason += ' (the peer closed the connection during the handshake: is mTLS DISABLEd on it?)';
    }
  }
  return { error: new ProxyError(MESH_ERROR.tlsHandshake, `TLS handshake with ${describe} failed: ${reason}`, { cause }), kind };
}
