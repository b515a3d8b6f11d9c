// Command-line flags of the certificate authority and the one function that turns them into a
// running CA server, for the control plane's entry point to include.

import type { FlagSpec, FlagValues } from '../../common/flags.ts';
import type { Logger } from '../../common/logger.ts';
import type { Authenticator } from './authn/authenticator.ts';
import { bootstrapTokenAuthenticatorFromFile } from './authn/bootstrap-token.ts';
import { clientCertificateAuthenticator } from './authn/client-cert.ts';
import { inClusterTokenReviewOptions, kubernetesTokenAuthenticator } from './authn/kubernetes-token.ts';
import { CA_ERROR, CaError } from '../../common/ca/errors.ts';
import { createCertificateAuthority, type CertificateAuthority } from './pki/authority.ts';
import { startCaServer, type CaServer, type CaServerOptions, type CaServerTransport } from './server/server.ts';
import { DEFAULT_SIGNING_RATE_LIMIT, SigningRateLimiter } from './server/rate-limit.ts';

export const CA_FLAGS = [
  {
    name: 'trust-domain',
    kind: 'string',
    default: 'cluster.local',
    description: 'SPIFFE trust domain of every workload identity, e.g. cluster.local',
  },
  {
    name: 'ca-dir',
    kind: 'string',
    default: '.tracemesh/ca',
    description: 'Directory of the self-signed root CA (root-cert.pem, root-key.pem); created on first start',
  },
  {
    name: 'ca-provided-dir',
    kind: 'string',
    default: '',
    description: 'Use an operator CA instead: a directory with ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem (Istio cacerts layout)',
  },
  { name: 'ca-root-lifetime', kind: 'duration', default: '87600h', description: 'Lifetime of a self-signed root (10 years)' },
  { name: 'workload-cert-ttl', kind: 'duration', default: '24h', description: 'Default lifetime of workload certificates' },
  {
    name: 'max-workload-cert-ttl',
    kind: 'duration',
    default: '168h',
    description: 'Longest lifetime a workload may request; also how long a rotated-out root stays trusted',
  },
  { name: 'ca-host', kind: 'string', default: '127.0.0.1', description: 'Address the CA gRPC server listens on' },
  { name: 'ca-port', kind: 'int', default: '15012', description: 'Port of the CA gRPC server (Istio’s istiod port)' },
  { name: 'ca-sign-burst', kind: 'int', default: '10', description: 'Certificates one identity may have signed at once; past it and its refill, CreateCertificate answers RESOURCE_EXHAUSTED (CA_RATE_LIMITED)' },
  { name: 'ca-sign-per-minute', kind: 'int', default: '6', description: 'Signatures an identity gets back per minute after its burst' },
  { name: 'ca-tls-handshake-timeout', kind: 'duration', default: '10s', description: 'A TLS handshake on the CA (and xDS) port must finish this long after connecting; then the connection is closed' },
  { name: 'ca-idle-timeout', kind: 'duration', default: '60s', description: 'A connection to the CA (and xDS) port with no open call for this long is closed, also one that finished TLS and never sent a call; keepalive pings do not count. Clients reconnect on their next call' },
  { name: 'ca-max-connections', kind: 'int', default: '4096', description: 'Open connections to the CA (and xDS) port at most, every client together; one more is closed at accept, before TLS, and counted (reason="concurrency"). Each sidecar holds one xDS connection, plus one to the CA while it renews' },
  { name: 'ca-plaintext', kind: 'bool', default: 'false', description: 'Serve the CA without TLS (local development on loopback only)' },
  {
    name: 'bootstrap-tokens-file',
    kind: 'string',
    default: '',
    description: 'JSON file {"<token>": {"namespace": "...", "serviceAccount": "..."}} of bootstrap tokens (local mode)',
  },
  {
    name: 'kube-token-review',
    kind: 'bool',
    default: 'false',
    description: 'Authenticate workloads by their Kubernetes service-account token through the TokenReview API (in-cluster)',
  },
  {
    name: 'kube-token-audiences',
    kind: 'list',
    default: 'tracemesh-ca',
    description: 'Audiences a workload token must carry for the TokenReview authenticator',
  },
] as const satisfies readonly FlagSpec[];

export type CaFlagValues = FlagValues<typeof CA_FLAGS>;

export interface RunningCa {
  readonly ca: CertificateAuthority;
  readonly server: CaServer;
  /** Stops the server, then the CA. Safe to call twice. */
  close(): Promise<void>;
}

/** The CA and what its server needs, from parsed flags; the server is not started. */
export interface CaParts {
  readonly ca: CertificateAuthority;
  readonly authenticators: readonly Authenticator[];
  readonly host: string;
  readonly port: number;
  readonly transport: CaServerTransport;
  /** Per-identity signing rate limit (--ca-sign-burst, --ca-sign-per-minute). */
  readonly rateLimiter: SigningRateLimiter;
  /** --ca-tls-handshake-timeout, in ms. */
  readonly tlsHandshakeTimeoutMs: number;
  /** --ca-idle-timeout, in ms. */
  readonly idleTimeoutMs: number;
  /** --ca-max-connections. */
  readonly maxConnections: number;
}

/**
 * Builds the CA from parsed flags. Throws `CA_CONFIG_INVALID` when no authenticator for first
 * certificates is configured (a bootstrap tokens file or TokenReview).
 */
export async function caFromFlags(flags: CaFlagValues, logger: Logger): Promise<CaParts> {
  const trustDomain = flags['trust-domain'];
  for (const name of ['ca-sign-burst', 'ca-sign-per-minute', 'ca-tls-handshake-timeout', 'ca-idle-timeout', 'ca-max-connections'] as const) {
    if (flags[name] < 1) throw new CaError(CA_ERROR.configInvalid, `--${name} must be at least 1, got ${flags[name]}`);
  }
  const authenticators: Authenticator[] = [];
  if (!flags['ca-plaintext']) authenticators.push(clientCertificateAuthenticator(trustDomain));
  if (flags['bootstrap-tokens-file'] !== '') {
    authenticators.push(await bootstrapTokenAuthenticatorFromFile(trustDomain, flags['bootstrap-tokens-file']));
  }
  if (flags['kube-token-review']) {
    authenticators.push(kubernetesTokenAuthenticator(await inClusterTokenReviewOptions(trustDomain, flags['kube-token-audiences'])));
  }
  if (authenticators.length === (flags['ca-plaintext'] ? 0 : 1)) {
    throw new CaError(
      CA_ERROR.configInvalid,
      'the CA has no way to authenticate a workload’s first request; set --bootstrap-tokens-file or --kube-token-review',
    );
  }
  const ca = await createCertificateAuthority({
    trustDomain,
    source:
      flags['ca-provided-dir'] !== ''
        ? { kind: 'provided-dir', dir: flags['ca-provided-dir'] }
        : { kind: 'self-signed', dir: flags['ca-dir'], rootLifetimeMs: flags['ca-root-lifetime'] },
    workloadCertTtlMs: flags['workload-cert-ttl'],
    maxWorkloadCertTtlMs: flags['max-workload-cert-ttl'],
    logger,
  });
  return {
    ca,
    authenticators,
    host: flags['ca-host'],
    port: flags['ca-port'],
    transport: flags['ca-plaintext'] ? { kind: 'plaintext' } : { kind: 'tls' },
    rateLimiter: new SigningRateLimiter({ ...DEFAULT_SIGNING_RATE_LIMIT, burst: flags['ca-sign-burst'], perMinute: flags['ca-sign-per-minute'] }, { logger }),
    tlsHandshakeTimeoutMs: flags['ca-tls-handshake-timeout'],
    idleTimeoutMs: flags['ca-idle-timeout'],
    maxConnections: flags['ca-max-connections'],
  };
}

/** Builds the CA and starts its server from parsed flags (see caFromFlags). */
export async function startCaFromFlags(flags: CaFlagValues, logger: Logger, extra: Pick<CaServerOptions, 'services'> = {}): Promise<RunningCa> {
  const { ca, authenticators, host, port, transport, rateLimiter, tlsHandshakeTimeoutMs, idleTimeoutMs, maxConnections } = await caFromFlags(flags, logger);
  let server: CaServer;
  try {
    server = await startCaServer({ ca, authenticators, host, port, transport, rateLimiter, tlsHandshakeTimeoutMs, idleTimeoutMs, maxConnections, logger, ...extra });
  } catch (err) {
    ca.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    ca,
    server,
    close() {
      closing ??= server.close().then(() => ca.close());
      return closing;
    },
  };
}
