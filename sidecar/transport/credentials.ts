// The sidecar's TLS credentials: the current workload identity turned into TLS contexts, swapped
// whenever the identity source renews the certificate or changes the trust bundle. Listeners
// (the inbound server, the outbound pool) move new connections to the new context; connections
// already open keep the one they were made with.

import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from '../../common/logger.ts';
import { describeIdentity, firstIdentity, IdentityError, type IdentityMaterial, type IdentitySource, type WorkloadIdentity } from '../identity/identity.ts';

/** TLS 1.3 only between sidecars: one round trip, no renegotiation, forward secrecy. */
const MIN_VERSION = 'TLSv1.3';

export interface MeshTlsOptions {
  /** Expected trust domain; '' takes the one in this workload's own SPIFFE ID. */
  readonly trustDomain: string;
  /** How long start() waits for the first certificate. */
  readonly timeoutMs: number;
  /** Appended to the timeout error: what the operator should check. */
  readonly hint: string;
  readonly logger: Logger;
  /** Hears about every identity applied (the first included). */
  readonly onIdentity?: (identity: WorkloadIdentity) => void;
}

export class MeshTls {
  readonly trustDomain: string;
  /** The identity in use. */
  identity: WorkloadIdentity;
  /** Context for outbound connections; replaced (never mutated) on every change. */
  clientContext: SecureContext;
  /** Increases on every applied change; a pooled connection remembers the one it was made with. */
  generation = 0;
  private readonly listeners = new Set<() => void>();
  private readonly unsubscribe: () => void;
  private readonly logger: Logger;
  private readonly onIdentity: ((identity: WorkloadIdentity) => void) | undefined;

  private constructor(source: IdentitySource, identity: WorkloadIdentity, trustDomain: string, o: MeshTlsOptions) {
    this.identity = identity;
    this.trustDomain = trustDomain;
    this.logger = o.logger;
    this.onIdentity = o.onIdentity;
    this.clientContext = createSecureContext(contextOptions(identity));
    this.unsubscribe = source.subscribe((m) => this.apply(m));
    this.onIdentity?.(identity);
  }

  /** Waits for the source's first identity and checks it. Rejects with IdentityError. */
  static async start(source: IdentitySource, o: MeshTlsOptions): Promise<MeshTls> {
    const first = await firstIdentity(source, o.timeoutMs, o.hint);
    const identity = describeIdentity(first);
    const trustDomain = o.trustDomain === '' ? identity.trustDomain : o.trustDomain;
    if (identity.trustDomain !== trustDomain) {
      throw new IdentityError(`this workload's certificate is for ${identity.spiffeId}, outside trust domain ${trustDomain}; fix --trust-domain or the certificate`);
    }
    return new MeshTls(source, identity, trustDomain, o);
  }

  /** Options for `server.setSecureContext()` / `createSecureServer()`: the current identity. */
  serverContextOptions(): SecureContextOptions {
    return contextOptions(this.identity);
  }

  /** Calls `listener` after every applied change. Returns the function that removes it. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops following the source. Safe to call twice. */
  close(): void {
    this.unsubscribe();
    this.listeners.clear();
  }

  private apply(material: IdentityMaterial): void {
    let identity: WorkloadIdentity;
    let context: SecureContext;
    try {
      identity = describeIdentity(material);
      if (identity.trustDomain !== this.trustDomain) {
        throw new IdentityError(`the renewed certificate is for ${identity.spiffeId}, outside trust domain ${this.trustDomain}`);
      }
      context = createSecureContext(contextOptions(identity));
    } catch (err) {
      this.logger.error('new workload identity is unusable; keeping the current one', { err, current: this.identity.serialNumber });
      return;
    }
    this.identity = identity;
    this.clientContext = context;
    this.generation++;
    this.logger.info('workload identity applied', {
      spiffeId: identity.spiffeId,
      serial: identity.serialNumber,
      notAfter: identity.notAfter.toISOString(),
      roots: identity.trustBundlePem.length,
    });
    this.onIdentity?.(identity);
    for (const l of this.listeners) {
      try {
        l();
      } catch (err) {
        this.logger.error('identity change listener failed', { err });
      }
    }
  }
}

function contextOptions(identity: WorkloadIdentity): SecureContextOptions {
  return {
    cert: identity.certChainPem,
    key: identity.privateKeyPem,
    ca: [...identity.trustBundlePem],
    minVersion: MIN_VERSION,
  };
}
