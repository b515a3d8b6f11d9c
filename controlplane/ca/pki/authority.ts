// The certificate authority: signs workload CSRs for authenticated identities and keeps the
// ordered set of trusted roots through root rotation. It knows nothing about gRPC or tokens.

import type { Logger } from '../../../common/logger.ts';
import { silentLogger } from '../../../common/logger.ts';
import { CA_ERROR, CaError } from '../../../common/ca/errors.ts';
import {
  certToPem,
  createRootCertificate,
  DEFAULT_CLOCK_SKEW_MS,
  DEFAULT_ROOT_LIFETIME_MS,
  fingerprintSha256,
  issueLeafCertificate,
  parseCertificates,
  type Signer,
} from '../../../common/ca/certs.ts';
import { validateCsr } from './csr.ts';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../../common/ca/keys.ts';
import { loadProvidedCa, readProvidedCaDir, type ProvidedCaMaterial } from './provided.ts';
import { formatSpiffeId, isValidTrustDomain, type SpiffeId } from '../../../common/spiffe.ts';
import { directoryRootStore, memoryRootStore, ROOT_FILES, type RootStore, type StoredRoots } from './store.ts';
import type { x509 } from '../../../common/ca/x509.ts';

export const DEFAULT_WORKLOAD_CERT_TTL_MS = 24 * 3_600_000;
export const DEFAULT_MAX_WORKLOAD_CERT_TTL_MS = 7 * 24 * 3_600_000;

/** Where the signing material comes from. */
export type CaSource =
  /**
   * A root the CA creates on first start and then reloads from `store` (or from the directory
   * `dir`; with neither, it lives in memory only). Supports rotateRoot().
   */
  | { readonly kind: 'self-signed'; readonly dir?: string; readonly store?: RootStore; readonly rootLifetimeMs?: number }
  /** Operator material: a root, or an intermediate plus its chain. Rotation is the operator's. */
  | { readonly kind: 'provided'; readonly material: ProvidedCaMaterial }
  /** The same, read from a directory laid out like Istio's `cacerts` secret. */
  | { readonly kind: 'provided-dir'; readonly dir: string };

export interface CertificateAuthorityOptions {
  /** Trust domain of every identity this CA grants, e.g. `cluster.local`. */
  readonly trustDomain: string;
  /** Default: a self-signed root kept in memory. */
  readonly source?: CaSource;
  /** Lifetime of a workload certificate when the request names none. Default 24h. */
  readonly workloadCertTtlMs?: number;
  /** Longest lifetime a request may ask for. Default 7 days. */
  readonly maxWorkloadCertTtlMs?: number;
  /** notBefore is set this far in the past to tolerate clock skew. Default 1 minute. */
  readonly clockSkewMs?: number;
  /**
   * How long a rotated-out root stays trusted. Default: the maximum workload lifetime plus the
   * clock skew, so that every certificate the old root signed has expired by then.
   */
  readonly rootOverlapMs?: number;
  /** More roots to trust (but never sign with), e.g. the previous CA during a migration. */
  readonly extraTrustedRootsPem?: string;
  readonly logger?: Logger;
}

/** One root of the trust bundle. */
export interface RootInfo {
  /** Lowercase hex SHA-256 of the DER certificate. */
  readonly fingerprint: string;
  readonly certPem: string;
  readonly notAfter: Date;
  /** True for the root that new certificates chain to. */
  readonly signing: boolean;
  /** When a rotated-out root leaves the bundle on its own. */
  readonly retireAt?: Date;
}

export interface TrustBundle {
  readonly trustDomain: string;
  /** Increases by one on every change of the root set. */
  readonly version: number;
  /** The signing root first, then rotated-out roots (newest first), then extra roots. */
  readonly roots: readonly RootInfo[];
  /** All roots as one PEM list, in the order of `roots`. */
  readonly pem: string;
}

export interface IssuedCertificate {
  /** PEM certificates: the leaf, intermediates, the root last. */
  readonly certChainPem: readonly string[];
  readonly spiffeId: string;
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface SignCsrRequest {
  readonly csrPem: string;
  /** The identity the caller's credential proved. Never taken from the CSR. */
  readonly identity: SpiffeId;
  /** Requested lifetime; undefined or 0 means the CA's default. */
  readonly ttlMs?: number;
}

export interface ServingCertificateRequest {
  readonly identity: SpiffeId;
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly ttlMs?: number;
}

export interface CertificateAuthority {
  readonly trustDomain: string;
  /**
   * Signs `csrPem` for `identity`. Throws CaError `CSR_INVALID`, `IDENTITY_MISMATCH` (the CSR
   * or the identity's trust domain disagree with what may be granted), `VALIDITY_INVALID` or
   * `CA_NOT_READY` (closed, or the signing certificate is not valid now). The lifetime is cut
   * short to the signing chain's own expiry.
   */
  signCsr(request: SignCsrRequest): Promise<IssuedCertificate>;
  /**
   * Generates a key pair here and issues a serving certificate for it, with extra DNS and IP
   * SANs: the control plane's own TLS identity. Same errors as signCsr, minus CSR ones.
   */
  issueServingCertificate(request: ServingCertificateRequest): Promise<IssuedCertificate & { readonly privateKeyPem: string }>;
  /** A snapshot of the roots; cheap, never throws. */
  trustBundle(): TrustBundle;
  /**
   * Calls `listener` with every new bundle after a rotation or retirement, never synchronously
   * from this call. Returns the function that unsubscribes.
   */
  onTrustBundleChange(listener: (bundle: TrustBundle) => void): () => void;
  /**
   * Self-signed CAs only: creates a new root that signs from now on; the previous signing root
   * stays in the bundle for `overlapMs` (default `rootOverlapMs`), then leaves it on its own.
   * Persists before returning. Throws `CA_CONFIG_INVALID` for a provided CA.
   */
  rotateRoot(options?: { readonly overlapMs?: number }): Promise<RootInfo>;
  /**
   * Removes a root from the bundle now. Throws `ROOT_IN_USE` for the signing root and
   * `ROOT_NOT_FOUND` for an unknown fingerprint.
   */
  retireRoot(fingerprint: string): Promise<void>;
  /** Stops timers; later signing throws `CA_NOT_READY`. Safe to call twice. */
  close(): void;
}

/** Everything one issuance needs, taken together so that a concurrent rotation cannot mix roots. */
interface SigningSnapshot {
  readonly signer: Signer;
  readonly intermediates: readonly x509.X509Certificate[];
  readonly root: RootEntry;
}

interface RootEntry {
  readonly cert: x509.X509Certificate;
  readonly info: RootInfo;
  readonly kind: 'signing' | 'retiring' | 'extra';
}

// setTimeout fires at once for delays beyond 2^31-1 ms; longer waits are re-armed.
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Loads or creates the signing material described by `options.source` and returns a ready CA.
 * Throws `CA_CONFIG_INVALID` for unusable options or material.
 */
export async function createCertificateAuthority(options: CertificateAuthorityOptions): Promise<CertificateAuthority> {
  if (!isValidTrustDomain(options.trustDomain)) {
    throw new CaError(
      CA_ERROR.configInvalid,
      `trust domain "${options.trustDomain}" is invalid; use lower-case letters, digits, ".", "-" and "_", e.g. cluster.local`,
    );
  }
  const ttl = options.workloadCertTtlMs ?? DEFAULT_WORKLOAD_CERT_TTL_MS;
  const maxTtl = options.maxWorkloadCertTtlMs ?? DEFAULT_MAX_WORKLOAD_CERT_TTL_MS;
  if (!(ttl > 0) || !(maxTtl >= ttl)) {
    throw new CaError(
      CA_ERROR.configInvalid,
      `workload certificate lifetime ${ttl}ms must be positive and at most the maximum ${maxTtl}ms`,
    );
  }
  const ca = new Authority(options, ttl, maxTtl);
  await ca.init();
  return ca;
}

class Authority implements CertificateAuthority {
  readonly trustDomain: string;
  readonly #options: CertificateAuthorityOptions;
  readonly #logger: Logger;
  readonly #ttlMs: number;
  readonly #maxTtlMs: number;
  readonly #skewMs: number;
  readonly #listeners = new Set<(bundle: TrustBundle) => void>();
  #store: RootStore | undefined;
  #signer!: Signer;
  // PKCS#8 of the signing root's key, kept for persistence: loaded keys are not extractable.
  #signerKeyPem: string | undefined;
  #intermediates: readonly x509.X509Certificate[] = [];
  #roots: RootEntry[] = [];
  #bundle!: TrustBundle;
  #version = 0;
  #retireTimer: NodeJS.Timeout | undefined;
  #closed = false;
  // Serializes rotations and retirements so that persisted state follows memory in order.
  #mutation: Promise<unknown> = Promise.resolve();

  constructor(options: CertificateAuthorityOptions, ttlMs: number, maxTtlMs: number) {
    this.trustDomain = options.trustDomain;
    this.#options = options;
    this.#logger = (options.logger ?? silentLogger).child({ component: 'ca' });
    this.#ttlMs = ttlMs;
    this.#maxTtlMs = maxTtlMs;
    this.#skewMs = options.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
  }

  async init(): Promise<void> {
    const source = this.#options.source ?? { kind: 'self-signed' };
    const extra = this.#parseExtraRoots();
    if (source.kind === 'self-signed') {
      this.#store = source.store ?? (source.dir !== undefined ? directoryRootStore(source.dir, this.#logger) : memoryRootStore());
      const stored = await this.#store.load();
      if (stored) {
        await this.#adoptStored(stored);
        this.#logger.info('loaded CA root', { store: this.#store.description, root: this.#roots[0]?.info.fingerprint });
      } else {
        const root = await createRootCertificate({
          trustDomain: this.trustDomain,
          lifetimeMs: source.rootLifetimeMs ?? DEFAULT_ROOT_LIFETIME_MS,
          clockSkewMs: this.#skewMs,
        });
        this.#signer = root;
        this.#signerKeyPem = await exportPrivateKeyPem(root.privateKey);
        this.#roots = [entry(root.cert, 'signing')];
        await this.#persist();
        this.#logger.info('created CA root', { store: this.#store.description, root: this.#roots[0]?.info.fingerprint });
      }
    } else {
      const material = source.kind === 'provided' ? source.material : await readProvidedCaDir(source.dir);
      const loaded = await loadProvidedCa(material);
      this.#signer = loaded.signer;
      this.#intermediates = loaded.intermediates;
      this.#roots = [entry(loaded.root, 'signing')];
      this.#logger.info('loaded provided CA', {
        signer: loaded.signer.cert.subject,
        intermediates: loaded.intermediates.length,
        root: this.#roots[0]?.info.fingerprint,
      });
    }
    const known = new Set(this.#roots.map((r) => r.info.fingerprint));
    for (const cert of extra) {
      const e = entry(cert, 'extra');
      if (!known.has(e.info.fingerprint)) this.#roots.push(e);
    }
    this.#publish(false);
    this.#armRetireTimer();
    const left = this.#signer.cert.notAfter.getTime() - Date.now();
    const lifetime = this.#signer.cert.notAfter.getTime() - this.#signer.cert.notBefore.getTime();
    if (left < lifetime / 10) {
      this.#logger.warn('CA signing certificate expires soon; rotate the root or provide a new CA', {
        notAfter: this.#signer.cert.notAfter.toISOString(),
      });
    }
  }

  async signCsr(request: SignCsrRequest): Promise<IssuedCertificate> {
    const snapshot = this.#readySnapshot();
    this.#checkTrustDomain(request.identity);
    const ttlMs = this.#resolveTtl(request.ttlMs);
    const publicKey = await validateCsr(request.csrPem, request.identity);
    return this.#issue(snapshot, publicKey, request.identity, ttlMs, [], []);
  }

  async issueServingCertificate(
    request: ServingCertificateRequest,
  ): Promise<IssuedCertificate & { readonly privateKeyPem: string }> {
    const snapshot = this.#readySnapshot();
    this.#checkTrustDomain(request.identity);
    const ttlMs = this.#resolveTtl(request.ttlMs);
    const keys = await generateP256KeyPair();
    const issued = await this.#issue(
      snapshot,
      keys.publicKey,
      request.identity,
      ttlMs,
      request.dnsNames ?? [],
      request.ipAddresses ?? [],
    );
    return { ...issued, privateKeyPem: await exportPrivateKeyPem(keys.privateKey) };
  }

  trustBundle(): TrustBundle {
    return this.#bundle;
  }

  onTrustBundleChange(listener: (bundle: TrustBundle) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  rotateRoot(options: { readonly overlapMs?: number } = {}): Promise<RootInfo> {
    return this.#serialize(async () => {
      if (this.#closed) throw new CaError(CA_ERROR.notReady, 'the CA is closed');
      const source = this.#options.source ?? { kind: 'self-signed' };
      if (source.kind !== 'self-signed') {
        throw new CaError(
          CA_ERROR.configInvalid,
          'root rotation of a provided CA is the operator’s: trust the new root via extraTrustedRootsPem, then switch the provided material',
        );
      }
      const overlapMs = options.overlapMs ?? this.#options.rootOverlapMs ?? this.#maxTtlMs + this.#skewMs;
      const root = await createRootCertificate({
        trustDomain: this.trustDomain,
        lifetimeMs: source.rootLifetimeMs ?? DEFAULT_ROOT_LIFETIME_MS,
        clockSkewMs: this.#skewMs,
      });
      const retireAt = new Date(Date.now() + overlapMs);
      const previous = this.#roots.map((r) =>
        r.kind === 'signing' ? { cert: r.cert, kind: 'retiring' as const, info: { ...r.info, signing: false, retireAt } } : r,
      );
      const keyPem = await exportPrivateKeyPem(root.privateKey);
      // No await between these assignments: signing snapshots see the old or the new state.
      const before = { signer: this.#signer, keyPem: this.#signerKeyPem, roots: this.#roots };
      this.#signer = root;
      this.#signerKeyPem = keyPem;
      this.#roots = [entry(root.cert, 'signing'), ...previous];
      try {
        await this.#persist();
      } catch (err) {
        // Keep memory equal to what survives a restart.
        this.#signer = before.signer;
        this.#signerKeyPem = before.keyPem;
        this.#roots = before.roots;
        throw err;
      }
      this.#logger.info('rotated CA root', {
        root: this.#roots[0]?.info.fingerprint,
        previousRetireAt: retireAt.toISOString(),
      });
      this.#publish(true);
      this.#armRetireTimer();
      return this.#roots[0]!.info;
    });
  }

  retireRoot(fingerprint: string): Promise<void> {
    return this.#serialize(async () => {
      const fp = fingerprint.toLowerCase().replace(/:/g, '');
      const target = this.#roots.find((r) => r.info.fingerprint === fp);
      if (!target) throw new CaError(CA_ERROR.rootNotFound, `no root with SHA-256 fingerprint ${fp} is in the trust bundle`);
      if (target.kind === 'signing') {
        throw new CaError(CA_ERROR.rootInUse, `root ${fp} signs new certificates; rotate the root before retiring it`);
      }
      await this.#removeRoots(new Set([fp]));
    });
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retireTimer);
    this.#retireTimer = undefined;
    this.#listeners.clear();
  }

  #readySnapshot(): SigningSnapshot {
    if (this.#closed) throw new CaError(CA_ERROR.notReady, 'the CA is shutting down; retry against another control plane replica');
    const signer = this.#signer;
    const now = Date.now();
    if (now < signer.cert.notBefore.getTime() || now >= signer.cert.notAfter.getTime()) {
      throw new CaError(
        CA_ERROR.notReady,
        `the CA signing certificate is valid only from ${signer.cert.notBefore.toISOString()} to ${signer.cert.notAfter.toISOString()}; rotate the root or provide a new CA`,
      );
    }
    return { signer, intermediates: this.#intermediates, root: this.#signingRoot() };
  }

  #checkTrustDomain(identity: SpiffeId): void {
    if (identity.trustDomain !== this.trustDomain) {
      throw new CaError(
        CA_ERROR.identityMismatch,
        `identity ${formatSpiffeId(identity)} is outside trust domain ${this.trustDomain} of this CA`,
      );
    }
  }

  #resolveTtl(requested: number | undefined): number {
    if (requested === undefined || requested === 0) return this.#ttlMs;
    if (!Number.isFinite(requested) || requested < 0 || requested > this.#maxTtlMs) {
      throw new CaError(
        CA_ERROR.validityInvalid,
        `requested lifetime ${requested}ms is not between 1ms and the maximum ${this.#maxTtlMs}ms; ask for less, or 0 for the default`,
      );
    }
    return requested;
  }

  async #issue(
    { signer, intermediates, root }: SigningSnapshot,
    publicKey: x509.PublicKeyType,
    identity: SpiffeId,
    ttlMs: number,
    dnsNames: readonly string[],
    ipAddresses: readonly string[],
  ): Promise<IssuedCertificate> {
    const now = Date.now();
    // A certificate must not outlive any certificate above it.
    const chainEnd = Math.min(
      signer.cert.notAfter.getTime(),
      ...intermediates.map((c) => c.notAfter.getTime()),
      root.cert.notAfter.getTime(),
    );
    const leaf = await issueLeafCertificate({
      signer,
      publicKey,
      identity,
      dnsNames,
      ipAddresses,
      notBefore: new Date(now - this.#skewMs),
      notAfter: new Date(Math.min(now + ttlMs, chainEnd)),
    });
    const spiffeId = formatSpiffeId(identity);
    const signerIsRoot = fingerprintSha256(signer.cert) === root.info.fingerprint;
    const chain = [leaf, ...(signerIsRoot ? [] : [signer.cert]), ...intermediates];
    this.#logger.info('issued certificate', {
      spiffeId,
      serial: leaf.serialNumber,
      notAfter: leaf.notAfter.toISOString(),
    });
    return {
      certChainPem: [...chain.map(certToPem), root.info.certPem],
      spiffeId,
      serialNumber: leaf.serialNumber,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
    };
  }

  #signingRoot(): RootEntry {
    return this.#roots[0]!;
  }

  async #adoptStored(stored: StoredRoots): Promise<void> {
    const loaded = await loadProvidedCa(
      { caCertPem: stored.signer.certPem, caKeyPem: stored.signer.keyPem, rootCertPem: stored.signer.certPem },
      new Date(),
      { caCert: ROOT_FILES.cert, caKey: ROOT_FILES.key, certChain: ROOT_FILES.cert, root: ROOT_FILES.cert },
    );
    this.#signer = loaded.signer;
    this.#signerKeyPem = stored.signer.keyPem;
    this.#roots = [entry(loaded.root, 'signing')];
    const now = Date.now();
    for (const r of stored.retiring) {
      const retireAt = new Date(r.retireAt);
      if (retireAt.getTime() <= now) continue;
      const [cert] = parseCertificates(r.certPem);
      if (!cert) continue;
      this.#roots.push({ cert, kind: 'retiring', info: { ...entry(cert, 'retiring').info, retireAt } });
    }
  }

  #parseExtraRoots(): x509.X509Certificate[] {
    if (this.#options.extraTrustedRootsPem === undefined) return [];
    try {
      return parseCertificates(this.#options.extraTrustedRootsPem);
    } catch (err) {
      throw new CaError(CA_ERROR.configInvalid, `extraTrustedRootsPem is not PEM certificates: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async #persist(): Promise<void> {
    if (!this.#store || this.#signerKeyPem === undefined) return;
    await this.#store.save({
      signer: { certPem: this.#signingRoot().info.certPem, keyPem: this.#signerKeyPem },
      retiring: this.#roots
        .filter((r) => r.kind === 'retiring' && r.info.retireAt)
        .map((r) => ({ certPem: r.info.certPem, retireAt: r.info.retireAt!.toISOString() })),
    });
  }

  async #removeRoots(fingerprints: ReadonlySet<string>): Promise<void> {
    const before = this.#roots;
    this.#roots = this.#roots.filter((r) => !fingerprints.has(r.info.fingerprint));
    if (this.#roots.length === before.length) return;
    try {
      await this.#persist();
    } catch (err) {
      this.#roots = before;
      throw err;
    }
    this.#logger.info('retired CA roots', { roots: [...fingerprints] });
    this.#publish(true);
    this.#armRetireTimer();
  }

  #publish(notify: boolean): void {
    this.#version += 1;
    const roots = this.#roots.map((r) => r.info);
    this.#bundle = {
      trustDomain: this.trustDomain,
      version: this.#version,
      roots,
      pem: roots.map((r) => r.certPem).join(''),
    };
    if (!notify) return;
    const bundle = this.#bundle;
    for (const listener of [...this.#listeners]) {
      queueMicrotask(() => {
        try {
          listener(bundle);
        } catch (err) {
          this.#logger.error('trust bundle listener failed', { err });
        }
      });
    }
  }

  #armRetireTimer(): void {
    clearTimeout(this.#retireTimer);
    this.#retireTimer = undefined;
    if (this.#closed) return;
    const due = this.#roots.flatMap((r) => (r.kind === 'retiring' && r.info.retireAt ? [r.info.retireAt.getTime()] : []));
    if (due.length === 0) return;
    const delay = Math.max(0, Math.min(Math.min(...due) - Date.now(), MAX_TIMER_MS));
    this.#retireTimer = setTimeout(() => {
      this.#retireTimer = undefined;
      this.#serialize(async () => {
        const now = Date.now();
        const expired = this.#roots.filter((r) => r.kind === 'retiring' && r.info.retireAt && r.info.retireAt.getTime() <= now);
        if (expired.length === 0) {
          this.#armRetireTimer();
          return;
        }
        await this.#removeRoots(new Set(expired.map((r) => r.info.fingerprint)));
      }).catch((err: unknown) => {
        this.#logger.error('automatic root retirement failed; retrying in a minute', { err });
        this.#retireTimer = setTimeout(() => this.#armRetireTimer(), 60_000);
        this.#retireTimer.unref();
      });
    }, delay);
    // Retirement must not keep a process alive that has nothing else to do.
    this.#retireTimer.unref();
  }

  #serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#mutation.then(fn, fn);
    this.#mutation = run.catch(() => undefined);
    return run;
  }
}

function entry(cert: x509.X509Certificate, kind: RootEntry['kind']): RootEntry {
  return {
    cert,
    kind,
    info: { fingerprint: fingerprintSha256(cert), certPem: certToPem(cert), notAfter: cert.notAfter, signing: kind === 'signing' },
  };
}
