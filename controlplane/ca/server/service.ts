// gRPC handlers of the CA: authenticate the call, hand the request to the CA, and turn the
// outcome into a response or (via status.ts only) a status.

import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../../common/logger.ts';
import type { Authenticator, CallMetadata, PeerInfo } from '../authn/authenticator.ts';
import { CA_ERROR, CaError } from '../../../common/ca/errors.ts';
import type { CertificateAuthority, TrustBundle } from '../pki/authority.ts';
import { formatSpiffeId } from '../../../common/spiffe.ts';
import type { CreateCertificateRequest, CreateCertificateResponse, Empty, TrustBundleMessage } from '../../../common/ca/proto.ts';
import type { CaRefusals } from './connection-limits.ts';
import { DEFAULT_SIGNING_RATE_LIMIT, SigningRateLimiter } from './rate-limit.ts';
import { toServiceError } from './status.ts';

/** What every server call offers, unary or streaming. */
type SurfaceCall = Pick<grpc.ServerUnaryCall<unknown, unknown>, 'metadata' | 'getPeer' | 'getAuthContext'>;

export interface CaServiceDeps {
  readonly ca: CertificateAuthority;
  readonly authenticator: Authenticator;
  readonly logger: Logger;
  /** Per-identity signing rate (rate-limit.ts); default DEFAULT_SIGNING_RATE_LIMIT. */
  readonly rateLimiter?: SigningRateLimiter;
  /** Where a rate-limited call is counted (reason "rate", phase "sign"). */
  readonly refusals?: CaRefusals;
}

export interface CaServiceHandlers {
  readonly certificate: grpc.UntypedServiceImplementation;
  readonly trustBundle: grpc.UntypedServiceImplementation;
  /** Ends every open WatchTrustBundle stream with OK, so that the server can shut down. */
  endStreams(): void;
}

export function createCaServiceHandlers(deps: CaServiceDeps): CaServiceHandlers {
  const { ca, authenticator, logger } = deps;
  const rateLimiter = deps.rateLimiter ?? new SigningRateLimiter(DEFAULT_SIGNING_RATE_LIMIT, { logger });
  const streams = new Set<grpc.ServerWritableStream<Empty, TrustBundleMessage>>();

  const authenticate = async (call: SurfaceCall, method: string) => {
    const peer = peerInfo(call);
    try {
      return await authenticator.authenticate(metadataOf(call.metadata), peer);
    } catch (err) {
      logger.warn('CA call not authenticated', {
        method,
        peer: peer.address,
        code: err instanceof CaError ? err.code : undefined,
        reason: err instanceof Error ? err.message : String(err),
      });
      throw err;
    }
  };

  const createCertificate: grpc.handleUnaryCall<CreateCertificateRequest, CreateCertificateResponse> = (call, callback) => {
    const run = async (): Promise<CreateCertificateResponse> => {
      const caller = await authenticate(call, 'CreateCertificate');
      try {
        rateLimiter.take(formatSpiffeId(caller.spiffeId));
      } catch (err) {
        deps.refusals?.count({ reason: 'rate', phase: 'sign' });
        throw err;
      }
      const seconds = Number(call.request.validity_duration);
      if (!Number.isSafeInteger(seconds) || seconds < 0) {
        throw new CaError(CA_ERROR.validityInvalid, `validity_duration ${call.request.validity_duration} is not a whole number of seconds ≥ 0`);
      }
      const issued = await ca.signCsr({ csrPem: call.request.csr, identity: caller.spiffeId, ttlMs: seconds * 1000 });
      logger.info('CreateCertificate', {
        spiffeId: formatSpiffeId(caller.spiffeId),
        authenticator: caller.authenticator,
        serial: issued.serialNumber,
      });
      return { cert_chain: [...issued.certChainPem] };
    };
    run().then(
      (response) => callback(null, response),
      (err: unknown) => callback(toServiceError(err, logger, { method: 'CreateCertificate' })),
    );
  };

  const getTrustBundle: grpc.handleUnaryCall<Empty, TrustBundleMessage> = (call, callback) => {
    authenticate(call, 'GetTrustBundle').then(
      () => callback(null, toMessage(ca.trustBundle())),
      (err: unknown) => callback(toServiceError(err, logger, { method: 'GetTrustBundle' })),
    );
  };

  const watchTrustBundle: grpc.handleServerStreamingCall<Empty, TrustBundleMessage> = (call) => {
    authenticate(call, 'WatchTrustBundle').then(
      () => {
        if (call.cancelled) return;
        let last = 0;
        const send = (bundle: TrustBundle): void => {
          // A change may race the first write; never send a version twice or go backwards.
          if (bundle.version <= last) return;
          last = bundle.version;
          call.write(toMessage(bundle));
        };
        const unsubscribe = ca.onTrustBundleChange(send);
        const done = (): void => {
          unsubscribe();
          streams.delete(call);
        };
        streams.add(call);
        call.on('cancelled', done);
        call.on('close', done);
        call.on('finish', done);
        send(ca.trustBundle());
      },
      (err: unknown) => call.emit('error', toServiceError(err, logger, { method: 'WatchTrustBundle' })),
    );
  };

  return {
    certificate: { CreateCertificate: createCertificate },
    trustBundle: { GetTrustBundle: getTrustBundle, WatchTrustBundle: watchTrustBundle },
    endStreams() {
      for (const call of [...streams]) {
        streams.delete(call);
        call.end();
      }
    },
  };
}

function toMessage(bundle: TrustBundle): TrustBundleMessage {
  return { trust_domain: bundle.trustDomain, root_certs: bundle.roots.map((r) => r.certPem), version: String(bundle.version) };
}

function metadataOf(metadata: grpc.Metadata): CallMetadata {
  // Prototype-free: a metadata key named `__proto__` is a key like any other.
  const out = Object.create(null) as Record<string, string[]>;
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    const text = values.filter((v): v is string => typeof v === 'string');
    if (text.length > 0) out[key.toLowerCase()] = text;
  }
  return out;
}

function peerInfo(call: SurfaceCall): PeerInfo {
  const address = call.getPeer();
  const raw = call.getAuthContext().sslPeerCertificate?.raw;
  return raw ? { address, certificate: new X509Certificate(raw) } : { address };
}
