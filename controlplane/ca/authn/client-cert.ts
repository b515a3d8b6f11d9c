// Renewal over mTLS: a workload that still holds a valid mesh certificate proves its identity
// with it, so renewals need no token. The TLS layer has already verified the chain against the
// trust bundle; this only reads the identity out of it.

import { CA_ERROR, CaError } from '../../../common/ca/errors.ts';
import { spiffeIdFromCertificate } from '../../../common/spiffe.ts';
import type { Authenticator } from './authenticator.ts';

/**
 * Accepts the caller's verified TLS client certificate when it carries one SPIFFE ID in
 * `trustDomain`. Only use with a server that verifies client certificates against the CA's
 * trust bundle (startCaServer does).
 */
export function clientCertificateAuthenticator(trustDomain: string): Authenticator {
  return {
    name: 'client-certificate',
    authenticate(_metadata, peer) {
      const cert = peer?.certificate;
      if (!cert) {
        return Promise.reject(new CaError(CA_ERROR.authFailed, 'client-certificate: no verified TLS client certificate'));
      }
      try {
        const spiffeId = spiffeIdFromCertificate(cert);
        if (spiffeId.trustDomain !== trustDomain) {
          throw new CaError(CA_ERROR.authFailed, `client-certificate: trust domain ${spiffeId.trustDomain} is not ${trustDomain}`);
        }
        return Promise.resolve({ spiffeId, authenticator: 'client-certificate' });
      } catch (err) {
        if (err instanceof CaError && err.code === CA_ERROR.authFailed) return Promise.reject(err);
        return Promise.reject(new CaError(CA_ERROR.authFailed, `client-certificate: ${(err as Error).message}`, { cause: err }));
      }
    },
  };
}
