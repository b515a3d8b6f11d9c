// Stable error codes of the mesh certificate authority. Thrown inside the CA, its
// authenticators and its client; turned into a gRPC status only in server/status.ts.

import { TracemeshError } from '../errors.ts';

export const CA_ERROR = {
  /** The CA cannot sign now: it was closed, or its signing certificate is not currently valid. */
  notReady: 'CA_NOT_READY',
  /** The CSR cannot be parsed, its signature does not verify, or its key is not EC P-256. */
  csrInvalid: 'CSR_INVALID',
  /** The requested lifetime is negative or above the CA's maximum. */
  validityInvalid: 'VALIDITY_INVALID',
  /** No credential, or a credential that no authenticator accepts. */
  authFailed: 'AUTH_FAILED',
  /** A credential could not be checked because a dependency (the Kubernetes API) failed. */
  authUnavailable: 'AUTH_UNAVAILABLE',
  /** The CSR asks for an identity other than the one the credential proves. */
  identityMismatch: 'IDENTITY_MISMATCH',
  /** Operator-supplied CA material or options are unusable; the message names the input. */
  configInvalid: 'CA_CONFIG_INVALID',
  /** retireRoot() was given a fingerprint that is not in the trust bundle. */
  rootNotFound: 'ROOT_NOT_FOUND',
  /** retireRoot() was asked to retire the root that currently signs. */
  rootInUse: 'ROOT_IN_USE',
  /** A string is not a `spiffe://<trust-domain>/ns/<ns>/sa/<sa>` identity. */
  spiffeIdInvalid: 'SPIFFE_ID_INVALID',
  /** Client side: the CA could not be reached, or the call failed without a tracemesh code. */
  unavailable: 'CA_UNAVAILABLE',
  /** Client side: the CA answered with a chain that does not fit the request. */
  responseInvalid: 'CA_RESPONSE_INVALID',
  /** Server side: an unexpected failure; details are only in the control plane's log. */
  internal: 'CA_INTERNAL',
  /** Server side: the identity asked for certificates faster than its signing rate allows. */
  rateLimited: 'CA_RATE_LIMITED',
} as const;

export type CaErrorCode = (typeof CA_ERROR)[keyof typeof CA_ERROR];

export class CaError extends TracemeshError {
  declare readonly code: CaErrorCode;

  constructor(code: CaErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'CaError';
  }
}

/** True when `err` is a CaError, optionally with the given code. */
export function isCaError(err: unknown, code?: CaErrorCode): err is CaError {
  return err instanceof CaError && (code === undefined || err.code === code);
}
