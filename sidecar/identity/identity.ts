// The workload's mTLS identity as the transport needs it (certificate chain, private key,
// trusted roots), the contract of whatever supplies it, and the checks every update passes.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { TracemeshError } from '../../common/errors.ts';
import { formatSpiffeId, spiffeIdFromCertificate } from '../../common/spiffe.ts';

/** What a source hands over: PEM text, exactly what a TLS context is built from. */
export interface IdentityMaterial {
  /** Leaf certificate first, then intermediates (not the root). */
  readonly certChainPem: string;
  /** PKCS#8 (or SEC1/PKCS#1) PEM of the leaf's key. Made locally; never sent anywhere. */
  readonly privateKeyPem: string;
  /** PEM roots that peers' chains must end at: the mesh trust bundle (several during root rotation). */
  readonly trustBundlePem: readonly string[];
}

/** Material that passed `describeIdentity`, with the facts read from the leaf. */
export interface WorkloadIdentity extends IdentityMaterial {
  /** `spiffe://<trust-domain>/ns/<ns>/sa/<sa>` from the leaf's URI SAN. */
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** Lowercase hex serial of the leaf. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export type IdentityListener = (material: IdentityMaterial) => void;

/**
 * Supplies the workload's identity and every later change of it: a renewed certificate, or a
 * new trust bundle after a root rotation. Implementations: CaIdentitySource (the mesh CA),
 * FileIdentitySource (PEM files, e.g. mounted by cert-manager), StaticIdentitySource (tests).
 */
export interface IdentitySource {
  /** The latest material, or undefined until the first one arrived. Cheap. */
  current(): IdentityMaterial | undefined;
  /**
   * Calls `listener` with every later material (never synchronously from `subscribe`, never
   * after close()). Returns a function that removes the listener.
   */
  subscribe(listener: IdentityListener): () => void;
  /** Why no material is available yet (the last CA or file error), for startup messages. */
  lastError?(): unknown;
  /** Stops renewing and watching. Safe to call twice. */
  close(): void;
}

/** The workload identity cannot be used: no certificate yet, or material that does not fit. */
export class IdentityError extends TracemeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('IDENTITY_UNAVAILABLE', message, options);
    this.name = 'IdentityError';
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Splits a PEM bundle into one string per certificate (normalized, with a trailing newline). */
export function splitPemCertificates(pem: string): string[] {
  return (pem.match(PEM_CERT) ?? []).map((c) => c + '\n');
}

/**
 * Checks material and reads its facts: the chain parses, the key belongs to the leaf, the leaf
 * carries exactly one SPIFFE ID, the bundle holds at least one certificate. Throws
 * IdentityError naming what is wrong. Synchronous crypto: call on updates, never per request.
 */
export function describeIdentity(material: IdentityMaterial, what = 'workload identity'): WorkloadIdentity {
  const chain = splitPemCertificates(material.certChainPem);
  const leafPem = chain[0];
  if (leafPem === undefined) throw new IdentityError(`${what}: the certificate chain holds no PEM certificate`);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(leafPem);
  } catch (err) {
    throw new IdentityError(`${what}: the leaf certificate cannot be parsed (${(err as Error).message})`, { cause: err });
  }
  try {
    if (!leaf.checkPrivateKey(createPrivateKey(material.privateKeyPem))) {
      throw new IdentityError(`${what}: the private key does not belong to the certificate`);
    }
  } catch (err) {
    if (err instanceof IdentityError) throw err;
    throw new IdentityError(`${what}: the private key cannot be read (${(err as Error).message})`, { cause: err });
  }
  let spiffeId: string;
  let trustDomain: string;
  try {
    const id = spiffeIdFromCertificate(leaf);
    spiffeId = formatSpiffeId(id);
    trustDomain = id.trustDomain;
  } catch (err) {
    throw new IdentityError(`${what}: the certificate carries no workload SPIFFE ID (${(err as Error).message})`, { cause: err });
  }
  const bundle = material.trustBundlePem.flatMap(splitPemCertificates);
  if (bundle.length === 0) throw new IdentityError(`${what}: the trust bundle holds no PEM certificate`);
  for (const root of bundle) {
    try {
      new X509Certificate(root);
    } catch (err) {
      throw new IdentityError(`${what}: a trust bundle certificate cannot be parsed (${(err as Error).message})`, { cause: err });
    }
  }
  return {
    certChainPem: chain.join(''),
    privateKeyPem: material.privateKeyPem,
    trustBundlePem: bundle,
    spiffeId,
    trustDomain,
    serialNumber: leaf.serialNumber.toLowerCase(),
    notBefore: leaf.validFromDate,
    notAfter: leaf.validToDate,
  };
}

/**
 * Resolves with the source's first material; rejects with IdentityError after `timeoutMs`,
 * naming the source's last error so the operator sees why (CA unreachable, token refused, …).
 */
export function firstIdentity(source: IdentitySource, timeoutMs: number, hint: string): Promise<IdentityMaterial> {
  const now = source.current();
  if (now !== undefined) return Promise.resolve(now);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      const last = source.lastError?.();
      const why = last === undefined ? 'no certificate arrived' : `last error: ${last instanceof Error ? last.message : String(last)}`;
      reject(new IdentityError(`no workload certificate after ${timeoutMs} ms (${why}); ${hint}`, { cause: last }));
    }, timeoutMs);
    const unsubscribe = source.subscribe((m) => {
      clearTimeout(timer);
      unsubscribe();
      resolve(m);
    });
  });
}

/** A source whose material changes only when `set` is called; for tests and embedding. */
export class StaticIdentitySource implements IdentitySource {
  private material: IdentityMaterial | undefined;
  private readonly listeners = new Set<IdentityListener>();
  private closed = false;

  constructor(material?: IdentityMaterial) {
    this.material = material;
  }

  current(): IdentityMaterial | undefined {
    return this.material;
  }

  /** Replaces the material; listeners hear about it on a later tick. */
  set(material: IdentityMaterial): void {
    if (this.closed) return;
    this.material = material;
    queueMicrotask(() => {
      for (const l of this.listeners) l(material);
    });
  }

  subscribe(listener: IdentityListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.closed = true;
    this.listeners.clear();
  }
}
