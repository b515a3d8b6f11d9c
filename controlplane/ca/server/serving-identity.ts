// The control plane's own TLS identity, issued by the CA it serves and renewed before expiry.
// It is a grpc-js CertificateProvider, so the server swaps certificates and client-CA roots
// without a restart.

import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../../common/logger.ts';
import type { CertificateAuthority, TrustBundle } from '../pki/authority.ts';
import { formatSpiffeId, type SpiffeId } from '../../../common/spiffe.ts';

type CertificateProvider = grpc.experimental.CertificateProvider;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

export interface ServingIdentityOptions {
  readonly identity: SpiffeId;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  /** Lifetime of each serving certificate; the CA's default when undefined. */
  readonly ttlMs?: number;
  /** Fraction of the lifetime after which a new certificate is issued. Default 0.5. */
  readonly renewFraction?: number;
  readonly logger: Logger;
}

export interface ServingMaterial {
  /** Leaf then intermediates, without the root: what TLS sends. */
  readonly certChainPem: string;
  readonly privateKeyPem: string;
  readonly rootCertPem: string;
  readonly notAfter: Date;
}

const RETRY_MS = 5_000;

export class ServingIdentity implements CertificateProvider {
  readonly spiffeId: string;
  readonly #ca: CertificateAuthority;
  readonly #options: ServingIdentityOptions;
  readonly #caListeners = new Set<CaListener>();
  readonly #identityListeners = new Set<IdentityListener>();
  #current: ServingMaterial | undefined;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #closed = false;

  constructor(ca: CertificateAuthority, options: ServingIdentityOptions) {
    this.#ca = ca;
    this.#options = options;
    this.spiffeId = formatSpiffeId(options.identity);
  }

  /** Issues the first certificate and starts renewal. Rejects with the CA's error. */
  async start(): Promise<void> {
    await this.#renew();
    this.#unsubscribe = this.#ca.onTrustBundleChange((bundle) => this.#onBundle(bundle));
  }

  /** The certificate in use. */
  get current(): ServingMaterial | undefined {
    return this.#current;
  }

  addCaCertificateListener(listener: CaListener): void {
    this.#caListeners.add(listener);
    // grpc-js reads the first update only after it registered its own watcher: deliver later.
    const pem = this.#ca.trustBundle().pem;
    process.nextTick(() => this.#caListeners.has(listener) && listener({ caCertificate: Buffer.from(pem) }));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.#caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.add(listener);
    const current = this.#current;
    if (current) process.nextTick(() => this.#identityListeners.has(listener) && listener(identityUpdate(current)));
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.delete(listener);
  }

  /** Stops renewal. Safe to call twice. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  async #renew(): Promise<void> {
    const issued = await this.#ca.issueServingCertificate({
      identity: this.#options.identity,
      dnsNames: this.#options.dnsNames,
      ipAddresses: this.#options.ipAddresses,
      ...(this.#options.ttlMs !== undefined ? { ttlMs: this.#options.ttlMs } : {}),
    });
    if (this.#closed) return;
    const chain = issued.certChainPem;
    this.#current = {
      certChainPem: chain.slice(0, -1).join(''),
      rootCertPem: chain[chain.length - 1] ?? '',
      privateKeyPem: issued.privateKeyPem,
      notAfter: issued.notAfter,
    };
    const update = identityUpdate(this.#current);
    for (const listener of this.#identityListeners) listener(update);
    const remaining = issued.notAfter.getTime() - Date.now();
    this.#schedule(Math.max(0, remaining * (this.#options.renewFraction ?? 0.5)));
    this.#options.logger.info('issued control plane serving certificate', {
      spiffeId: this.spiffeId,
      notAfter: issued.notAfter.toISOString(),
    });
  }

  #schedule(delayMs: number): void {
    clearTimeout(this.#timer);
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#renew().catch((err: unknown) => {
        this.#options.logger.error('renewing the control plane serving certificate failed; retrying', { err });
        this.#schedule(RETRY_MS);
      });
    }, Math.min(delayMs, 2_147_483_647));
    this.#timer.unref();
  }

  #onBundle(bundle: TrustBundle): void {
    const pem = Buffer.from(bundle.pem);
    for (const listener of this.#caListeners) listener({ caCertificate: pem });
    // After a root leaves the bundle, a serving certificate under it would fail every handshake.
    const root = this.#current?.rootCertPem;
    if (root !== undefined && !bundle.roots.some((r) => r.certPem === root)) this.#schedule(0);
  }
}

function identityUpdate(m: ServingMaterial): grpc.experimental.IdentityCertificateUpdate {
  return { certificate: Buffer.from(m.certChainPem), privateKey: Buffer.from(m.privateKeyPem) };
}
