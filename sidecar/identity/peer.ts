// Checks of a peer's certificate after TLS verified (or failed to verify) its chain against
// the trust bundle: a SPIFFE ID in our trust domain, and the expected one when the endpoint
// names it. Failures carry a short `kind` (a metric label) and a sentence for people.

import { X509Certificate } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { formatSpiffeId, tryParseSpiffeId, uriSans } from '../../common/spiffe.ts';

/** Why a handshake failed, as the `reason` label of `tracemesh_tls_handshake_failures_total`. */
export type HandshakeFailureKind =
  /** The client sent no certificate. */
  | 'no_certificate'
  | 'expired'
  | 'not_yet_valid'
  /** The chain does not end at a root of the bundle: another CA, or a retired root. */
  | 'untrusted'
  /** No SPIFFE ID, a malformed one, or one from another trust domain. */
  | 'bad_identity'
  /** A valid mesh identity, but not the one the endpoint declares. */
  | 'wrong_identity'
  /** The peer sidecar refused this sidecar's certificate (told us in its GOAWAY). */
  | 'rejected_by_peer'
  /** mTLS is DISABLEd on this workload but the peer started TLS. */
  | 'tls_disabled'
  /** The TLS protocol itself failed (version, ALPN, alert, reset mid-handshake). */
  | 'handshake_error';

export interface PeerRejection {
  readonly kind: HandshakeFailureKind;
  readonly reason: string;
}

/** OpenSSL verify codes (as Node reports them) in words, and their kind. */
const VERIFY_ERRORS: Readonly<Record<string, PeerRejection>> = {
  CERT_HAS_EXPIRED: { kind: 'expired', reason: 'certificate has expired' },
  CERT_NOT_YET_VALID: { kind: 'not_yet_valid', reason: 'certificate is not yet valid' },
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: { kind: 'untrusted', reason: 'unable to verify the certificate: it is not issued by a root in the trust bundle' },
  UNABLE_TO_GET_ISSUER_CERT: { kind: 'untrusted', reason: 'unable to verify the certificate: its issuer is not in the trust bundle' },
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: { kind: 'untrusted', reason: 'unable to verify the certificate: its issuer is not in the trust bundle' },
  SELF_SIGNED_CERT_IN_CHAIN: { kind: 'untrusted', reason: 'unable to verify the certificate: its chain ends at a root that is not trusted' },
  DEPTH_ZERO_SELF_SIGNED_CERT: { kind: 'untrusted', reason: 'unable to verify the certificate: it is self-signed' },
  CERT_SIGNATURE_FAILURE: { kind: 'untrusted', reason: 'unable to verify the certificate: its signature is invalid' },
  CERT_UNTRUSTED: { kind: 'untrusted', reason: 'unable to verify the certificate: untrusted' },
  INVALID_CA: { kind: 'untrusted', reason: 'unable to verify the certificate: an issuer in the chain is not a CA' },
  INVALID_PURPOSE: { kind: 'untrusted', reason: 'the certificate may not be used for this purpose (extended key usage)' },
  CERT_REVOKED: { kind: 'untrusted', reason: 'certificate is revoked' },
};

/** True for the codes Node gives certificate verification failures (`CERT_HAS_EXPIRED`, …). */
export function isVerifyErrorCode(code: string): boolean {
  return code in VERIFY_ERRORS || /^(CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|INVALID_|PATH_LENGTH|KEYUSAGE|ERR_TLS_CERT)/.test(code);
}

/** A TLS verify error code in words (`certificate has expired (CERT_HAS_EXPIRED)`). */
export function verifyRejection(code: string): PeerRejection {
  const known = VERIFY_ERRORS[code];
  if (known !== undefined) return { kind: known.kind, reason: `${known.reason} (${code})` };
  return { kind: 'untrusted', reason: `certificate rejected (${code})` };
}

/**
 * The SPIFFE ID a certificate proves, or a rejection: it must have exactly one URI SAN that
 * is a workload SPIFFE ID in `trustDomain`.
 */
export function peerSpiffeId(cert: X509Certificate, trustDomain: string, uris: readonly string[] = uriSans(cert)): { spiffeId: string } | PeerRejection {
  if (uris.length !== 1) {
    return { kind: 'bad_identity', reason: `the certificate must carry exactly one URI SAN (a SPIFFE ID); it has ${uris.length}` };
  }
  const id = tryParseSpiffeId(uris[0] as string);
  if (id === undefined) return { kind: 'bad_identity', reason: `"${(uris[0] as string).slice(0, 200)}" is not a workload SPIFFE ID` };
  const spiffeId = formatSpiffeId(id);
  if (id.trustDomain !== trustDomain) {
    return { kind: 'bad_identity', reason: `peer identity ${spiffeId} is not in trust domain ${trustDomain}` };
  }
  return { spiffeId };
}

/** What the inbound side knows about a TLS client once the handshake is done. */
export type ClientPeer = { readonly ok: true; readonly spiffeId: string } | ({ readonly ok: false; readonly spiffeId: string | undefined } & PeerRejection);

/**
 * Judges a client of the inbound listener (a server with `requestCert` and
 * `rejectUnauthorized: false`, so that this code sees every failure): a certificate must be
 * present, its chain verified against the bundle, and it must prove a SPIFFE ID in `trustDomain`.
 * Runs once per connection.
 */
export function judgeClient(socket: TLSSocket, trustDomain: string): ClientPeer {
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) {
    return { ok: false, spiffeId: undefined, kind: 'no_certificate', reason: 'no client certificate: mesh peers must present their workload certificate (mTLS)' };
  }
  const uris = uriSans(cert);
  const id = peerSpiffeId(cert, trustDomain, uris);
  // What the certificate claims, recorded on the failure span even when it proves nothing.
  const spiffeId = 'kind' in id ? (uris.length === 1 && uris[0]?.startsWith('spiffe://') === true ? uris[0].slice(0, 300) : undefined) : id.spiffeId;
  if (!socket.authorized) {
    const code = socket.authorizationError;
    const r = verifyRejection(typeof code === 'string' ? code : String((code as unknown as Error | null)?.message ?? 'UNKNOWN'));
    return { ok: false, spiffeId, kind: r.kind, reason: `client certificate rejected: ${r.reason}` };
  }
  if ('kind' in id) return { ok: false, spiffeId, kind: id.kind, reason: `client certificate rejected: ${id.reason}` };
  return { ok: true, spiffeId: id.spiffeId };
}

/** Error thrown from `checkServerIdentity`; TLS then aborts the connection with it. */
export class PeerIdentityError extends Error {
  readonly code = 'ERR_TLS_PEER_IDENTITY';
  readonly kind: HandshakeFailureKind;
  /** The identity the server proved, when it had a parsable one. */
  readonly spiffeId: string | undefined;

  constructor(kind: HandshakeFailureKind, message: string, spiffeId: string | undefined) {
    super(message);
    this.name = 'PeerIdentityError';
    this.kind = kind;
    this.spiffeId = spiffeId;
  }
}

/**
 * The outbound side's `checkServerIdentity`: the server's chain was verified already; its
 * SPIFFE ID must be in the trust domain and equal `expected` when the endpoint declares one.
 * Returns the proven ID, or throws PeerIdentityError.
 */
export function checkServerPeer(cert: PeerCertificate, trustDomain: string, expected: string | undefined): string {
  const x = new X509Certificate(cert.raw);
  const id = peerSpiffeId(x, trustDomain);
  if ('kind' in id) throw new PeerIdentityError(id.kind, id.reason, undefined);
  if (expected !== undefined && id.spiffeId !== expected) {
    throw new PeerIdentityError('wrong_identity', `wrong identity: peer identity ${id.spiffeId}, expected ${expected}`, id.spiffeId);
  }
  return id.spiffeId;
}
