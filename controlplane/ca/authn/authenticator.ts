// The authenticator extension point: turn a caller's credential into the workload identity the
// CA may grant. Implementations are independent of gRPC; the server hands them plain metadata.

import type { X509Certificate } from 'node:crypto';
import { CA_ERROR, CaError } from '../../../common/ca/errors.ts';
import type { SpiffeId } from '../../../common/spiffe.ts';

/** Call metadata with lower-case keys; text values only (binary `-bin` entries are left out). */
export type CallMetadata = Readonly<Record<string, readonly string[]>>;

/** What the transport proved about the caller, beyond its metadata. */
export interface PeerInfo {
  /** The TLS client certificate, present only when it verified against the trust bundle. */
  readonly certificate?: X509Certificate;
  /** `ip:port`, for logs. */
  readonly address?: string;
}

export interface AuthenticatedCaller {
  readonly spiffeId: SpiffeId;
  /** Which authenticator accepted the caller, for logs: `bootstrap-token`, `kubernetes`, ... */
  readonly authenticator: string;
}

export interface Authenticator {
  /** Short name used in logs and error messages. */
  readonly name: string;
  /**
   * Resolves with the identity the credential proves. Rejects with CaError `AUTH_FAILED` when
   * the credential is missing or not accepted, and `AUTH_UNAVAILABLE` when it cannot be checked
   * right now (a dependency is down). Never logs or echoes the credential itself.
   */
  authenticate(metadata: CallMetadata, peer?: PeerInfo): Promise<AuthenticatedCaller>;
}

/**
 * The bearer token of an `authorization: Bearer <token>` entry, or undefined when there is
 * none. The scheme is matched case-insensitively, as RFC 7235 asks.
 */
export function bearerToken(metadata: CallMetadata): string | undefined {
  for (const value of metadata['authorization'] ?? []) {
    const m = /^bearer\s+(\S+)\s*$/i.exec(value);
    if (m) return m[1];
  }
  return undefined;
}

/** The usual error for a call without a usable credential. */
export function missingCredential(authenticator: string): CaError {
  return new CaError(
    CA_ERROR.authFailed,
    `${authenticator}: no credential; send "authorization: Bearer <token>" call metadata`,
  );
}

/**
 * Tries each authenticator in order and takes the first identity. When all fail, rejects with
 * `AUTH_UNAVAILABLE` if any of them could not check the credential (so that clients retry), else
 * `AUTH_FAILED`; the message lists each authenticator's reason.
 */
export function firstOf(authenticators: readonly Authenticator[]): Authenticator {
  if (authenticators.length === 1) return authenticators[0]!;
  return {
    name: authenticators.map((a) => a.name).join('|'),
    async authenticate(metadata, peer) {
      const reasons: string[] = [];
      let unavailable = false;
      for (const a of authenticators) {
        try {
          return await a.authenticate(metadata, peer);
        } catch (err) {
          if (err instanceof CaError && err.code === CA_ERROR.authUnavailable) unavailable = true;
          reasons.push(err instanceof CaError ? err.message : `${a.name}: ${String(err)}`);
        }
      }
      throw new CaError(
        unavailable ? CA_ERROR.authUnavailable : CA_ERROR.authFailed,
        reasons.length > 0 ? reasons.join('; ') : 'no authenticator is configured',
      );
    },
  };
}
