// Serves the CA over gRPC: Istio's CreateCertificate plus our trust bundle RPCs, over TLS with
// a certificate the CA issues to the control plane itself (or plaintext for local dev).

import { isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../../common/logger.ts';
import { silentLogger } from '../../../common/logger.ts';
import { CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_SERVICE_ACCOUNT, DEFAULT_CA_PORT } from '../../../common/ca/constants.ts';
import { firstOf, type Authenticator } from '../authn/authenticator.ts';
import { CA_ERROR, CaError } from '../../../common/ca/errors.ts';
import type { CertificateAuthority } from '../pki/authority.ts';
import type { SpiffeId } from '../../../common/spiffe.ts';
import { CertificateServiceClient, TrustBundleServiceClient } from '../../../common/ca/proto.ts';
import type { Http2Server } from 'node:http2';
import type { Registry } from 'prom-client';
import { CaRefusals, capConnections, watchConnections } from './connection-limits.ts';
import type { SigningRateLimiter } from './rate-limit.ts';
import { createCaServiceHandlers } from './service.ts';
import { ServingIdentity } from './serving-identity.ts';

export { CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_SERVICE_ACCOUNT, DEFAULT_CA_PORT };

export type CaServerTransport =
  | {
      readonly kind: 'tls';
      /** Default `spiffe://<td>/ns/tracemesh-system/sa/tracemesh-controlplane`. */
      readonly identity?: SpiffeId;
      /** Default `localhost` and `tracemesh-controlplane.tracemesh-system.svc`. */
      readonly dnsNames?: readonly string[];
      /** Default `127.0.0.1` and `::1`, plus the listen host when it is an address. */
      readonly ipAddresses?: readonly string[];
      /** Lifetime of the serving certificate; the CA's workload default when undefined. */
      readonly ttlMs?: number;
    }
  /** No TLS: only for a laptop, where the CA listens on loopback. */
  | { readonly kind: 'plaintext' };

export interface CaServerOptions {
  readonly ca: CertificateAuthority;
  /** Tried in order; the first that accepts the caller decides its identity. */
  readonly authenticators: readonly Authenticator[];
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 15012; 0 picks a free port. */
  readonly port?: number;
  /** Default TLS with a self-issued serving certificate. */
  readonly transport?: CaServerTransport;
  /** Largest request accepted, in bytes. Default 64 KiB: a CSR is under 1 KiB. */
  readonly maxRequestBytes?: number;
  /**
   * More gRPC services on the same server and port (the control plane adds xDS here). Their
   * streams must be ended by their owner before close(), or close() forces them after 5 s.
   */
  readonly services?: readonly { readonly definition: grpc.ServiceDefinition; readonly implementation: grpc.UntypedServiceImplementation }[];
  /** Extra grpc-js server interceptors, outermost first (metrics, auditing, tests). */
  readonly interceptors?: readonly grpc.ServerInterceptor[];
  readonly logger?: Logger;
  /** Per-identity limit on CreateCertificate (rate-limit.ts); default 10 at once, 6 a minute. */
  readonly rateLimiter?: SigningRateLimiter;
  /** A TLS handshake must finish this long after connecting; then the socket is closed. Default 10 s (node's own is 120 s). */
  readonly tlsHandshakeTimeoutMs?: number;
  /**
   * A connection with no open call (stream) for this long is closed, whether it never sent
   * one (a client that finished TLS and went quiet) or its last call ended; keepalive pings do
   * not count. Default 60 s: gRPC clients reconnect on their next call.
   */
  readonly idleTimeoutMs?: number;
  /**
   * Open connections (CA and xDS together) at most; one more is closed at accept, before TLS,
   * and counted `reason="concurrency",phase="connect"`. Default 4096 (each sidecar holds one
   * xDS connection, plus one to the CA while it renews).
   */
  readonly maxConnections?: number;
  /** Where refusals are counted: `tracemesh_ca_admission_refusals_total{reason,phase}`. Default: not counted (logged only). */
  readonly registry?: Registry;
}

export interface CaServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** `host:port` to dial. */
  readonly address: string;
  /** The SPIFFE ID in the serving certificate; undefined in plaintext mode. */
  readonly serverSpiffeId: string | undefined;
  /** Ends watch streams, finishes in-flight calls (forcing them after 5s) and stops renewal. Safe to call twice. */
  close(): Promise<void>;
}

const SHUTDOWN_GRACE_MS = 5_000;

/** Open connections of the CA/xDS port unless `maxConnections` says otherwise (--ca-max-connections). */
export const DEFAULT_CA_MAX_CONNECTIONS = 4096;

/**
 * Starts the CA gRPC server and resolves once it listens. Rejects with `CA_CONFIG_INVALID` when
 * there is no authenticator or the address cannot be bound, and with the CA's error when the
 * serving certificate cannot be issued.
 */
export async function startCaServer(options: CaServerOptions): Promise<CaServer> {
  if (options.authenticators.length === 0) {
    throw new CaError(CA_ERROR.configInvalid, 'the CA server needs at least one authenticator');
  }
  const logger = (options.logger ?? silentLogger).child({ component: 'ca-server' });
  const host = options.host ?? '127.0.0.1';
  const transport = options.transport ?? { kind: 'tls' };
  const maxRequestBytes = options.maxRequestBytes ?? 64 * 1024;

  let identity: ServingIdentity | undefined;
  let credentials: grpc.ServerCredentials;
  if (transport.kind === 'tls') {
    const defaultIps = ['127.0.0.1', '::1'];
    if (isIP(host) && host !== '0.0.0.0' && host !== '::' && !defaultIps.includes(host)) defaultIps.push(host);
    identity = new ServingIdentity(options.ca, {
      identity: transport.identity ?? {
        trustDomain: options.ca.trustDomain,
        namespace: CONTROL_PLANE_NAMESPACE,
        serviceAccount: CONTROL_PLANE_SERVICE_ACCOUNT,
      },
      dnsNames: transport.dnsNames ?? ['localhost', `${CONTROL_PLANE_SERVICE_ACCOUNT}.${CONTROL_PLANE_NAMESPACE}.svc`],
      ipAddresses: transport.ipAddresses ?? defaultIps,
      ...(transport.ttlMs !== undefined ? { ttlMs: transport.ttlMs } : {}),
      logger,
    });
    await identity.start();
    // grpc-js names these parameters the other way round, but passes the first one on as the
    // identity provider and the second as the provider of roots for client certificates.
    // Client certificates are requested (for renewal over mTLS) but not required.
    credentials = grpc.experimental.createCertificateProviderServerCredentials(identity, identity, false);
    // grpc-js hands these options to http2.createSecureServer and has no setting of its own
    // for the handshake's time limit (node's default is 120 s: a TLS slowloris's friend).
    const secure = credentials;
    const constructorOptions = secure._getConstructorOptions.bind(secure);
    const handshakeTimeout = options.tlsHandshakeTimeoutMs ?? 10_000;
    secure._getConstructorOptions = () => ({ ...constructorOptions(), handshakeTimeout });
  } else {
    credentials = grpc.ServerCredentials.createInsecure();
  }

  const refusals = new CaRefusals({ registry: options.registry, logger });
  const handlers = createCaServiceHandlers({
    ca: options.ca,
    authenticator: firstOf(options.authenticators),
    logger,
    refusals,
    ...(options.rateLimiter !== undefined ? { rateLimiter: options.rateLimiter } : {}),
  });
  const server = new grpc.Server({
    'grpc.max_receive_message_length': maxRequestBytes,
    ...(options.interceptors ? { interceptors: [...options.interceptors] } : {}),
  });
  server.addService(CertificateServiceClient.service, handlers.certificate);
  server.addService(TrustBundleServiceClient.service, handlers.trustBundle);
  for (const extra of options.services ?? []) server.addService(extra.definition, extra.implementation);

  const bindHost = isIP(host) === 6 ? `[${host}]` : host;
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${bindHost}:${options.port ?? DEFAULT_CA_PORT}`, credentials, (err, bound) =>
        err ? reject(err) : resolve(bound),
      );
    });
  } catch (err) {
    identity?.close();
    throw new CaError(CA_ERROR.configInvalid, `the CA server cannot listen on ${bindHost}:${options.port ?? DEFAULT_CA_PORT}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  // grpc-js keeps its node http2 servers in a private map, filled by bindAsync: the only way to
  // see handshake timeouts and sessions. Checked, so a grpc-js that renames it fails loudly here.
  const http2Servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(http2Servers instanceof Map) || http2Servers.size === 0) {
    server.forceShutdown();
    identity?.close();
    throw new CaError(CA_ERROR.configInvalid, 'the CA server cannot watch its connections: this grpc-js keeps no http2Servers map (see connection-limits.ts)');
  }
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  const maxConnections = options.maxConnections ?? DEFAULT_CA_MAX_CONNECTIONS;
  for (const h2 of http2Servers.keys()) {
    watchConnections(h2 as Http2Server, { idleTimeoutMs, refusals });
    capConnections(h2 as Http2Server, { maxConnections, refusals });
  }
  logger.info('CA server listening', { address: `${bindHost}:${port}`, tls: transport.kind === 'tls', identity: identity?.spiffeId });

  let closing: Promise<void> | undefined;
  return {
    port,
    address: `${bindHost}:${port}`,
    serverSpiffeId: identity?.spiffeId,
    close() {
      closing ??= new Promise<void>((resolve) => {
        handlers.endStreams();
        const force = setTimeout(() => server.forceShutdown(), SHUTDOWN_GRACE_MS);
        server.tryShutdown(() => {
          clearTimeout(force);
          identity?.close();
          resolve();
        });
      });
      return closing;
    },
  };
}
