/**
 * The mesh certificate authority: gives every workload a short-lived X.509 certificate whose
 * URI SAN is its SPIFFE ID, `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>`.
 *
 * Layout (as in Istio's security/pkg): signing in `pki/`, serving in `server/`, pluggable
 * authenticators in `authn/`, the sidecar's side in `client.ts` and `rotator.ts`.
 *
 * ## Running a CA
 *
 * ```ts
 * const ca = await createCertificateAuthority({
 *   trustDomain: 'cluster.local',
 *   source: { kind: 'self-signed', dir: '/var/lib/tracemesh/ca' }, // or { kind: 'provided-dir', dir }
 * });
 * const server = await startCaServer({
 *   ca,
 *   authenticators: [
 *     clientCertificateAuthenticator('cluster.local'),         // renewals over mTLS
 *     kubernetesTokenAuthenticator(await inClusterTokenReviewOptions('cluster.local', ['tracemesh-ca'])),
 *     // local mode: await bootstrapTokenAuthenticatorFromFile('cluster.local', 'tokens.json'),
 *   ],
 *   port: 15012,                    // 0 in tests
 * });
 * // ... later
 * await server.close(); ca.close();
 * ```
 *
 * - `createCertificateAuthority(options)` resolves to a ready {@link CertificateAuthority}.
 *   A self-signed CA creates an ECDSA P-256 root on first start (10 years by default) and
 *   persists it (`root-cert.pem`, `root-key.pem` mode 0600); a provided CA loads a root, or an
 *   intermediate plus chain, in Istio's `cacerts` layout and checks the whole path at load.
 * - Workload certificates: P-256, empty subject, the SPIFFE ID as the only (critical) URI SAN,
 *   digitalSignature|keyEncipherment, serverAuth+clientAuth, CA:false, SKI/AKI, random
 *   128-bit serial, notBefore one minute in the past, 24h by default (seconds work too).
 * - The identity granted is the one the credential proves. The CSR only contributes its key;
 *   a CSR naming another URI SAN is refused with `IDENTITY_MISMATCH`.
 * - Root rotation: `ca.rotateRoot()` makes a new signing root; the old one stays in the trust
 *   bundle for the overlap (default: the longest workload lifetime), then leaves by itself or
 *   by `ca.retireRoot(fingerprint)`. `ca.onTrustBundleChange` and the `WatchTrustBundle` RPC
 *   push each change.
 * - `startCaServer(options)` resolves to `{ port, address, serverSpiffeId, close() }`. It
 *   serves `istio.v1.auth.IstioCertificateService/CreateCertificate` (wire-compatible with
 *   istio-agent) and `tracemesh.ca.v1.TrustBundleService/{GetTrustBundle,WatchTrustBundle}`
 *   (common/ca/proto/*.proto), over TLS with a serving certificate the CA issues to
 *   `spiffe://<td>/ns/tracemesh-system/sa/tracemesh-controlplane` and renews, or plaintext.
 *
 * ## Errors
 *
 * Every failure is a {@link CaError} with a stable `code` (see `CA_ERROR`). The server maps
 * them to gRPC statuses in server/status.ts only: AUTH_FAILED → UNAUTHENTICATED,
 * IDENTITY_MISMATCH → PERMISSION_DENIED, CSR_INVALID/VALIDITY_INVALID → INVALID_ARGUMENT,
 * CA_NOT_READY/AUTH_UNAVAILABLE → UNAVAILABLE, anything unexpected → INTERNAL (`CA_INTERNAL`).
 * The code is the prefix of the status message and the trailer `x-tracemesh-error-code`;
 * {@link CaClient} turns it back into a CaError.
 *
 * ## In a sidecar
 *
 * ```ts
 * const client = new CaClient({
 *   address: 'tracemesh-controlplane.tracemesh-system.svc:15012',
 *   transport: { kind: 'tls', rootCertsPem, serverSpiffeId: 'spiffe://cluster.local/ns/tracemesh-system/sa/tracemesh-controlplane' },
 *   token: () => readFile(tokenPath, 'utf8'),
 * });
 * const rotator = new CertificateRotator({
 *   issue: () => client.requestCertificate({ ttlMs: 24 * 3600_000 }),
 *   onCertificate: (c) => tlsContext.update(c.certChainPem, c.privateKeyPem),
 * });
 * rotator.start();
 * ```
 *
 * The key pair is made in the sidecar with WebCrypto; only the CSR is sent. Peers are checked
 * with `spiffeIdFromCertificate(peerCert)` after TLS verified the chain against the bundle.
 *
 * ## From the command line
 *
 * `CA_FLAGS` (trust domain, CA directory or provided CA, lifetimes, listen address, bootstrap
 * tokens file, TokenReview) and `startCaFromFlags(parseFlags(CA_FLAGS, argv), logger)` give the
 * control plane entry point a running CA in two lines.
 *
 * ## Tests
 *
 * `testing.ts` starts a real CA and server on 127.0.0.1:0 with bootstrap tokens
 * (`startTestCa()`), for this folder's tests and for any component that needs mesh
 * certificates in its own tests.
 */

export { CA_ERROR, CaError, isCaError, type CaErrorCode } from '../../common/ca/errors.ts';
export {
  createCertificateAuthority,
  DEFAULT_MAX_WORKLOAD_CERT_TTL_MS,
  DEFAULT_WORKLOAD_CERT_TTL_MS,
  type CaSource,
  type CertificateAuthority,
  type CertificateAuthorityOptions,
  type IssuedCertificate,
  type RootInfo,
  type ServingCertificateRequest,
  type SignCsrRequest,
  type TrustBundle,
} from './pki/authority.ts';
export {
  formatSpiffeId,
  isValidNamespace,
  isValidServiceAccount,
  isValidTrustDomain,
  parseSpiffeId,
  spiffeIdEquals,
  spiffeIdFromCertificate,
  tryParseSpiffeId,
  uriSans,
  type SpiffeId,
} from '../../common/spiffe.ts';
export {
  createIntermediateCertificate,
  createRootCertificate,
  DEFAULT_CLOCK_SKEW_MS,
  DEFAULT_ROOT_LIFETIME_MS,
  fingerprintSha256,
  type Signer,
} from '../../common/ca/certs.ts';
export { loadProvidedCa, PROVIDED_CA_FILES, readProvidedCaDir, type ProvidedCaMaterial } from './pki/provided.ts';
export { directoryRootStore, memoryRootStore, ROOT_FILES, type RootStore, type StoredRoots } from './pki/store.ts';
export {
  bearerToken,
  firstOf,
  type AuthenticatedCaller,
  type Authenticator,
  type CallMetadata,
  type PeerInfo,
} from './authn/authenticator.ts';
export {
  bootstrapTokenAuthenticator,
  bootstrapTokenAuthenticatorFromFile,
  MIN_TOKEN_LENGTH,
  type BootstrapGrant,
} from './authn/bootstrap-token.ts';
export {
  inClusterTokenReviewOptions,
  kubernetesTokenAuthenticator,
  TOKEN_REVIEW_PATH,
  type KubernetesTokenReviewOptions,
} from './authn/kubernetes-token.ts';
export { clientCertificateAuthenticator } from './authn/client-cert.ts';
export {
  CONTROL_PLANE_NAMESPACE,
  CONTROL_PLANE_SERVICE_ACCOUNT,
  DEFAULT_CA_PORT,
  startCaServer,
  type CaServer,
  type CaServerOptions,
  type CaServerTransport,
} from './server/server.ts';
export { ERROR_CODE_METADATA_KEY } from './server/status.ts';
export {
  CaClient,
  createCsr,
  fromServiceError,
  type CaClientOptions,
  type CaClientTransport,
  type RequestCertificateOptions,
  type TrustBundleUpdate,
  type TrustBundleWatch,
  type WorkloadCertificate,
} from '../../common/ca/client.ts';
export { CertificateRotator, type CertificateRotatorOptions } from '../../common/ca/rotator.ts';
export { CA_FLAGS, startCaFromFlags, type CaFlagValues, type RunningCa } from './flags.ts';
