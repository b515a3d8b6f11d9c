// X.509 profiles the CA issues: self-signed roots, intermediates (for operators and tests) and
// leaf certificates for workloads and for the control plane's own TLS endpoint.

import { createHash } from 'node:crypto';
import { ECDSA_SHA256, generateP256KeyPair, type SigningKey } from './keys.ts';
import { formatSpiffeId, type SpiffeId } from '../spiffe.ts';
import { x509 } from './x509.ts';

export const DEFAULT_ROOT_LIFETIME_MS = 10 * 365 * 24 * 3_600_000;
/** How far notBefore is backdated so that a peer whose clock runs behind accepts a fresh cert. */
export const DEFAULT_CLOCK_SKEW_MS = 60_000;

/** A certificate together with the key that signs with it. */
export interface Signer extends SigningKey {
  readonly cert: x509.X509Certificate;
}

/** A random positive 128-bit serial number, as hex. */
export function randomSerialNumber(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  // Clear the sign bit and make sure the leading byte is not zero, so DER keeps all 16 bytes.
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return Buffer.from(bytes).toString('hex');
}

/** Lowercase hex SHA-256 of the DER encoding; the identity of a root in the trust bundle. */
export function fingerprintSha256(cert: x509.X509Certificate): string {
  return createHash('sha256').update(new Uint8Array(cert.rawData)).digest('hex');
}

export function certToPem(cert: x509.X509Certificate): string {
  return cert.toString('pem') + '\n';
}

/** Splits a PEM bundle into certificates; throws if any block is not a CERTIFICATE. */
export function parseCertificates(pem: string): x509.X509Certificate[] {
  return x509.PemConverter.decodeWithHeaders(pem).map((block) => {
    if (block.type !== 'CERTIFICATE') throw new Error(`expected CERTIFICATE PEM blocks, found "${block.type}"`);
    return new x509.X509Certificate(block.rawData);
  });
}

export interface RootCertificateParams {
  readonly trustDomain: string;
  readonly lifetimeMs?: number;
  readonly clockSkewMs?: number;
  readonly now?: Date;
}

/**
 * A new self-signed P-256 root: CA:true (critical), keyCertSign|cRLSign (critical), SKI/AKI.
 * The common name carries the key id so that roots of successive rotations have distinct
 * subjects and chain building never confuses them.
 */
export async function createRootCertificate(params: RootCertificateParams): Promise<Signer> {
  const keys = await generateP256KeyPair();
  const now = params.now ?? new Date();
  const ski = await x509.SubjectKeyIdentifierExtension.create(keys.publicKey);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    name: [{ O: [params.trustDomain] }, { CN: [`tracemesh root CA ${ski.keyId.slice(0, 16)}`] }],
    notBefore: new Date(now.getTime() - (params.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS)),
    notAfter: new Date(now.getTime() + (params.lifetimeMs ?? DEFAULT_ROOT_LIFETIME_MS)),
    keys,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ski,
      new x509.AuthorityKeyIdentifierExtension(ski.keyId),
    ],
  });
  return { cert, privateKey: keys.privateKey, signingAlgorithm: ECDSA_SHA256 };
}

export interface IntermediateCertificateParams {
  readonly issuer: Signer;
  /** Subject, e.g. `O=example.org, CN=tracemesh intermediate`. */
  readonly name: string;
  readonly lifetimeMs: number;
  readonly pathLength?: number;
  readonly clockSkewMs?: number;
}

/**
 * A P-256 intermediate CA signed by `issuer`. The CA itself never creates intermediates; this
 * exists for operators' tooling and for tests of the "provided CA" mode.
 */
export async function createIntermediateCertificate(params: IntermediateCertificateParams): Promise<Signer> {
  const keys = await generateP256KeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: params.name,
    issuer: params.issuer.cert.subjectName,
    notBefore: new Date(now - (params.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS)),
    notAfter: new Date(now + params.lifetimeMs),
    publicKey: keys.publicKey,
    signingKey: params.issuer.privateKey,
    signingAlgorithm: params.issuer.signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, params.pathLength, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await authorityKeyIdentifier(params.issuer.cert),
    ],
  });
  return { cert, privateKey: keys.privateKey, signingAlgorithm: ECDSA_SHA256 };
}

export interface LeafCertificateParams {
  readonly signer: Signer;
  readonly publicKey: x509.PublicKeyType;
  readonly identity: SpiffeId;
  /** Extra SANs, only for serving certificates of the control plane itself. */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/**
 * A workload leaf: empty subject with the identity as the only URI SAN (critical, as RFC 5280
 * requires for an empty subject), digitalSignature|keyEncipherment, serverAuth+clientAuth,
 * CA:false, SKI/AKI and a random serial.
 */
export async function issueLeafCertificate(params: LeafCertificateParams): Promise<x509.X509Certificate> {
  const names: x509.JsonGeneralNames = [{ type: 'url', value: formatSpiffeId(params.identity) }];
  for (const dns of params.dnsNames ?? []) names.push({ type: 'dns', value: dns });
  for (const ip of params.ipAddresses ?? []) names.push({ type: 'ip', value: ip });
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: '',
    issuer: params.signer.cert.subjectName,
    notBefore: params.notBefore,
    notAfter: params.notAfter,
    publicKey: params.publicKey,
    signingKey: params.signer.privateKey,
    signingAlgorithm: params.signer.signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(names, true),
      await x509.SubjectKeyIdentifierExtension.create(params.publicKey),
      await authorityKeyIdentifier(params.signer.cert),
    ],
  });
}

/** AKI pointing at the issuer's SKI, or at a key id computed from its key if it has none. */
async function authorityKeyIdentifier(issuer: x509.X509Certificate): Promise<x509.AuthorityKeyIdentifierExtension> {
  const ski = issuer.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) return new x509.AuthorityKeyIdentifierExtension(ski.keyId);
  return x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey);
}
