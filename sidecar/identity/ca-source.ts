// Identity from the mesh CA: the key pair is made here and only a CSR is sent (CaClient), the
// certificate is renewed at about half its lifetime (CertificateRotator), and the trust bundle
// follows root rotations (WatchTrustBundle; GetTrustBundle on each renewal while the watch is down).

import { readFile } from 'node:fs/promises';
import type { Logger } from '../../common/logger.ts';
import { silentLogger } from '../../common/logger.ts';
import { CaClient, type WorkloadCertificate } from '../../common/ca/client.ts';
import { CertificateRotator } from '../../common/ca/rotator.ts';
import { CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_SERVICE_ACCOUNT } from '../../common/ca/constants.ts';
import { ConfigError } from '../../common/errors.ts';
import { splitPemCertificates, type IdentityListener, type IdentityMaterial, type IdentitySource } from './identity.ts';

export interface CaIdentityOptions {
  /** The CA client; closed by close() only when `ownsClient`. */
  readonly client: CaClient;
  readonly ownsClient?: boolean;
  /** Lifetime to ask for; the CA's default when undefined. */
  readonly ttlMs?: number;
  /** Renew after this fraction of the remaining lifetime. Default 0.5. */
  readonly renewFraction?: number;
  /** Hears about every certificate delivered (for metrics and tests). */
  readonly onCertificate?: (certificate: WorkloadCertificate) => void;
  readonly logger?: Logger;
}

export class CaIdentitySource implements IdentitySource {
  readonly #client: CaClient;
  readonly #ownsClient: boolean;
  readonly #rotator: CertificateRotator;
  readonly #listeners = new Set<IdentityListener>();
  readonly #logger: Logger;
  readonly #onCertificate: ((c: WorkloadCertificate) => void) | undefined;
  #watch: { close(): void } | undefined;
  #certificate: WorkloadCertificate | undefined;
  /** Roots from the last bundle the CA sent; undefined until one arrived. */
  #bundle: readonly string[] | undefined;
  /** True while the WatchTrustBundle stream is delivering; otherwise each renewal fetches the bundle. */
  #watching = false;
  #material: IdentityMaterial | undefined;
  #lastError: unknown;
  #closed = false;

  /** Starts at once: the first certificate is requested now and retried with backoff. */
  constructor(options: CaIdentityOptions) {
    this.#client = options.client;
    this.#ownsClient = options.ownsClient ?? false;
    this.#logger = (options.logger ?? silentLogger).child({ component: 'identity' });
    this.#onCertificate = options.onCertificate;
    const ttlMs = options.ttlMs;
    this.#rotator = new CertificateRotator({
      issue: async () => {
        const certificate = await this.#client.requestCertificate(ttlMs === undefined ? {} : { ttlMs });
        if (!this.#watching) this.#bundle = (await this.#client.getTrustBundle()).rootCertsPem;
        return certificate;
      },
      onCertificate: (certificate) => {
        this.#certificate = certificate;
        this.#lastError = undefined;
        this.#logger.info('workload certificate issued', {
          spiffeId: certificate.spiffeId,
          serial: certificate.serialNumber,
          notAfter: certificate.notAfter.toISOString(),
        });
        this.#onCertificate?.(certificate);
        this.#publish();
      },
      onError: (err) => {
        this.#lastError = err;
      },
      ...(options.renewFraction === undefined ? {} : { renewFraction: options.renewFraction }),
      logger: this.#logger,
    });
    this.#watch = this.#client.watchTrustBundle(
      (bundle) => {
        if (this.#closed) return;
        const changed = this.#bundle === undefined || bundle.rootCertsPem.join('') !== this.#bundle.join('');
        this.#watching = true;
        this.#bundle = bundle.rootCertsPem;
        if (changed && this.#certificate !== undefined) {
          this.#logger.info('trust bundle changed', { version: bundle.version, roots: bundle.rootCertsPem.length });
          this.#publish();
        }
      },
      (err) => {
        this.#watching = false;
        this.#logger.warn('trust bundle watch broke; the bundle is fetched on each renewal until it is back', { err });
      },
    );
    this.#rotator.start();
  }

  current(): IdentityMaterial | undefined {
    return this.#material;
  }

  /** The certificate most recently issued. */
  get certificate(): WorkloadCertificate | undefined {
    return this.#certificate;
  }

  /** Certificates delivered so far. */
  get renewals(): number {
    return this.#rotator.renewals;
  }

  subscribe(listener: IdentityListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  lastError(): unknown {
    return this.#lastError;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#rotator.close();
    this.#watch?.close();
    this.#listeners.clear();
    if (this.#ownsClient) this.#client.close();
  }

  #publish(): void {
    const certificate = this.#certificate;
    if (certificate === undefined || this.#closed) return;
    // The root this certificate chains to is trusted even before the bundle watch reports it
    // (a root rotation races the watch); it came over the same authenticated channel.
    const roots = (this.#bundle ?? []).flatMap(splitPemCertificates);
    const own = splitPemCertificates(certificate.rootCertPem);
    for (const r of own) if (!roots.includes(r)) roots.push(r);
    const material: IdentityMaterial = { certChainPem: certificate.certChainPem, privateKeyPem: certificate.privateKeyPem, trustBundlePem: roots };
    this.#material = material;
    queueMicrotask(() => {
      if (this.#closed) return;
      for (const l of this.#listeners) l(material);
    });
  }
}

export interface CaClientFlags {
  /** `host:port` of the CA. */
  readonly address: string;
  /** PEM file with the roots that verify the CA server; '' only with `plaintext`. */
  readonly rootCertFile: string;
  readonly plaintext: boolean;
  /** Bootstrap token; or `tokenFile`, re-read on every request so a rotated token is picked up. */
  readonly token: string;
  readonly tokenFile: string;
  /** Trust domain of the control plane's SPIFFE ID, which the CA server must present. */
  readonly trustDomain: string;
}

/** The SPIFFE ID the CA server presents: `spiffe://<td>/ns/tracemesh-system/sa/tracemesh-controlplane`. */
export function controlPlaneSpiffeId(trustDomain: string): string {
  return `spiffe://${trustDomain}/ns/${CONTROL_PLANE_NAMESPACE}/sa/${CONTROL_PLANE_SERVICE_ACCOUNT}`;
}

/** Builds the CA client the flags describe. Throws ConfigError naming the flag to fix. */
export async function caClientFromFlags(f: CaClientFlags): Promise<CaClient> {
  let token: string | (() => Promise<string>);
  if (f.tokenFile !== '') {
    const file = f.tokenFile;
    try {
      await readFile(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read the CA token file ${file}: ${(err as Error).message}; check --ca-token-file`, { cause: err });
    }
    token = async () => (await readFile(file, 'utf8')).trim();
  } else {
    token = f.token;
  }
  if (f.plaintext) return new CaClient({ address: f.address, transport: { kind: 'plaintext' }, token });
  let rootCertsPem: string;
  try {
    rootCertsPem = await readFile(f.rootCertFile, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the CA root certificate ${f.rootCertFile}: ${(err as Error).message}; check --ca-root-cert`, { cause: err });
  }
  if (splitPemCertificates(rootCertsPem).length === 0) {
    throw new ConfigError(`${f.rootCertFile} holds no PEM certificate; --ca-root-cert must name the mesh root (PEM)`);
  }
  return new CaClient({
    address: f.address,
    transport: { kind: 'tls', rootCertsPem, serverSpiffeId: controlPlaneSpiffeId(f.trustDomain) },
    token,
  });
}
