// The one place where CA errors become gRPC statuses. The stable code goes both into the
// status message (`CODE: message`) and into trailing metadata, for clients that branch on it.

import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../../common/logger.ts';
import { CA_ERROR, CaError, type CaErrorCode } from '../../../common/ca/errors.ts';
import { ERROR_CODE_METADATA_KEY } from '../../../common/ca/constants.ts';

export { ERROR_CODE_METADATA_KEY };

const STATUS_BY_CODE: Readonly<Record<CaErrorCode, grpc.status>> = {
  [CA_ERROR.authFailed]: grpc.status.UNAUTHENTICATED,
  [CA_ERROR.authUnavailable]: grpc.status.UNAVAILABLE,
  [CA_ERROR.csrInvalid]: grpc.status.INVALID_ARGUMENT,
  [CA_ERROR.validityInvalid]: grpc.status.INVALID_ARGUMENT,
  [CA_ERROR.spiffeIdInvalid]: grpc.status.INVALID_ARGUMENT,
  // Authenticated, but asking for what the credential does not allow.
  [CA_ERROR.identityMismatch]: grpc.status.PERMISSION_DENIED,
  [CA_ERROR.notReady]: grpc.status.UNAVAILABLE,
  [CA_ERROR.unavailable]: grpc.status.UNAVAILABLE,
  [CA_ERROR.configInvalid]: grpc.status.FAILED_PRECONDITION,
  [CA_ERROR.rootNotFound]: grpc.status.NOT_FOUND,
  [CA_ERROR.rootInUse]: grpc.status.FAILED_PRECONDITION,
  [CA_ERROR.responseInvalid]: grpc.status.INTERNAL,
  [CA_ERROR.internal]: grpc.status.INTERNAL,
  [CA_ERROR.rateLimited]: grpc.status.RESOURCE_EXHAUSTED,
};

/**
 * The status for `err`. CaErrors keep their message; anything else is logged here and answered
 * with a generic `CA_INTERNAL` so that internals never reach the caller.
 */
export function toServiceError(err: unknown, logger: Logger, fields: Record<string, unknown> = {}): grpc.ServiceError {
  let code: CaErrorCode;
  let message: string;
  if (err instanceof CaError) {
    code = err.code;
    message = err.message;
  } else {
    code = CA_ERROR.internal;
    message = 'internal error in the certificate authority; see the control plane log';
    logger.error('CA request failed unexpectedly', { ...fields, err });
  }
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_CODE_METADATA_KEY, code);
  const status = STATUS_BY_CODE[code];
  const error = new Error(`${code}: ${message}`) as grpc.ServiceError;
  error.code = status;
  error.details = `${code}: ${message}`;
  error.metadata = metadata;
  return error;
}
